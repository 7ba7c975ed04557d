//! A heap of fixed-size blocks holding encoded chunk bytes outside any B-tree.
//!
//! Why not B-tree values: saving a `StableBTreeMap` node rewrites every value stored in
//! that node, so 1 MiB chunk values would be re-copied whenever a neighbour changes. Here
//! a chunk's bytes are written once into blocks that never move; the chunk index keeps
//! their numbers. Freed blocks go on a free stack and are reused first (stable memory
//! never shrinks).
//!
//! ```text
//! heap memory (block b at byte b * BLOCK_SIZE)
//! block 0, header:  "VBH" (3) | layout version u8 | block size u32 LE | allocated u32 LE
//! blocks 1..allocated: data blocks, each owned by exactly one chunk or on the free stack
//! ```
//!
//! Invariants: every block number in `1..allocated` is either on the free stack or
//! listed by exactly one chunk; the header's `allocated` only grows.

use ic_stable_structures::{Memory, StableVec};

/// Bytes per block: small enough that a compressed chunk wastes little of its last
/// block, large enough that a 1 MiB chunk is 64 reads.
pub const BLOCK_SIZE: u32 = 16 * 1024;
const WASM_PAGE: u64 = 64 * 1024;
const MAGIC: &[u8; 3] = b"VBH";
/// 2: chunks are keyed by frame digests (version 1 keyed them by digests of the decoded
/// bytes; such a vault refuses the upgrade and keeps running the old code).
const LAYOUT_VERSION: u8 = 2;
const HEADER_LEN: usize = 12;

/// Fixed-size blocks over a raw memory, with a free stack.
pub struct BlockHeap<M: Memory> {
    heap: M,
    free: StableVec<u32, M>,
    /// Blocks handed out so far, the header block included (mirrors the header).
    allocated: u32,
}

impl<M: Memory> BlockHeap<M> {
    /// Loads the heap, or formats it when `heap` is empty.
    ///
    /// # Panics
    /// If `heap` holds something else than a block heap of this layout.
    pub fn init(heap: M, free: M) -> Self {
        let free = StableVec::init(free);
        if heap.size() == 0 {
            let mut this = Self {
                heap,
                free,
                allocated: 1,
            };
            this.grow_to(1);
            this.write_header();
            return this;
        }
        let mut header = [0u8; HEADER_LEN];
        heap.read(0, &mut header);
        assert!(
            &header[0..3] == MAGIC && header[3] == LAYOUT_VERSION,
            "block heap: bad magic or layout version (this vault reads layout {LAYOUT_VERSION})"
        );
        let block_size = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        assert_eq!(block_size, BLOCK_SIZE, "block heap: block size changed");
        let allocated = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        Self {
            heap,
            free,
            allocated,
        }
    }

    /// Stores `bytes` in fresh or reused blocks and returns their numbers, in order.
    ///
    /// # Panics
    /// When stable memory cannot grow (the message traps and changes nothing).
    pub fn write(&mut self, bytes: &[u8]) -> Vec<u32> {
        let mut blocks = Vec::with_capacity(bytes.len().div_ceil(BLOCK_SIZE as usize));
        for part in bytes.chunks(BLOCK_SIZE as usize) {
            let block = self.allocate();
            self.heap.write(offset(block), part);
            blocks.push(block);
        }
        blocks
    }

    /// Reads `len` bytes spread over `blocks`, in order.
    pub fn read(&self, blocks: &[u32], len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        for (block, part) in blocks.iter().zip(out.chunks_mut(BLOCK_SIZE as usize)) {
            self.heap.read(offset(*block), part);
        }
        out
    }

    /// Returns `blocks` to the free stack.
    pub fn free(&mut self, blocks: &[u32]) {
        for block in blocks {
            debug_assert!(
                (1..self.allocated).contains(block),
                "freeing a foreign block"
            );
            self.free.push(block);
        }
    }

    /// Blocks in use by chunks.
    pub fn blocks_in_use(&self) -> u64 {
        u64::from(self.allocated) - 1 - self.free.len()
    }

    fn allocate(&mut self) -> u32 {
        if let Some(block) = self.free.pop() {
            return block;
        }
        let block = self.allocated;
        self.allocated = block.checked_add(1).expect("block numbers fit in u32");
        self.grow_to(self.allocated);
        self.write_header();
        block
    }

    fn grow_to(&mut self, blocks: u32) {
        let needed_pages = (u64::from(blocks) * u64::from(BLOCK_SIZE)).div_ceil(WASM_PAGE);
        let have = self.heap.size();
        if needed_pages > have {
            assert!(
                self.heap.grow(needed_pages - have) >= 0,
                "stable memory exhausted (block heap)"
            );
        }
    }

    fn write_header(&self) {
        let mut header = [0u8; HEADER_LEN];
        header[0..3].copy_from_slice(MAGIC);
        header[3] = LAYOUT_VERSION;
        header[4..8].copy_from_slice(&BLOCK_SIZE.to_le_bytes());
        header[8..12].copy_from_slice(&self.allocated.to_le_bytes());
        self.heap.write(0, &header);
    }
}

fn offset(block: u32) -> u64 {
    u64::from(block) * u64::from(BLOCK_SIZE)
}

#[cfg(test)]
mod tests {
    use ic_stable_structures::VectorMemory;

    use super::*;

    fn heap() -> (BlockHeap<VectorMemory>, VectorMemory, VectorMemory) {
        let (h, f) = (VectorMemory::default(), VectorMemory::default());
        (BlockHeap::init(h.clone(), f.clone()), h, f)
    }

    #[test]
    fn should_round_trip_bytes_across_blocks() {
        let (mut heap, _, _) = heap();
        let bytes: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let blocks = heap.write(&bytes);
        assert_eq!(blocks, vec![1, 2, 3]);
        assert_eq!(heap.read(&blocks, bytes.len()), bytes);
        assert_eq!(heap.blocks_in_use(), 3);
    }

    #[test]
    fn should_reuse_freed_blocks_before_growing() {
        let (mut heap, _, _) = heap();
        let a = heap.write(&[1u8; 20_000]);
        let _b = heap.write(&[2u8; 100]);
        heap.free(&a);
        assert_eq!(heap.blocks_in_use(), 1);
        let c = heap.write(&[3u8; 30_000]);
        let mut sorted = c.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, a, "freed blocks are reused");
        assert_eq!(heap.read(&c, 30_000), vec![3u8; 30_000]);
    }

    #[test]
    fn should_reload_allocation_state() {
        let (mut heap, h, f) = heap();
        let a = heap.write(&[7u8; 50_000]);
        heap.free(&a[..1]);
        drop(heap);
        let mut heap = BlockHeap::init(h, f);
        assert_eq!(heap.blocks_in_use(), 3);
        assert_eq!(heap.write(&[1u8; 10]), vec![a[0]]);
        assert_eq!(heap.write(&[1u8; 10]), vec![5]);
    }
}
