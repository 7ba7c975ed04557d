//! The kit's stable-memory layout and the app image's read/write path.
//!
//! ```text
//! raw stable memory ── MemoryManager (owned by the kit)
//!   MemoryId 0  image A ┐ the app sees exactly one of them (state.active_image);
//!   MemoryId 1  image B ┘ the other one is the restore staging area
//!   MemoryId 2  KitState cell (config, progress)
//!   MemoryId 3  copy-on-write store: chunk index → content at the freeze
//!   MemoryId 4  digest table ┐ one holds the known digests (chunk index → digest in the
//!   MemoryId 8  digest table ┘ last complete backup), the other stages a restore's
//!               digests (state.known_table); a restore's switch swaps them in O(1)
//!   MemoryId 5  pending hashes: chunk index → digest acknowledged in this backup
//!   MemoryId 6  dirty bitmap: chunks written since the last freeze
//!   MemoryId 7  to-send bitmap: chunks of this backup not yet acknowledged
//!   MemoryId 9  data-set staging memory: the data set being backed up
//!   MemoryId 10 data-set records: id → name, vault, last backup
//!   MemoryId 11 data-set known hashes: (data set, chunk index) → digest in its last backup
//!   MemoryId 12 data-set queue: sequence → (data set, bytes)
//!   MemoryId 13 data-set queue index: sequence → (data set, byte length), so the
//!               queue's caps are checked without reading queued bytes (added in
//!               state generation 3; built from the queue when absent)
//!   MemoryId 14 frozen bitmap: the chunks this backup had to send at its freeze (a
//!               failure marks them dirty again in one word-wise pass; rebuilt from
//!               the to-send bitmap and the pending table when absent)
//! ```
//! Ids are never reused. The backed-up image is exactly the app's memory: the kit's
//! own state lives outside it, so a restore never overwrites the kit.
//!
//! Invariants of the write path, during a backup frozen at image size `S`:
//! - every chunk the app writes is marked dirty (it goes into the next backup);
//! - the first write to a chunk still in the to-send set saves its content at the
//!   freeze into the copy-on-write store first, so the backup is exactly the image
//!   at the freeze while the app keeps writing.

use std::collections::{BTreeSet, HashSet};

use canvault_protocol::Hash256;
use canvault_protocol::chunk::chunk_len;
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::{Memory, StableBTreeMap, StableCell};

use crate::adopt::{self, AdoptError, Adoption, Layout};
use crate::bitmap::Bitmap;
use crate::dataset::{DatasetJob, DatasetRecord};
use crate::integrity;
use crate::state::{KitState, Target};

/// Bytes per wasm page.
pub const WASM_PAGE: u64 = 65_536;

const IMAGE_A: MemoryId = MemoryId::new(0);
const IMAGE_B: MemoryId = MemoryId::new(1);
const STATE: MemoryId = MemoryId::new(2);
const COW: MemoryId = MemoryId::new(3);
const KNOWN: MemoryId = MemoryId::new(4);
const PENDING: MemoryId = MemoryId::new(5);
const DIRTY: MemoryId = MemoryId::new(6);
const SEND: MemoryId = MemoryId::new(7);
const STAGED: MemoryId = MemoryId::new(8);
const DATASET_STAGE: MemoryId = MemoryId::new(9);
const DATASETS: MemoryId = MemoryId::new(10);
const DATASET_KNOWN: MemoryId = MemoryId::new(11);
const DATASET_QUEUE: MemoryId = MemoryId::new(12);
const DATASET_QUEUE_INDEX: MemoryId = MemoryId::new(13);
const FROZEN: MemoryId = MemoryId::new(14);

/// Known-table entries read into the digest-prefix set per planning call.
pub const KNOWN_SET_STEP: usize = 16_384;
/// Most entries of the digest-prefix set (~18 MiB of heap); a larger known table is
/// indexed up to this many entries, and the same-index check covers the rest.
pub const KNOWN_SET_CAP: usize = 1 << 20;

type Vm<M> = VirtualMemory<M>;

/// The first 8 bytes of known digests (a match is a hint the vault verifies: a wrong
/// one costs a resend, never a wrong snapshot).
struct KnownSet {
    target: Target,
    /// The next known-table index to read (`None`: built).
    next: Option<u32>,
    prefixes: HashSet<u64>,
}

fn prefix(h: &[u8; 32]) -> u64 {
    u64::from_le_bytes(h[..8].try_into().expect("8 bytes"))
}

/// All of the kit's persistent structures, over raw stable memory `M`.
pub struct Kit<M: Memory> {
    pub(crate) images: [Vm<M>; 2],
    pub(crate) state: StableCell<KitState, Vm<M>>,
    pub(crate) cow: StableBTreeMap<u32, Vec<u8>, Vm<M>>,
    pub(crate) known: StableBTreeMap<u32, [u8; 32], Vm<M>>,
    pub(crate) pending: StableBTreeMap<u32, [u8; 32], Vm<M>>,
    pub(crate) dirty: Bitmap<Vm<M>>,
    pub(crate) send: Bitmap<Vm<M>>,
    pub(crate) frozen: Bitmap<Vm<M>>,
    pub(crate) staged: StableBTreeMap<u32, [u8; 32], Vm<M>>,
    pub(crate) dataset_stage: Vm<M>,
    pub(crate) datasets: StableBTreeMap<u64, DatasetRecord, Vm<M>>,
    pub(crate) dataset_known: StableBTreeMap<(u64, u32), [u8; 32], Vm<M>>,
    pub(crate) dataset_queue: StableBTreeMap<u64, DatasetJob, Vm<M>>,
    pub(crate) dataset_queue_index: StableBTreeMap<u64, (u64, u64), Vm<M>>,
    /// Heap mirror of the copy-on-write store's keys (the write path must not touch stable
    /// memory to find out whether a chunk was already preserved).
    preserved: BTreeSet<u32>,
    /// Digest prefixes the vault holds from the target's last complete backup, built a
    /// slice per planning call (heap only: rebuilt after an upgrade).
    known_set: Option<KnownSet>,
    /// The raw stable memory under the memory manager (read to detect foreign use).
    raw: M,
}

impl<M: Memory + Clone> Kit<M> {
    /// Opens the kit's structures in `raw` (fresh memory: an empty image).
    ///
    /// # Panics
    /// If `raw` is not empty and does not hold the kit's layout (its memory-manager
    /// header, a state cell matching its checksum): in `post_upgrade` the trap makes
    /// the IC keep the old module rather than re-initialise over memory the kit cannot
    /// read. Generation-2 state is migrated and written back as generation 3.
    pub fn load(raw: M) -> Self {
        Self::open(raw)
            .unwrap_or_else(|e| panic!("canvault kit: refusing to load stable memory: {e}"))
    }

    /// As [`Kit::load`], but memory that is not the kit's layout is an error, not a
    /// trap (for tools that read a canister's stable memory off-chain). A state cell
    /// whose checksum does not match still panics.
    ///
    /// # Errors
    /// `raw` is not empty and has no kit memory-manager header or no kit state cell.
    pub fn open(raw: M) -> Result<Self, integrity::Foreign> {
        let fresh = raw.size() == 0;
        if !fresh {
            integrity::check_manager_header(&raw)?;
        }
        let manager = MemoryManager::init(raw.clone());
        if !fresh {
            integrity::check_state_cell(&manager.get(STATE))?;
        }
        Ok(Self::build(raw, &manager))
    }

    /// Opens the kit like [`Kit::load`] if `raw` is empty or the kit's layout, and
    /// otherwise adopts it: the old bytes become the app image, byte for byte (see
    /// `adopt.rs` for how and its invariants). Only for an explicit adopting
    /// `post_upgrade`: [`Kit::load`] never adopts.
    ///
    /// # Errors
    /// The memory is foreign and cannot be adopted; nothing was written.
    ///
    /// # Panics
    /// As [`Kit::load`] on a kit layout it cannot read.
    pub fn load_or_adopt(raw: M) -> Result<(Self, Adoption), AdoptError> {
        Self::load_or_adopt_with(raw, adopt::MAX_ADOPTION_BYTES, adopt::BLOCK_BYTES)
    }

    /// [`Kit::load_or_adopt`] with a size limit and a move block size (tests).
    pub(crate) fn load_or_adopt_with(
        raw: M,
        limit: u64,
        block: u64,
    ) -> Result<(Self, Adoption), AdoptError> {
        match adopt::classify(&raw, STATE) {
            Layout::Empty => Ok((Self::load(raw), Adoption::Fresh)),
            Layout::Kit => Ok((Self::load(raw), Adoption::AlreadyKit)),
            Layout::Foreign => {
                let bytes = raw.size() * WASM_PAGE;
                let (manager, pages) = adopt::relocate(&raw, IMAGE_A, limit, block)?;
                let mut kit = Self::build(raw, &manager);
                kit.update_state(|s| s.image_pages = pages);
                let raw_bytes_after = kit.raw.size() * WASM_PAGE;
                Ok((
                    kit,
                    Adoption::Adopted {
                        bytes,
                        raw_bytes_after,
                    },
                ))
            }
        }
    }

    /// Creates or opens every structure of the kit in `manager` (over `raw`).
    fn build(raw: M, manager: &MemoryManager<M>) -> Self {
        let cow: StableBTreeMap<u32, Vec<u8>, Vm<M>> = StableBTreeMap::init(manager.get(COW));
        let preserved = cow.keys().collect();
        let mut state = StableCell::init(manager.get(STATE), KitState::default());
        // Writes a migrated (older generation) state back in the current one.
        let current = state.get().clone();
        state.set(current);
        let (known, staged) = if state.get().known_table == 0 {
            (KNOWN, STAGED)
        } else {
            (STAGED, KNOWN)
        };
        Self {
            images: [manager.get(IMAGE_A), manager.get(IMAGE_B)],
            state,
            cow,
            known: StableBTreeMap::init(manager.get(known)),
            pending: StableBTreeMap::init(manager.get(PENDING)),
            dirty: Bitmap::load(manager.get(DIRTY)),
            send: Bitmap::load(manager.get(SEND)),
            frozen: Bitmap::load(manager.get(FROZEN)),
            staged: StableBTreeMap::init(manager.get(staged)),
            dataset_stage: manager.get(DATASET_STAGE),
            datasets: StableBTreeMap::init(manager.get(DATASETS)),
            dataset_known: StableBTreeMap::init(manager.get(DATASET_KNOWN)),
            dataset_queue: StableBTreeMap::init(manager.get(DATASET_QUEUE)),
            dataset_queue_index: StableBTreeMap::init(manager.get(DATASET_QUEUE_INDEX)),
            preserved,
            known_set: None,
            raw,
        }
        .migrated()
    }

    /// Builds structures added since the state generation found (generation 2 had no
    /// data-set queue index; kits before the frozen bitmap recorded a backup's chunks
    /// only in the to-send bitmap and the pending table).
    fn migrated(mut self) -> Self {
        if let Some(b) = self.state.get().backup.as_ref()
            && self.frozen.count() == 0
        {
            let count = canvault_protocol::chunk::chunk_count(b.image_size, b.chunk_size);
            self.frozen.union_below(&self.send, count);
            let acked: Vec<u32> = self.pending.keys().collect();
            for i in acked {
                self.frozen.set(i);
            }
        }
        if self.dataset_queue_index.len() != self.dataset_queue.len() {
            self.dataset_queue_index.clear_new();
            let jobs: Vec<(u64, (u64, u64))> = self
                .dataset_queue
                .iter()
                .map(|e| {
                    let job = e.value();
                    (*e.key(), (job.dataset_id, job.bytes.len() as u64))
                })
                .collect();
            for (seq, entry) in jobs {
                self.dataset_queue_index.insert(seq, entry);
            }
        }
        self
    }

    /// Whether something besides the kit grew or overwrote raw stable memory.
    pub fn foreign_stable_memory(&self) -> Option<integrity::Foreign> {
        integrity::foreign_use(&self.raw)
    }
}

impl<M: Memory> Kit<M> {
    /// The persisted state.
    pub fn state(&self) -> &KitState {
        self.state.get()
    }

    /// Changes the persisted state.
    pub fn update_state(&mut self, f: impl FnOnce(&mut KitState)) {
        let mut s = self.state.get().clone();
        f(&mut s);
        self.state.set(s);
    }

    /// The app image's logical size in pages.
    pub fn image_pages(&self) -> u64 {
        self.state.get().image_pages
    }

    fn active(&self) -> &Vm<M> {
        &self.images[usize::from(self.state.get().active_image)]
    }

    pub(crate) fn staging(&self) -> &Vm<M> {
        &self.images[usize::from(1 - self.state.get().active_image)]
    }

    fn check_bounds(&self, offset: u64, len: usize) {
        let size = self.image_pages() * WASM_PAGE;
        let end = offset.checked_add(len as u64);
        assert!(
            end.is_some_and(|e| e <= size),
            "app memory access out of bounds: offset {offset} + {len} > {size} bytes"
        );
    }

    /// Reads from the app image (traps out of bounds, as stable memory does).
    pub fn image_read(&self, offset: u64, dst: &mut [u8]) {
        self.check_bounds(offset, dst.len());
        self.active().read(offset, dst);
    }

    /// Writes to the app image: marks chunks dirty and preserves frozen content first.
    pub fn image_write(&mut self, offset: u64, src: &[u8]) {
        self.check_bounds(offset, src.len());
        if !src.is_empty() {
            self.touch(offset, src.len() as u64);
        }
        self.active().write(offset, src);
    }

    /// Grows the app image; returns the old size in pages, or -1.
    pub fn image_grow(&mut self, pages: u64) -> i64 {
        let old = self.image_pages();
        let Some(new) = old.checked_add(pages) else {
            return -1;
        };
        let underlying = self.active().size();
        if underlying < new && self.active().grow(new - underlying) < 0 {
            return -1;
        }
        // A reused image (a former staging area) may hold stale bytes past the old end.
        let stale_end = underlying.min(new);
        if stale_end > old {
            let zeros = vec![0u8; WASM_PAGE as usize];
            for page in old..stale_end {
                self.active().write(page * WASM_PAGE, &zeros);
            }
        }
        if pages > 0 {
            self.touch(old * WASM_PAGE, pages * WASM_PAGE);
        }
        self.update_state(|s| s.image_pages = new);
        i64::try_from(old).expect("page counts fit i64")
    }

    /// Marks the chunks of `[offset, offset+len)` dirty, preserving frozen content first.
    fn touch(&mut self, offset: u64, len: u64) {
        let cs = u64::from(self.state.get().known_chunk_size);
        let first = u32::try_from(offset / cs).expect("chunk index fits u32");
        let last = u32::try_from((offset + len - 1) / cs).expect("chunk index fits u32");
        let frozen = self
            .state
            .get()
            .backup
            .as_ref()
            .filter(|b| b.target == Target::Image)
            .map(|b| (b.image_size, b.chunk_size));
        for i in first..=last {
            self.dirty.set(i);
            if let Some((size, chunk_size)) = frozen
                && self.send.get(i)
                && !self.preserved.contains(&i)
            {
                let mut content = vec![0u8; chunk_len(i, size, chunk_size) as usize];
                self.active()
                    .read(u64::from(i) * u64::from(chunk_size), &mut content);
                self.cow.insert(i, content);
                self.preserved.insert(i);
            }
        }
    }

    /// Content of chunk `i` of the backup's target as it was at the freeze.
    pub(crate) fn frozen_chunk(
        &self,
        target: Target,
        i: u32,
        image_size: u64,
        chunk_size: u32,
    ) -> Vec<u8> {
        let mut content = vec![0u8; chunk_len(i, image_size, chunk_size) as usize];
        let offset = u64::from(i) * u64::from(chunk_size);
        match target {
            Target::Image => {
                if let Some(saved) = self.cow.get(&i) {
                    return saved;
                }
                self.active().read(offset, &mut content);
            }
            Target::Dataset(_) => self.dataset_stage.read(offset, &mut content),
        }
        content
    }

    /// Drops the frozen copy of chunk `i` (acknowledged by the vault).
    pub(crate) fn release_frozen(&mut self, i: u32) {
        if self.preserved.remove(&i) {
            self.cow.remove(&i);
        }
    }

    /// Drops every frozen copy.
    pub(crate) fn release_all_frozen(&mut self) {
        self.cow.clear_new();
        self.preserved.clear();
    }

    /// Reads up to [`KNOWN_SET_STEP`] more entries of the target's known table into the
    /// digest-prefix set (starting it if it is another target's).
    pub(crate) fn advance_known_set(&mut self, target: Target) {
        if self.known_set.as_ref().is_none_or(|k| k.target != target) {
            self.known_set = Some(KnownSet {
                target,
                next: Some(0),
                prefixes: HashSet::new(),
            });
        }
        let Some(set) = self.known_set.as_mut() else {
            return;
        };
        let Some(from) = set.next else {
            return;
        };
        let room = KNOWN_SET_CAP.saturating_sub(set.prefixes.len());
        let take = KNOWN_SET_STEP.min(room);
        let read: Vec<(u32, [u8; 32])> = match target {
            Target::Image => self
                .known
                .range(from..)
                .take(take)
                .map(|e| (*e.key(), e.value()))
                .collect(),
            Target::Dataset(id) => self
                .dataset_known
                .range((id, from)..=(id, u32::MAX))
                .take(take)
                .map(|e| (e.key().1, e.value()))
                .collect(),
        };
        set.next = match read.last() {
            Some((last, _)) if read.len() == take && room > take => last.checked_add(1),
            _ => None,
        };
        set.prefixes.extend(read.iter().map(|(_, h)| prefix(h)));
    }

    /// True if the vault probably holds digest `h` from the target's last backup: chunk
    /// `i` had it there, or a known digest shares its prefix (the vault checks either).
    pub(crate) fn vault_knows(&self, target: Target, i: u32, h: &Hash256) -> bool {
        self.known_digest(target, i) == Some(h.0)
            || self
                .known_set
                .as_ref()
                .is_some_and(|k| k.target == target && k.prefixes.contains(&prefix(&h.0)))
    }

    /// The digest of chunk `i` in the target's last complete backup.
    pub(crate) fn known_digest(&self, target: Target, i: u32) -> Option<[u8; 32]> {
        match target {
            Target::Image => self.known.get(&i),
            Target::Dataset(id) => self.dataset_known.get(&(id, i)),
        }
    }

    /// Forgets the target's known digests (the next backup of it is a full one).
    pub(crate) fn clear_known(&mut self, target: Target) {
        match target {
            Target::Image => self.known.clear_new(),
            Target::Dataset(id) => self.clear_dataset_known(id),
        }
        self.invalidate_known_set();
    }

    /// One step of merging a committed backup into the target's known table: moves the
    /// first acknowledged digest from the pending table into it, or, once none is
    /// pending, drops its first index `>= count`. False when neither is left. Each
    /// step leaves the tables consistent, so the merge spans executions and upgrades.
    pub(crate) fn merge_step(&mut self, target: Target, count: u32) -> bool {
        if let Some((i, h)) = self.pending.pop_first() {
            match target {
                Target::Image => self.known.insert(i, h),
                Target::Dataset(id) => self.dataset_known.insert((id, i), h),
            };
            return true;
        }
        let removed = match target {
            Target::Image => {
                let first = self.known.keys_range(count..).next();
                first.and_then(|i| self.known.remove(&i))
            }
            Target::Dataset(id) => {
                let first = self
                    .dataset_known
                    .keys_range((id, count)..=(id, u32::MAX))
                    .next();
                first.and_then(|k| self.dataset_known.remove(&k))
            }
        };
        self.invalidate_known_set();
        removed.is_some()
    }

    /// Forgets the cached digest set (the known table changed).
    pub(crate) fn invalidate_known_set(&mut self) {
        self.known_set = None;
    }

    /// The whole app image (host-side helpers and tests).
    pub fn image_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; usize::try_from(self.image_pages() * WASM_PAGE).expect("fits")];
        self.active().read(0, &mut out);
        out
    }
}
