//! The image root computed incrementally, so `commit_snapshot` can spread a table of
//! millions of entries over several messages.
//!
//! `merkle::tree_root` pairs neighbours level by level and moves an odd node up as is;
//! that tree is the same as folding, right to left, the perfect subtrees of the binary
//! decomposition of the leaf count (largest first). [`RootBuilder`] keeps those
//! subtrees (at most 32: one per bit of a `u32` count) as a frontier: pushing a leaf
//! merges equal-height neighbours like a binary carry (`merkle::frontier_push`, shared
//! with the kit's `merkle::Frontier`; this type keeps its own stored candid layout).
//!
//! Invariant: `frontier` holds subtree roots of strictly decreasing height, and the
//! leaves pushed so far are exactly the leaves of those subtrees, in order.

use candid::CandidType;
use canvault_protocol::Hash256;
use canvault_protocol::chunk::chunk_count;
use canvault_protocol::merkle::{frontier_push, frontier_root, geometry_root};
use serde::Deserialize;

/// A partial Merkle tree over the chunk digests pushed so far.
#[derive(CandidType, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct RootBuilder {
    /// (height, subtree root), heights strictly decreasing.
    frontier: Vec<(u8, Hash256)>,
    /// Leaves pushed.
    leaves: u64,
}

impl RootBuilder {
    /// Appends the digest of the next chunk.
    pub fn push(&mut self, chunk_hash: Hash256) {
        frontier_push(&mut self.frontier, &chunk_hash);
        self.leaves += 1;
    }

    /// Leaves pushed so far.
    pub fn leaves(&self) -> u64 {
        self.leaves
    }

    /// The tree root over the leaves pushed (`merkle::tree_root` of them).
    pub fn tree_root(&self) -> Hash256 {
        frontier_root(&self.frontier)
    }

    /// The image root (`merkle::image_root`) once every chunk was pushed; `None` if the
    /// leaf count does not match the geometry.
    pub fn image_root(&self, image_size: u64, chunk_size: u32) -> Option<Hash256> {
        let count = chunk_count(image_size, chunk_size);
        (u64::from(count) == self.leaves)
            .then(|| geometry_root(image_size, chunk_size, count, &self.tree_root()))
    }
}

#[cfg(test)]
mod tests {
    use canvault_protocol::merkle::{image_root, tree_root};
    use proptest::prelude::*;

    use super::*;

    fn digests(n: u32) -> Vec<Hash256> {
        (0..n).map(|i| Hash256::of(&i.to_le_bytes())).collect()
    }

    #[test]
    fn should_match_tree_root_for_every_small_count() {
        for n in 0..70 {
            let mut b = RootBuilder::default();
            for h in digests(n) {
                b.push(h);
            }
            assert_eq!(b.tree_root(), tree_root(digests(n)), "{n} leaves");
        }
    }

    proptest! {
        #[test]
        fn should_match_image_root(chunks in 1u32..600, tail in 1u64..65_536) {
            let size = u64::from(chunks - 1) * 65_536 + tail;
            let mut b = RootBuilder::default();
            for h in digests(chunks) {
                b.push(h);
            }
            prop_assert_eq!(b.image_root(size, 65_536), Some(image_root(size, 65_536, digests(chunks))));
            prop_assert_eq!(b.image_root(size + 65_536, 65_536), None);
        }
    }
}
