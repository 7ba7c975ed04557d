//! Per-execution stable-memory page accounting, as the replica's wasm-native stable memory
//! does it (`system_api_replacements.rs` in dfinity/ic): each execution tracks which 4 KiB
//! pages it has accessed (read or written) and dirtied (written); a `stable64_read` or
//! `stable64_write` whose new pages would take either count past the execution's limit
//! traps before touching memory, and every newly dirtied page is charged
//! [`DIRTY_PAGE_OVERHEAD`](crate::weights::DIRTY_PAGE_OVERHEAD) instructions.
//!
//! Invariant: `accessed ⊇ dirty`, `accessed.len() <= limits.accessed` and
//! `dirty.len() <= limits.dirty` at all times (a refused access records nothing).

use std::collections::HashMap;

use crate::limits;
use crate::system_api::ApiContext;
use crate::weights::OS_PAGE_BYTES;

const CHUNK_PAGES: u64 = 4096;
const WORDS: usize = (CHUNK_PAGES / 64) as usize;

/// A sparse set of page indices (bitmap chunks of 4,096 pages).
#[derive(Debug, Clone, Default)]
struct PageSet {
    chunks: HashMap<u64, Box<[u64; WORDS]>>,
    len: u64,
}

impl PageSet {
    fn contains(&self, page: u64) -> bool {
        let (chunk, word, bit) = split(page);
        self.chunks
            .get(&chunk)
            .is_some_and(|words| words[word] & (1 << bit) != 0)
    }

    fn insert(&mut self, page: u64) {
        let (chunk, word, bit) = split(page);
        let words = self
            .chunks
            .entry(chunk)
            .or_insert_with(|| Box::new([0; WORDS]));
        if words[word] & (1 << bit) == 0 {
            words[word] |= 1 << bit;
            self.len += 1;
        }
    }

    fn missing(&self, pages: std::ops::Range<u64>) -> u64 {
        pages.filter(|p| !self.contains(*p)).count() as u64
    }
}

fn split(page: u64) -> (u64, usize, u32) {
    let within = page % CHUNK_PAGES;
    (
        page / CHUNK_PAGES,
        (within / 64) as usize,
        (within % 64) as u32,
    )
}

/// Most pages one execution may access and dirty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    /// Pages read or written.
    pub accessed: u64,
    /// Pages written.
    pub dirty: u64,
}

impl PageLimits {
    /// The replica's limits for an execution in `context` (`SystemApiImpl::get_page_limit`):
    /// install and upgrade code (`canister_init`, `canister_pre_upgrade`,
    /// `canister_post_upgrade`) get the upgrade limits, queries and `inspect_message` the
    /// query limits, everything else (updates, callbacks, timers, the start function) the
    /// message limits.
    #[must_use]
    pub fn for_context(context: ApiContext) -> Self {
        let (accessed, dirty) = match context {
            ApiContext::Init | ApiContext::PreUpgrade => (
                limits::STABLE_ACCESSED_LIMIT_UPGRADE_BYTES,
                limits::STABLE_DIRTY_LIMIT_UPGRADE_BYTES,
            ),
            ApiContext::ReplicatedQuery
            | ApiContext::NonReplicatedQuery
            | ApiContext::CompositeQuery
            | ApiContext::InspectMessage => (
                limits::STABLE_ACCESSED_LIMIT_QUERY_BYTES,
                limits::STABLE_DIRTY_LIMIT_QUERY_BYTES,
            ),
            _ => (
                limits::STABLE_ACCESSED_LIMIT_MESSAGE_BYTES,
                limits::STABLE_DIRTY_LIMIT_MESSAGE_BYTES,
            ),
        };
        Self {
            accessed: accessed / OS_PAGE_BYTES,
            dirty: dirty / OS_PAGE_BYTES,
        }
    }
}

/// An access refused because it would exceed a page limit (IC0524).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PageLimitExceeded {
    /// Too many pages read or written.
    #[error(
        "Exceeded the limit for the number of accessed pages in the stable memory in a single message execution: limit {} KB for regular messages and {} KB for queries",
        limits::STABLE_ACCESSED_LIMIT_MESSAGE_BYTES / 1024,
        limits::STABLE_ACCESSED_LIMIT_QUERY_BYTES / 1024
    )]
    Accessed,
    /// Too many pages written.
    #[error(
        "Exceeded the limit for the number of modified pages in the stable memory in a single execution: limit {} KB for regular messages, {} KB for upgrade messages and {} KB for queries",
        limits::STABLE_DIRTY_LIMIT_MESSAGE_BYTES / 1024,
        limits::STABLE_DIRTY_LIMIT_UPGRADE_BYTES / 1024,
        limits::STABLE_DIRTY_LIMIT_QUERY_BYTES / 1024
    )]
    Dirty,
}

/// The pages one execution has accessed and dirtied.
#[derive(Debug, Clone)]
pub struct ExecPages {
    limits: PageLimits,
    accessed: PageSet,
    dirty: PageSet,
}

impl Default for ExecPages {
    fn default() -> Self {
        Self::new(PageLimits::for_context(ApiContext::Update))
    }
}

fn pages(offset: u64, size: u64) -> std::ops::Range<u64> {
    if size == 0 {
        return 0..0;
    }
    offset / OS_PAGE_BYTES..(offset + size - 1) / OS_PAGE_BYTES + 1
}

impl ExecPages {
    /// Nothing accessed yet, under `limits`.
    #[must_use]
    pub fn new(limits: PageLimits) -> Self {
        Self {
            limits,
            accessed: PageSet::default(),
            dirty: PageSet::default(),
        }
    }

    /// Records a read of `size` bytes at `offset` (in bounds), or refuses it.
    pub fn read(&mut self, offset: u64, size: u64) -> Result<(), PageLimitExceeded> {
        let range = pages(offset, size);
        if self.accessed.missing(range.clone()) > self.limits.accessed - self.accessed.len {
            return Err(PageLimitExceeded::Accessed);
        }
        range.for_each(|p| self.accessed.insert(p));
        Ok(())
    }

    /// Records a write of `size` bytes at `offset` (in bounds) and returns the number of
    /// pages it dirties for the first time in this execution, or refuses it.
    pub fn write(&mut self, offset: u64, size: u64) -> Result<u64, PageLimitExceeded> {
        let range = pages(offset, size);
        if self.accessed.missing(range.clone()) > self.limits.accessed - self.accessed.len {
            return Err(PageLimitExceeded::Accessed);
        }
        let new_dirty = self.dirty.missing(range.clone());
        if new_dirty > self.limits.dirty - self.dirty.len {
            return Err(PageLimitExceeded::Dirty);
        }
        for p in range {
            self.accessed.insert(p);
            self.dirty.insert(p);
        }
        Ok(new_dirty)
    }

    /// Pages dirtied so far.
    #[cfg(test)]
    #[must_use]
    pub fn dirty_pages(&self) -> u64 {
        self.dirty.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn limits_are_the_replicas() {
        // rs/config/src/embedders.rs: 2 GiB per message, 8 GiB per install/upgrade, 1 GiB
        // per query, for both dirtied and accessed pages (4 KiB OS pages).
        assert_eq!(limits::STABLE_DIRTY_LIMIT_MESSAGE_BYTES, 2 * GIB);
        assert_eq!(limits::STABLE_DIRTY_LIMIT_UPGRADE_BYTES, 8 * GIB);
        assert_eq!(limits::STABLE_DIRTY_LIMIT_QUERY_BYTES, GIB);
        assert_eq!(limits::STABLE_ACCESSED_LIMIT_MESSAGE_BYTES, 2 * GIB);
        assert_eq!(limits::STABLE_ACCESSED_LIMIT_UPGRADE_BYTES, 8 * GIB);
        assert_eq!(limits::STABLE_ACCESSED_LIMIT_QUERY_BYTES, GIB);
        let upgrade = PageLimits::for_context(ApiContext::Init);
        assert_eq!(upgrade, PageLimits::for_context(ApiContext::PreUpgrade));
        assert_eq!(upgrade.dirty, 8 * GIB / 4096);
        assert_eq!(
            PageLimits::for_context(ApiContext::Update).dirty,
            2 * GIB / 4096
        );
        assert_eq!(
            PageLimits::for_context(ApiContext::ReplyCallback).dirty,
            2 * GIB / 4096
        );
        assert_eq!(
            PageLimits::for_context(ApiContext::NonReplicatedQuery).dirty,
            GIB / 4096
        );
        assert_eq!(
            PageLimits::for_context(ApiContext::InspectMessage).accessed,
            GIB / 4096
        );
    }

    #[test]
    fn an_upgrade_may_dirty_8_gib_and_not_one_page_more() {
        let mut pages = ExecPages::new(PageLimits::for_context(ApiContext::Init));
        let chunk = 256 << 20;
        for i in 0..32 {
            assert_eq!(pages.write(i * chunk, chunk), Ok(chunk / 4096));
        }
        assert_eq!(pages.dirty_pages(), 8 * GIB / 4096);
        // Rewriting dirtied pages is free and allowed; one new page is not.
        assert_eq!(pages.write(0, 4096), Ok(0));
        assert_eq!(pages.write(8 * GIB, 1), Err(PageLimitExceeded::Accessed));
        assert_eq!(pages.dirty_pages(), 8 * GIB / 4096);
    }

    #[test]
    fn dirty_limit_applies_to_pages_already_read() {
        let limits = PageLimits {
            accessed: 4,
            dirty: 2,
        };
        let mut pages = ExecPages::new(limits);
        assert_eq!(pages.read(0, 4 * 4096), Ok(()));
        assert_eq!(pages.write(4095, 2), Ok(2));
        assert_eq!(pages.write(2 * 4096, 1), Err(PageLimitExceeded::Dirty));
        assert_eq!(pages.read(4 * 4096, 1), Err(PageLimitExceeded::Accessed));
        assert_eq!(pages.write(0, 0), Ok(0));
    }
}
