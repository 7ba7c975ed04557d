//! The image root: a Merkle tree over chunk digests, bound to the image geometry.
//!
//! ```text
//! leaf(i)      = H(0x00 || chunk_hash[i])
//! node(l, r)   = H(0x01 || l || r)          an odd node at the end of a level moves up as is
//! tree_root    = the last remaining node     (H(0x03) for an empty image)
//! image_root   = H(0x02 || image_size u64 LE || chunk_size u32 LE || chunk_count u32 LE || tree_root)
//! ```
//! Domain-separation prefixes keep a leaf from being mistaken for a node. Binding the
//! geometry into the root means two images with the same chunks but different sizes
//! never share a root.

use candid::CandidType;
use serde::{Deserialize, Serialize};

use crate::Hash256;

const LEAF: u8 = 0x00;
const NODE: u8 = 0x01;
const IMAGE: u8 = 0x02;
const EMPTY: u8 = 0x03;

/// The Merkle root over chunk digests, in index order.
#[must_use]
pub fn tree_root<I: IntoIterator<Item = Hash256>>(chunk_hashes: I) -> Hash256 {
    let mut level: Vec<Hash256> = chunk_hashes
        .into_iter()
        .map(|h| Hash256::of_parts(&[&[LEAF], &h.0]))
        .collect();
    if level.is_empty() {
        return Hash256::of(&[EMPTY]);
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => Hash256::of_parts(&[&[NODE], &l.0, &r.0]),
                [odd] => *odd,
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
    }
    level[0]
}

/// The root of a whole image: its geometry and the tree over its chunk digests.
///
/// # Panics
/// If the iterator does not yield exactly `chunk_count(image_size, chunk_size)` digests.
#[must_use]
pub fn image_root<I: IntoIterator<Item = Hash256>>(
    image_size: u64,
    chunk_size: u32,
    chunk_hashes: I,
) -> Hash256 {
    let hashes: Vec<Hash256> = chunk_hashes.into_iter().collect();
    let count = crate::chunk::chunk_count(image_size, chunk_size);
    assert_eq!(hashes.len(), count as usize, "one digest per chunk");
    geometry_root(image_size, chunk_size, count, &tree_root(hashes))
}

/// The image root computed as digests arrive, in O(log n) state: push chunk digests in
/// index order, over as many executions as needed (the frontier is small enough to
/// persist between them), then ask for the root. Equal to [`image_root`] over the same
/// digests.
///
/// Invariant: `stack` holds the roots of perfect subtrees over consecutive leaves, their
/// heights strictly decreasing; the final root folds them from the right, which is
/// where the level-by-level tree carries its odd nodes.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    /// Digests pushed so far (the index of the next one).
    pub pushed: u32,
    /// `(height, subtree root)`, heights strictly decreasing.
    pub stack: Vec<(u8, Hash256)>,
}

impl Frontier {
    /// Adds the digest of chunk `self.pushed`.
    pub fn push(&mut self, chunk_hash: &Hash256) {
        frontier_push(&mut self.stack, chunk_hash);
        self.pushed += 1;
    }

    /// The tree root over the digests pushed ([`tree_root`]).
    #[must_use]
    pub fn tree_root(&self) -> Hash256 {
        frontier_root(&self.stack)
    }

    /// The image root ([`image_root`]), or `None` until every chunk of the geometry
    /// was pushed.
    #[must_use]
    pub fn image_root(&self, image_size: u64, chunk_size: u32) -> Option<Hash256> {
        let count = crate::chunk::chunk_count(image_size, chunk_size);
        (self.pushed == count)
            .then(|| geometry_root(image_size, chunk_size, count, &self.tree_root()))
    }
}

/// Pushes the next leaf onto `stack`, a frontier of `(height, subtree root)` with
/// strictly decreasing heights: equal-height neighbours merge like a binary carry.
/// Shared by [`Frontier`] and the vault's stored commit walk.
pub fn frontier_push(stack: &mut Vec<(u8, Hash256)>, chunk_hash: &Hash256) {
    let mut node = (0u8, Hash256::of_parts(&[&[LEAF], &chunk_hash.0]));
    while let Some(&(height, left)) = stack.last()
        && height == node.0
    {
        stack.pop();
        node = (
            height + 1,
            Hash256::of_parts(&[&[NODE], &left.0, &node.1.0]),
        );
    }
    stack.push(node);
}

/// The [`tree_root`] of the leaves a frontier `stack` holds (folded right to left).
#[must_use]
pub fn frontier_root(stack: &[(u8, Hash256)]) -> Hash256 {
    let mut nodes = stack.iter().rev().map(|(_, h)| *h);
    let Some(mut acc) = nodes.next() else {
        return Hash256::of(&[EMPTY]);
    };
    for left in nodes {
        acc = Hash256::of_parts(&[&[NODE], &left.0, &acc.0]);
    }
    acc
}

/// The image root over a tree root `tree` of `count` chunks of the geometry.
#[must_use]
pub fn geometry_root(image_size: u64, chunk_size: u32, count: u32, tree: &Hash256) -> Hash256 {
    Hash256::of_parts(&[
        &[IMAGE],
        &image_size.to_le_bytes(),
        &chunk_size.to_le_bytes(),
        &count.to_le_bytes(),
        &tree.0,
    ])
}

/// The root of `image` computed directly from its bytes, sealing every chunk as a kit
/// does ([`crate::chunk::chunk_hash`]): tests and off-chain verification.
#[must_use]
pub fn image_root_of_bytes(image: &[u8], chunk_size: u32) -> Hash256 {
    let hashes = image
        .chunks(chunk_size as usize)
        .map(crate::chunk::chunk_hash);
    image_root(image.len() as u64, chunk_size, hashes)
}
