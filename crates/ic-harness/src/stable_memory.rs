//! Host-side stable memory: sparse 4 KiB blocks with a per-transaction undo journal.
//!
//! Layout: the address space is cut into 4 KiB blocks, grouped into chunks of
//! `CHUNK_BLOCKS` blocks. The top-level vector holds one `Option<Box<Chunk>>` per chunk of the
//! current size (8 bytes per MiB even when nothing is written); a chunk holds one journal
//! stamp per block and which blocks are present. An absent chunk or block reads as zeros.
//!
//! Storage ([`StableStorage`]): in RAM a present block is a boxed 4 KiB array in its chunk;
//! on disk the chunk keeps one bit per block and the contents live in a sparse unlinked file
//! (`disk.rs`), so only the bookkeeping (about 1 KiB per MiB) and the journal stay resident.
//! Both behave identically: same contents, sizes, journal, `commit` byte counts and
//! `allocated_bytes`.
//!
//! Invariants:
//! - `chunks.len() == ceil(size_blocks / CHUNK_BLOCKS)`, and every block at or beyond
//!   `size_blocks` is absent;
//! - `allocated_blocks` counts the present blocks;
//! - every chunk's slots are `Slots::Disk` iff `file` is `Some`; the file's length is
//!   `size_bytes`, and an absent block's bytes in it are zeros;
//! - while a transaction is open, `stamps[b] == epoch` iff block `b` has an entry in the
//!   journal, and that entry holds the block's content at `begin`. `epoch` is never 0 while a
//!   transaction is open, and 0 means "never journaled".

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

mod disk;
#[cfg(test)]
mod tests;

use disk::BlockFile;

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
/// Words of a chunk's presence bitmap (disk storage).
const PRESENT_WORDS: usize = CHUNK_BLOCKS.div_ceil(64);

/// Where a stable memory keeps the contents of its blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StableStorage {
    /// In this process's memory (the default).
    #[default]
    Ram,
    /// In one sparse temporary file per memory, created (and at once unlinked) in this
    /// directory; only the bookkeeping and the open transaction's journal stay in RAM.
    Disk(Arc<PathBuf>),
}

impl StableStorage {
    /// Disk storage in `dir`.
    pub fn disk(dir: impl Into<PathBuf>) -> Self {
        Self::Disk(Arc::new(dir.into()))
    }

    /// `Disk` in the directory named by the environment variable
    /// [`STABLE_MEMORY_DIR_ENV`] when it is set and not empty, else `Ram`.
    pub fn from_env() -> Self {
        match std::env::var_os(STABLE_MEMORY_DIR_ENV) {
            Some(dir) if !dir.is_empty() => Self::disk(dir),
            _ => Self::Ram,
        }
    }
}

/// Environment variable read by `HarnessBuilder::new`: a directory in which every
/// canister's stable memory is kept on disk (long `--ignored` runs opt in with it).
pub const STABLE_MEMORY_DIR_ENV: &str = "IC_HARNESS_STABLE_MEMORY_DIR";

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

/// Which blocks of a chunk are present, and (in RAM) their contents.
#[derive(Clone)]
enum Slots {
    /// RAM storage: the content of each present block.
    Ram(Box<[Option<Block>; CHUNK_BLOCKS]>),
    /// Disk storage: one bit per present block; the contents are in the file.
    Disk([u64; PRESENT_WORDS]),
}

#[derive(Clone)]
struct Chunk {
    slots: Slots,
    /// Epoch of the transaction that journaled each block (0: never).
    stamps: [u32; CHUNK_BLOCKS],
}

impl Chunk {
    fn new(on_disk: bool) -> Box<Self> {
        let slots = if on_disk {
            Slots::Disk([0; PRESENT_WORDS])
        } else {
            Slots::Ram(Box::new(std::array::from_fn(|_| None)))
        };
        Box::new(Chunk {
            slots,
            stamps: [0; CHUNK_BLOCKS],
        })
    }

    fn present(&self, index: usize) -> bool {
        match &self.slots {
            Slots::Ram(blocks) => blocks[index].is_some(),
            Slots::Disk(bits) => bits[index / 64] & (1 << (index % 64)) != 0,
        }
    }

    /// Disk storage: marks block `index` present or absent.
    fn set_present(&mut self, index: usize, present: bool) {
        if let Slots::Disk(bits) = &mut self.slots {
            if present {
                bits[index / 64] |= 1 << (index % 64);
            } else {
                bits[index / 64] &= !(1 << (index % 64));
            }
        }
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
#[derive(Default)]
pub struct StableMemory {
    chunks: Vec<Option<Box<Chunk>>>,
    size_pages: u64,
    allocated_blocks: u64,
    epoch: u32,
    journal: Option<Journal>,
    /// Disk storage: the file holding the blocks' contents (`None`: RAM).
    file: Option<BlockFile>,
}

impl Clone for StableMemory {
    /// An independent copy; on disk, a new file holding copies of the present blocks only.
    fn clone(&self) -> Self {
        let file = self.file.as_ref().map(|file| {
            let runs = self
                .present_runs()
                .map(|(block, blocks)| (block * BLOCK_BYTES, blocks * BLOCK_BYTES));
            file.duplicate(self.size_bytes(), runs)
        });
        Self {
            chunks: self.chunks.clone(),
            size_pages: self.size_pages,
            allocated_blocks: self.allocated_blocks,
            epoch: self.epoch,
            journal: self.journal.clone(),
            file,
        }
    }
}

impl fmt::Debug for StableMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StableMemory")
            .field("size_pages", &self.size_pages)
            .field("allocated_bytes", &self.allocated_bytes())
            .field("in_transaction", &self.in_transaction())
            .field("journaled_bytes", &self.journaled_bytes())
            .field("storage", &self.storage())
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
    /// An empty (0-page) stable memory in RAM.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty (0-page) stable memory kept in `storage`.
    pub fn new_in(storage: &StableStorage) -> Self {
        match storage {
            StableStorage::Ram => Self::new(),
            StableStorage::Disk(dir) => Self {
                file: Some(BlockFile::create(dir)),
                ..Self::default()
            },
        }
    }

    /// An empty memory kept where this one is (a fresh file on disk).
    pub fn empty_like(&self) -> Self {
        Self::new_in(&self.storage())
    }

    /// Where the blocks' contents are kept.
    pub fn storage(&self) -> StableStorage {
        match &self.file {
            None => StableStorage::Ram,
            Some(file) => StableStorage::Disk(Arc::clone(file.dir())),
        }
    }

    /// A memory holding `bytes`; its size is `bytes` rounded up to whole wasm pages, zero padded.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self::from_bytes_in(&StableStorage::Ram, bytes)
    }

    /// [`Self::from_bytes`] kept in `storage`.
    pub fn from_bytes_in(storage: &StableStorage, bytes: &[u8]) -> Self {
        let mut memory = Self::new_in(storage);
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
        if let Some(file) = &self.file {
            file.set_len(self.size_bytes());
        }
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

    fn present(&self, block: u64) -> bool {
        let (chunk, index) = locate(block);
        self.chunks[chunk]
            .as_ref()
            .is_some_and(|c| c.present(index))
    }

    /// Runs of consecutive present blocks as (first block, number of blocks), in order.
    fn present_runs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut blocks = self
            .chunks
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
            .flat_map(|(i, chunk)| {
                (0..CHUNK_BLOCKS)
                    .filter(|&index| chunk.present(index))
                    .map(move |index| (i * CHUNK_BLOCKS + index) as u64)
            })
            .peekable();
        std::iter::from_fn(move || {
            let first = blocks.next()?;
            let mut count = 1;
            while blocks.next_if_eq(&(first + count)).is_some() {
                count += 1;
            }
            Some((first, count))
        })
    }

    /// Copies `dst.len()` bytes starting at `offset` into `dst`.
    pub fn read(&self, offset: u64, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        self.check(offset, dst.len() as u64)?;
        if let Some(file) = &self.file {
            // Absent blocks are zeros in the file too.
            if !dst.is_empty() {
                file.read(offset, dst);
            }
            return Ok(());
        }
        let mut position = offset;
        let mut rest = dst;
        while !rest.is_empty() {
            let within = (position % BLOCK_BYTES) as usize;
            let n = rest.len().min(BLOCK - within);
            let (part, tail) = rest.split_at_mut(n);
            let (chunk, index) = locate(position / BLOCK_BYTES);
            let block = match self.chunks[chunk].as_deref().map(|c| &c.slots) {
                Some(Slots::Ram(blocks)) => blocks[index].as_deref(),
                _ => None,
            };
            match block {
                Some(block) => part.copy_from_slice(&block[within..within + n]),
                None => part.fill(0),
            }
            position += n as u64;
            rest = tail;
        }
        Ok(())
    }

    /// Copies `src` to `offset`. Inside a transaction, journals each block on its first write.
    /// On disk, the bytes go to the file in one write per run of blocks that take them.
    pub fn write(&mut self, offset: u64, src: &[u8]) -> Result<(), OutOfBounds> {
        self.check(offset, src.len() as u64)?;
        // Disk: the pending run of bytes to write, as a range of `src`.
        let mut run = 0..0;
        let mut position = offset;
        while position - offset < src.len() as u64 {
            let start = (position - offset) as usize;
            let within = (position % BLOCK_BYTES) as usize;
            let n = (src.len() - start).min(BLOCK - within);
            let part = &src[start..start + n];
            let taken = self.write_block(position / BLOCK_BYTES, within, part);
            if let Some(file) = &self.file {
                if taken && run.end == start {
                    run.end = start + n;
                } else {
                    if !run.is_empty() {
                        file.write(offset + run.start as u64, &src[run.clone()]);
                    }
                    run = if taken { start..start + n } else { 0..0 };
                }
            }
            position += n as u64;
        }
        if let Some(file) = &self.file
            && !run.is_empty()
        {
            file.write(offset + run.start as u64, &src[run]);
        }
        Ok(())
    }

    /// Writes `part` at `within` in one block; `within + part.len() <= BLOCK`. Returns false
    /// when nothing was to be written (zeros into an absent block); on disk the caller then
    /// writes the bytes to the file when it returns true.
    fn write_block(&mut self, block: u64, within: usize, part: &[u8]) -> bool {
        let present = self.present(block);
        if !present && is_zero(part) {
            // Zeros into an absent block change nothing: keep it absent, journal nothing.
            return false;
        }
        let (chunk_index, index) = locate(block);
        let on_disk = self.file.is_some();
        let chunk = self.chunks[chunk_index].get_or_insert_with(|| Chunk::new(on_disk));
        if let Some(journal) = &mut self.journal
            && chunk.stamps[index] != self.epoch
        {
            chunk.stamps[index] = self.epoch;
            let old = match (&chunk.slots, &self.file) {
                (Slots::Ram(blocks), _) => blocks[index].clone(),
                (Slots::Disk(_), Some(file)) if present => {
                    let mut old = Box::new([0; BLOCK]);
                    file.read(block * BLOCK_BYTES, &mut old[..]);
                    Some(old)
                }
                (Slots::Disk(_), _) => None,
            };
            journal.saved.push((block, old));
        }
        if !present {
            self.allocated_blocks += 1;
        }
        match &mut chunk.slots {
            Slots::Ram(blocks) => {
                let data = blocks[index].get_or_insert_with(|| Box::new([0; BLOCK]));
                data[within..within + part.len()].copy_from_slice(part);
            }
            Slots::Disk(_) => chunk.set_present(index, true),
        }
        true
    }

    /// The whole content, `size_bytes` long.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0; self.size_bytes() as usize];
        self.read(0, &mut out)
            .expect("the whole memory is within its size");
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
        let old_bytes = journal.size_pages * WASM_PAGE_BYTES;
        // Each block is journaled once per transaction, so the order of restores is free.
        for (block, old) in journal.saved {
            let (chunk_index, index) = locate(block);
            let chunk = self.chunks[chunk_index]
                .as_mut()
                .expect("a journaled block's chunk exists until the rollback");
            match (chunk.present(index), old.is_some()) {
                (true, false) => self.allocated_blocks -= 1,
                (false, true) => self.allocated_blocks += 1,
                _ => {}
            }
            match (&mut chunk.slots, &self.file) {
                (Slots::Ram(blocks), _) => blocks[index] = old,
                (Slots::Disk(_), Some(file)) => {
                    chunk.set_present(index, old.is_some());
                    // Blocks past the old size go with the truncation below.
                    if block * BLOCK_BYTES < old_bytes {
                        let content = old.as_deref().unwrap_or(&[0; BLOCK]);
                        file.write(block * BLOCK_BYTES, content);
                    }
                }
                (Slots::Disk(_), None) => unreachable!("disk slots imply a file"),
            }
        }
        self.size_pages = journal.size_pages;
        if let Some(file) = &self.file {
            file.set_len(old_bytes);
        }
        // Blocks past the old size were absent at `begin`, so the restores above emptied them.
        let keep = chunks_for_pages(self.size_pages);
        debug_assert!(
            self.chunks[keep..]
                .iter()
                .flatten()
                .all(|c| (0..CHUNK_BLOCKS).all(|i| !c.present(i)))
        );
        self.chunks.truncate(keep);
    }

    /// Bytes of non-zero (allocated) blocks, for metrics.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_blocks * BLOCK_BYTES
    }
}
