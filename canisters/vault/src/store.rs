//! The content-addressed chunk store: one copy of each distinct chunk, shared by every
//! snapshot and source that references it.
//!
//! A chunk is keyed by its frame digest (`chunk::frame_hash`: SHA-256 over the codec,
//! the decoded length and the encoded bytes) and kept exactly as it arrived, verified but
//! never decoded or re-encoded. Its bytes live in the
//! [`BlockHeap`]; the index keeps a small [`ChunkMeta`] per hash.
//!
//! Invariant (kept by `catalogue`, the only caller of `add_ref*`/`release`): a chunk's
//! `refs` equals the number of chunk-table entries pointing at its hash; the chunk is
//! deleted exactly when `refs` drops to 0. Zero chunks are never stored.
//!
//! ```text
//! ChunkMeta, layout version 1 (18 + 4 * blocks bytes):
//! version u8 | codec u8 (`Codec::tag`: 0 raw, 1 deflate) | len u32 LE | encoded_len u32 LE | refs u64 LE | blocks u32 LE...
//! ```

use std::borrow::Cow;

use canvault_protocol::chunk::MAX_CHUNK_SIZE;
use canvault_protocol::vault_api::StoredChunk;
use canvault_protocol::{Codec, Hash256};
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{Memory, StableBTreeMap, StableCell, Storable};
use serde_bytes::ByteBuf;

use crate::blocks::{BLOCK_SIZE, BlockHeap};
use crate::storable::{u32_at, u64_at};

const META_VERSION: u8 = 2;
const META_FIXED: usize = 18;
const MAX_BLOCKS: u32 = MAX_CHUNK_SIZE / BLOCK_SIZE;

/// What the index records about a stored chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Encoding of the stored bytes.
    pub codec: Codec,
    /// Uncompressed length.
    pub len: u32,
    /// Stored (encoded) length.
    pub encoded_len: u32,
    /// Chunk-table entries pointing at this chunk.
    pub refs: u64,
    /// Heap blocks holding the encoded bytes, in order.
    pub blocks: Vec<u32>,
}

impl Storable for ChunkMeta {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.clone().into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(META_FIXED + 4 * self.blocks.len());
        out.push(META_VERSION);
        out.push(self.codec.tag());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.encoded_len.to_le_bytes());
        out.extend_from_slice(&self.refs.to_le_bytes());
        for block in &self.blocks {
            out.extend_from_slice(&block.to_le_bytes());
        }
        out
    }

    fn from_bytes(bytes: Cow<'_, [u8]>) -> Self {
        assert_eq!(bytes[0], META_VERSION, "chunk meta: unknown layout version");
        let codec = Codec::from_tag(bytes[1])
            .unwrap_or_else(|| panic!("chunk meta: unknown codec {}", bytes[1]));
        Self {
            codec,
            len: u32_at(&bytes, 2),
            encoded_len: u32_at(&bytes, 6),
            refs: u64_at(&bytes, 10),
            blocks: bytes[META_FIXED..]
                .chunks_exact(4)
                .map(|b| u32_at(b, 0))
                .collect(),
        }
    }

    const BOUND: Bound = Bound::Bounded {
        max_size: META_FIXED as u32 + 4 * MAX_BLOCKS,
        is_fixed_size: false,
    };
}

/// Gauges kept alongside the index. Layout: version u8 | encoded bytes u64 LE.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct StoreStats {
    encoded_bytes: u64,
}

impl Storable for StoreStats {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        let mut out = vec![META_VERSION];
        out.extend_from_slice(&self.encoded_bytes.to_le_bytes());
        out
    }

    fn from_bytes(bytes: Cow<'_, [u8]>) -> Self {
        assert_eq!(
            bytes[0], META_VERSION,
            "store stats: unknown layout version"
        );
        Self {
            encoded_bytes: u64_at(&bytes, 1),
        }
    }

    const BOUND: Bound = Bound::Bounded {
        max_size: 9,
        is_fixed_size: true,
    };
}

/// Distinct chunks, reference counted.
pub struct ChunkStore<M: Memory> {
    index: StableBTreeMap<[u8; 32], ChunkMeta, M>,
    stats: StableCell<StoreStats, M>,
    heap: BlockHeap<M>,
}

impl<M: Memory> ChunkStore<M> {
    /// Loads the store from its memories, or creates it.
    pub fn init(index: M, stats: M, heap: M, free_blocks: M) -> Self {
        Self {
            index: StableBTreeMap::init(index),
            stats: StableCell::init(stats, StoreStats::default()),
            heap: BlockHeap::init(heap, free_blocks),
        }
    }

    /// True if a chunk with `hash` is stored.
    pub fn contains(&self, hash: &Hash256) -> bool {
        self.index.contains_key(&hash.0)
    }

    /// The index record of `hash`.
    pub fn meta(&self, hash: &Hash256) -> Option<ChunkMeta> {
        self.index.get(&hash.0)
    }

    /// The stored chunk, bytes included.
    pub fn get(&self, hash: &Hash256) -> Option<StoredChunk> {
        let meta = self.index.get(&hash.0)?;
        let bytes = self.heap.read(&meta.blocks, meta.encoded_len as usize);
        Some(StoredChunk {
            hash: *hash,
            len: meta.len,
            codec: meta.codec,
            bytes: ByteBuf::from(bytes),
        })
    }

    /// Adds a reference to `hash`, storing `bytes` if the chunk is new. Returns the
    /// encoded bytes newly stored (0 when deduplicated).
    ///
    /// The caller has verified that `bytes` decode with `codec` to `len` bytes hashing
    /// to `hash`, and that `bytes` is at most `MAX_CHUNK_SIZE` long.
    pub fn add_ref_with_data(
        &mut self,
        hash: &Hash256,
        len: u32,
        codec: Codec,
        bytes: &[u8],
    ) -> u64 {
        if self.contains(hash) {
            self.add_ref(hash);
            return 0;
        }
        let encoded_len = u32::try_from(bytes.len()).expect("a chunk is at most 1 MiB");
        assert!(encoded_len <= MAX_CHUNK_SIZE, "chunk store: oversize chunk");
        let blocks = self.heap.write(bytes);
        self.index.insert(
            hash.0,
            ChunkMeta {
                codec,
                len,
                encoded_len,
                refs: 1,
                blocks,
            },
        );
        self.update_bytes(|b| b + u64::from(encoded_len));
        u64::from(encoded_len)
    }

    /// Adds a reference to a stored chunk.
    ///
    /// # Panics
    /// If the chunk is not stored (callers check [`Self::contains`] first).
    pub fn add_ref(&mut self, hash: &Hash256) {
        let mut meta = self
            .index
            .get(&hash.0)
            .expect("add_ref of a chunk not stored");
        meta.refs += 1;
        self.index.insert(hash.0, meta);
    }

    /// Drops a reference; deletes the chunk and frees its blocks at zero references.
    ///
    /// # Panics
    /// If the chunk is not stored.
    pub fn release(&mut self, hash: &Hash256) {
        let mut meta = self
            .index
            .get(&hash.0)
            .expect("release of a chunk not stored");
        meta.refs -= 1;
        if meta.refs == 0 {
            self.index.remove(&hash.0);
            self.heap.free(&meta.blocks);
            self.update_bytes(|b| b - u64::from(meta.encoded_len));
        } else {
            self.index.insert(hash.0, meta);
        }
    }

    /// Distinct chunks stored.
    pub fn len(&self) -> u64 {
        self.index.len()
    }

    /// True if no chunk is stored.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Encoded bytes of the stored chunks.
    pub fn encoded_bytes(&self) -> u64 {
        self.stats.get().encoded_bytes
    }

    /// Heap blocks in use (for tests and gauges).
    pub fn blocks_in_use(&self) -> u64 {
        self.heap.blocks_in_use()
    }

    /// Every stored hash with its reference count (for consistency checks).
    pub fn refcounts(&self) -> Vec<(Hash256, u64)> {
        self.index
            .iter()
            .map(|e| (Hash256(*e.key()), e.value().refs))
            .collect()
    }

    fn update_bytes(&mut self, f: impl FnOnce(u64) -> u64) {
        let encoded_bytes = f(self.stats.get().encoded_bytes);
        self.stats.set(StoreStats { encoded_bytes });
    }
}

#[cfg(test)]
mod tests {
    use ic_stable_structures::VectorMemory;

    use super::*;

    fn store() -> ChunkStore<VectorMemory> {
        ChunkStore::init(
            VectorMemory::default(),
            VectorMemory::default(),
            VectorMemory::default(),
            VectorMemory::default(),
        )
    }

    #[test]
    fn should_store_each_hash_once_and_count_references() {
        let mut s = store();
        let raw = vec![5u8; 70_000];
        let h = Hash256::of(&raw);
        assert_eq!(s.add_ref_with_data(&h, 70_000, Codec::Raw, &raw), 70_000);
        assert_eq!(
            s.add_ref_with_data(&h, 70_000, Codec::Raw, &raw),
            0,
            "deduplicated"
        );
        s.add_ref(&h);
        assert_eq!((s.len(), s.encoded_bytes()), (1, 70_000));
        assert_eq!(s.meta(&h).map(|m| m.refs), Some(3));
        let got = s.get(&h).expect("stored");
        assert_eq!(
            (got.len, got.codec, got.bytes.as_slice()),
            (70_000, Codec::Raw, raw.as_slice())
        );
    }

    #[test]
    fn should_delete_the_chunk_exactly_at_zero_references() {
        let mut s = store();
        let raw = vec![9u8; 1000];
        let h = Hash256::of(&raw);
        s.add_ref_with_data(&h, 1000, Codec::Raw, &raw);
        s.add_ref(&h);
        s.release(&h);
        assert!(s.contains(&h));
        s.release(&h);
        assert!(!s.contains(&h));
        assert_eq!((s.len(), s.encoded_bytes(), s.blocks_in_use()), (0, 0, 0));
    }

    #[test]
    fn should_round_trip_chunk_meta_bytes() {
        let meta = ChunkMeta {
            codec: Codec::Deflate,
            len: 1 << 20,
            encoded_len: 12345,
            refs: u64::MAX - 1,
            blocks: vec![1, 7, u32::MAX],
        };
        let bytes = meta.to_bytes();
        assert_eq!(bytes.len(), 18 + 12);
        assert_eq!(ChunkMeta::from_bytes(bytes), meta);
    }
}
