//! Host-side stable memory: sparse 4 KiB blocks with a per-transaction undo journal.
//!
//! Layout: the address space is cut into 4 KiB blocks, grouped into chunks of
//! `CHUNK_BLOCKS` blocks. The top-level vector holds one `Option<Box<Chunk>>` per chunk of the
//! current size (8 bytes per MiB even when nothing is written); a chunk holds one optional
//! boxed block and one journal stamp per block. An absent chunk or block reads as zeros.
//!
//! Invariants:
//! - `chunks.len() == ceil(size_blocks / CHUNK_BLOCKS)`, and every block at or beyond
//!   `size_blocks` is absent;
//! - `allocated_blocks` counts the present blocks;
//! - while a transaction is open, `stamps[b] == epoch` iff block `b` has an entry in the
//!   journal, and that entry holds the block's content at `begin`. `epoch` is never 0 while a
//!   transaction is open, and 0 means "never journaled".

use std::fmt;

#[cfg(test)]
mod tests;

/// Size of a wasm page, the unit of `stable_size` and `stable_grow`.
pub const WASM_PAGE_BYTES: u64 = 65_536;
/// 500 GiB, the IC's stable memory limit, in wasm pages.
pub const MAX_STABLE_PAGES: u64 = 500 * 1024 * 1024 * 1024 / WASM_PAGE_BYTES;

/// Size of a storage (and journal) block.
pub const BLOCK_BYTES: u64 = 4096;
const BLOCK: usize = BLOCK_BYTES as usize;
const BLOCKS_PER_PAGE: u64 = WASM_PAGE_BYTES / BLOCK_BYTES;

/// Blocks per chunk: 256 (1 MiB) in production. Tests use a size that is not a multiple of a
/// page, so that chunk boundaries fall inside pages and small memories span several chunks.
#[cfg(not(test))]
const CHUNK_BLOCKS: usize = 256;
#[cfg(test)]
const CHUNK_BLOCKS: usize = 24;

type Block = Box<[u8; BLOCK]>;

/// An access to `[offset, offset + size)` that does not fit in the current size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stable memory access out of bounds: offset {offset} + size {size} > {size_bytes} bytes")]
pub struct OutOfBounds {
    /// Start of the access.
    pub offset: u64,
    /// Length of the access.
    pub size: u64,
    /// Stable memory size at the time of the access.
    pub size_bytes: u64,
}

#[derive(Clone)]
struct Chunk {
    blocks: [Option<Block>; CHUNK_BLOCKS],
    /// Epoch of the transaction that journaled each block (0: never).
    stamps: [u32; CHUNK_BLOCKS],
}

impl Chunk {
    fn new() -> Box<Self> {
        Box::new(Chunk {
            blocks: std::array::from_fn(|_| None),
            stamps: [0; CHUNK_BLOCKS],
        })
    }
}

/// The undo log of the open transaction.
#[derive(Clone)]
struct Journal {
    /// Size when the transaction began.
    size_pages: u64,
    /// Block index and content at `begin` of every block first written since.
    saved: Vec<(u64, Option<Block>)>,
}

/// Sparse storage in 4 KiB blocks (absent block = zeros). A transaction (one message execution)
/// journals the old content of each block on its first write and the old size before a grow, so
/// `rollback` costs O(bytes touched in the transaction).
#[derive(Default, Clone)]
pub struct StableMemory {
    chunks: Vec<Option<Box<Chunk>>>,
    size_pages: u64,
    allocated_blocks: u64,
    epoch: u32,
    journal: Option<Journal>,
}

impl fmt::Debug for StableMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StableMemory")
            .field("size_pages", &self.size_pages)
            .field("allocated_bytes", &self.allocated_bytes())
            .field("in_transaction", &self.in_transaction())
            .field("journaled_bytes", &self.journaled_bytes())
            .finish()
    }
}

/// (chunk index, block index within the chunk) of a block.
fn locate(block: u64) -> (usize, usize) {
    let chunk_blocks = CHUNK_BLOCKS as u64;
    (
        (block / chunk_blocks) as usize,
        (block % chunk_blocks) as usize,
    )
}

fn chunks_for_pages(pages: u64) -> usize {
    (pages * BLOCKS_PER_PAGE).div_ceil(CHUNK_BLOCKS as u64) as usize
}

fn is_zero(bytes: &[u8]) -> bool {
    // Word-wise OR per 64-byte piece: vectorises, and still stops at the first non-zero piece.
    bytes
        .chunks(64)
        .all(|piece| piece.iter().fold(0u8, |acc, b| acc | b) == 0)
}

impl StableMemory {
    /// An empty (0-page) stable memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// A memory holding `bytes`; its size is `bytes` rounded up to whole wasm pages, zero padded.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut memory = Self::new();
        let pages = (bytes.len() as u64).div_ceil(WASM_PAGE_BYTES);
        memory.grow(pages, u64::MAX);
        memory
            .write(0, bytes)
            .expect("the memory was grown to hold the bytes");
        memory
    }

    /// Current size in wasm pages.
    pub fn size_pages(&self) -> u64 {
        self.size_pages
    }

    /// Current size in bytes (a whole number of wasm pages).
    pub fn size_bytes(&self) -> u64 {
        self.size_pages * WASM_PAGE_BYTES
    }

    /// Returns the old size in pages, or None if the new size would exceed `max_pages`.
    /// `max_pages` is further capped at [`MAX_STABLE_PAGES`]. New pages read as zeros.
    pub fn grow(&mut self, pages: u64, max_pages: u64) -> Option<u64> {
        let old = self.size_pages;
        let new = old.checked_add(pages)?;
        if new > max_pages.min(MAX_STABLE_PAGES) {
            return None;
        }
        self.size_pages = new;
        self.chunks.resize_with(chunks_for_pages(new), || None);
        Some(old)
    }

    pub(crate) fn check(&self, offset: u64, size: u64) -> Result<(), OutOfBounds> {
        let size_bytes = self.size_bytes();
        match offset.checked_add(size) {
            Some(end) if end <= size_bytes => Ok(()),
            _ => Err(OutOfBounds {
                offset,
                size,
                size_bytes,
            }),
        }
    }

    fn block(&self, block: u64) -> Option<&[u8; BLOCK]> {
        let (chunk, index) = locate(block);
        self.chunks[chunk].as_ref()?.blocks[index].as_deref()
    }

    /// Copies `dst.len()` bytes starting at `offset` into `dst`.
    pub fn read(&self, offset: u64, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        self.check(offset, dst.len() as u64)?;
        let mut position = offset;
        let mut rest = dst;
        while !rest.is_empty() {
            let within = (position % BLOCK_BYTES) as usize;
            let n = rest.len().min(BLOCK - within);
            let (part, tail) = rest.split_at_mut(n);
            match self.block(position / BLOCK_BYTES) {
                Some(block) => part.copy_from_slice(&block[within..within + n]),
                None => part.fill(0),
            }
            position += n as u64;
            rest = tail;
        }
        Ok(())
    }

    /// Copies `src` to `offset`. Inside a transaction, journals each block on its first write.
    pub fn write(&mut self, offset: u64, src: &[u8]) -> Result<(), OutOfBounds> {
        self.check(offset, src.len() as u64)?;
        let mut position = offset;
        let mut rest = src;
        while !rest.is_empty() {
            let within = (position % BLOCK_BYTES) as usize;
            let n = rest.len().min(BLOCK - within);
            let (part, tail) = rest.split_at(n);
            self.write_block(position / BLOCK_BYTES, within, part);
            position += n as u64;
            rest = tail;
        }
        Ok(())
    }

    /// Writes `part` at `within` in one block; `within + part.len() <= BLOCK`.
    fn write_block(&mut self, block: u64, within: usize, part: &[u8]) {
        let (chunk_index, index) = locate(block);
        let slot = &mut self.chunks[chunk_index];
        let present = slot.as_ref().is_some_and(|c| c.blocks[index].is_some());
        if !present && is_zero(part) {
            // Zeros into an absent block change nothing: keep it absent, journal nothing.
            return;
        }
        let chunk = slot.get_or_insert_with(Chunk::new);
        if let Some(journal) = &mut self.journal
            && chunk.stamps[index] != self.epoch
        {
            chunk.stamps[index] = self.epoch;
            journal.saved.push((block, chunk.blocks[index].clone()));
        }
        let data = chunk.blocks[index].get_or_insert_with(|| {
            self.allocated_blocks += 1;
            Box::new([0; BLOCK])
        });
        data[within..within + part.len()].copy_from_slice(part);
    }

    /// The whole content, `size_bytes` long.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0; self.size_bytes() as usize];
        for (chunk_index, chunk) in self.chunks.iter().enumerate() {
            let Some(chunk) = chunk else { continue };
            for (index, block) in chunk.blocks.iter().enumerate() {
                if let Some(block) = block {
                    let start = (chunk_index * CHUNK_BLOCKS + index) * BLOCK;
                    out[start..start + BLOCK].copy_from_slice(&block[..]);
                }
            }
        }
        out
    }

    /// Starts journaling. Panics if a transaction is already open (an engine bug).
    pub fn begin(&mut self) {
        assert!(
            self.journal.is_none(),
            "stable memory transaction already open"
        );
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Stamps from 2^32 transactions ago could be mistaken for current ones: clear them.
            for chunk in self.chunks.iter_mut().flatten() {
                chunk.stamps = [0; CHUNK_BLOCKS];
            }
            self.epoch = 1;
        }
        self.journal = Some(Journal {
            size_pages: self.size_pages,
            saved: Vec::new(),
        });
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.journal.is_some()
    }

    /// Bytes of blocks journaled so far in the open transaction (0 when none is open).
    pub fn journaled_bytes(&self) -> u64 {
        self.journal
            .as_ref()
            .map_or(0, |j| j.saved.len() as u64 * BLOCK_BYTES)
    }

    /// Keeps every change since `begin` and returns how many bytes of blocks were first-touched
    /// (journaled). Panics if no transaction is open (an engine bug).
    pub fn commit(&mut self) -> u64 {
        let bytes = self.journaled_bytes();
        let journal = self.journal.take();
        assert!(journal.is_some(), "stable memory commit without begin");
        bytes
    }

    /// Restores content and size to what they were at `begin`. Panics if no transaction is
    /// open (an engine bug).
    pub fn rollback(&mut self) {
        let journal = self
            .journal
            .take()
            .expect("stable memory rollback without begin");
        // Each block is journaled once per transaction, so the order of restores is free.
        for (block, old) in journal.saved {
            let (chunk_index, index) = locate(block);
            let chunk = self.chunks[chunk_index]
                .as_mut()
                .expect("a journaled block's chunk exists until the rollback");
            let slot = &mut chunk.blocks[index];
            match (slot.is_some(), old.is_some()) {
                (true, false) => self.allocated_blocks -= 1,
                (false, true) => self.allocated_blocks += 1,
                _ => {}
            }
            *slot = old;
        }
        self.size_pages = journal.size_pages;
        // Blocks past the old size were absent at `begin`, so the restores above emptied them.
        let keep = chunks_for_pages(self.size_pages);
        debug_assert!(
            self.chunks[keep..]
                .iter()
                .flatten()
                .all(|c| c.blocks.iter().all(Option::is_none))
        );
        self.chunks.truncate(keep);
    }

    /// Bytes of non-zero (allocated) blocks, for metrics.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_blocks * BLOCK_BYTES
    }
}
