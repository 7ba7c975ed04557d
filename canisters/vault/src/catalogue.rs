//! The snapshot catalogue: one record per snapshot, its chunk table, and the
//! idempotency index of `begin_snapshot`.
//!
//! Invariants:
//! - every change to a chunk table goes through [`Catalogue::set_entry`] or the
//!   budgeted steps of [`chores`] (copying a parent table, releasing a deleted one),
//!   which keep the store's reference counts equal to the number of non-zero entries
//!   pointing at each hash (a batch's releases come after its additions); so a chunk
//!   still referenced by any table (in progress or queued for release included) is
//!   never deleted;
//! - a deleted snapshot leaves the records and the nonce index at once; its table is
//!   released later, in budgeted steps, from the deletion queue;
//! - a table only holds indices below its snapshot's `chunk_count`;
//! - `(creator, nonce)` maps to the snapshot that nonce began, until it is deleted.
//!
//! ```text
//! TableEntry, layout version 1 (38 bytes, fixed):
//! version u8 | flags u8 (bit 0: zero, bit 1: set_here) | len u32 LE | hash [u8; 32]
//! ```

use std::borrow::Cow;

use candid::{CandidType, Principal};
use canvault_protocol::vault_api::{SnapshotId, SnapshotInfo, SnapshotKind};
use canvault_protocol::{Codec, Hash256};
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{Memory, StableBTreeMap, StableCell, Storable};
use serde::Deserialize;

use crate::storable::{candid_storable, u32_at};
use crate::store::ChunkStore;

mod chores;
mod index;
pub use chores::{Budget, CommitProgress, CommitWalk};
pub use index::Counters;

const ENTRY_VERSION: u8 = 1;
const ENTRY_LEN: usize = 38;
const ZERO: u8 = 1;
const SET_HERE: u8 = 2;

/// A catalogue record: the public info plus what idempotency and retention need.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// What `get_snapshot` returns.
    pub info: SnapshotInfo,
    /// Who called `begin_snapshot` (the source, or an owner uploading for it).
    pub creator: Principal,
    /// The creator's idempotency key.
    pub nonce: u64,
    /// Last time a chunk or state change arrived (ns).
    pub updated_at_ns: u64,
}

candid_storable!(SnapshotRecord);

/// A record as the API shows it: records written before whole-canister snapshots
/// existed have no kind, and are kit images.
fn with_kind(mut record: SnapshotRecord) -> SnapshotRecord {
    record.info.kind.get_or_insert(SnapshotKind::KitImage);
    record
}

/// One index of a snapshot's chunk table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableEntry {
    /// The chunk's digest: its frame digest, or `chunk::zero_hash(len)`.
    pub hash: Hash256,
    /// Decoded length.
    pub len: u32,
    /// All zeros: nothing stored, no reference held.
    pub zero: bool,
    /// Sent for this snapshot (false: inherited from the parent, may be replaced).
    pub set_here: bool,
}

impl Storable for TableEntry {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENTRY_LEN);
        out.push(ENTRY_VERSION);
        out.push((u8::from(self.zero) * ZERO) | (u8::from(self.set_here) * SET_HERE));
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.hash.0);
        out
    }

    fn from_bytes(bytes: Cow<'_, [u8]>) -> Self {
        assert_eq!(
            bytes[0], ENTRY_VERSION,
            "table entry: unknown layout version"
        );
        Self {
            zero: bytes[1] & ZERO != 0,
            set_here: bytes[1] & SET_HERE != 0,
            len: u32_at(&bytes, 2),
            hash: Hash256(bytes[6..38].try_into().expect("32 bytes")),
        }
    }

    const BOUND: Bound = Bound::Bounded {
        max_size: ENTRY_LEN as u32,
        is_fixed_size: true,
    };
}

/// Snapshot records, chunk tables, the nonce index, and the work queues of
/// table-sized operations (see [`chores`]).
pub struct Catalogue<M: Memory> {
    snapshots: StableBTreeMap<SnapshotId, SnapshotRecord, M>,
    tables: StableBTreeMap<(SnapshotId, u32), TableEntry, M>,
    nonces: StableBTreeMap<(Principal, u64), SnapshotId, M>,
    /// Deleted snapshots whose tables are still being released, with their source.
    doomed: StableBTreeMap<SnapshotId, Principal, M>,
    /// Children whose parent table is still being copied: (parent, next index).
    inherits: StableBTreeMap<SnapshotId, (SnapshotId, u32), M>,
    /// Commits part-way through recomputing the root.
    commits: StableBTreeMap<SnapshotId, CommitProgress, M>,
    /// Snapshot counters (see [`index`]).
    counters: StableCell<Counters, M>,
    /// In-progress snapshots per source.
    open: StableBTreeMap<Principal, u32, M>,
    /// Non-zero table entries per (source, hash).
    source_refs: StableBTreeMap<(Principal, [u8; 32]), u64, M>,
}

/// The memories of a catalogue.
pub struct CatalogueMemories<M: Memory> {
    /// Records.
    pub snapshots: M,
    /// Chunk tables.
    pub tables: M,
    /// Nonce index.
    pub nonces: M,
    /// Deletion queue.
    pub doomed: M,
    /// Table copies in progress.
    pub inherits: M,
    /// Commits in progress.
    pub commits: M,
    /// Counters.
    pub counters: M,
    /// In-progress snapshots per source.
    pub open: M,
    /// Per-source references.
    pub source_refs: M,
}

impl<M: Memory> Catalogue<M> {
    /// Loads the catalogue from its memories, or creates it; builds the counters when
    /// the memories come from a module without them.
    pub fn init(m: CatalogueMemories<M>) -> Self {
        let mut this = Self {
            snapshots: StableBTreeMap::init(m.snapshots),
            tables: StableBTreeMap::init(m.tables),
            nonces: StableBTreeMap::init(m.nonces),
            doomed: StableBTreeMap::init(m.doomed),
            inherits: StableBTreeMap::init(m.inherits),
            commits: StableBTreeMap::init(m.commits),
            counters: StableCell::init(m.counters, Counters::default()),
            open: StableBTreeMap::init(m.open),
            source_refs: StableBTreeMap::init(m.source_refs),
        };
        this.migrate_indexes();
        this
    }

    /// The record of `id`.
    pub fn get(&self, id: SnapshotId) -> Option<SnapshotRecord> {
        self.snapshots.get(&id).map(with_kind)
    }

    /// Every record, in id order.
    pub fn records(&self) -> impl Iterator<Item = SnapshotRecord> + '_ {
        self.snapshots.values().map(with_kind)
    }

    /// Records from id `from` on, in id order.
    pub fn records_from(&self, from: SnapshotId) -> impl Iterator<Item = SnapshotRecord> + '_ {
        self.snapshots
            .range(from..)
            .map(|e| with_kind(e.into_pair().1))
    }

    /// The snapshot `creator` began with `nonce`.
    pub fn by_nonce(&self, creator: Principal, nonce: u64) -> Option<SnapshotId> {
        self.nonces.get(&(creator, nonce))
    }

    /// Adds a new record and indexes its nonce.
    pub fn create(&mut self, record: SnapshotRecord) {
        self.nonces
            .insert((record.creator, record.nonce), record.info.id);
        self.count_record(&record.info, 1);
        let previous = self.snapshots.insert(record.info.id, record);
        assert!(previous.is_none(), "snapshot ids are never reused");
    }

    /// Replaces the record of an existing snapshot.
    pub fn save(&mut self, record: SnapshotRecord) {
        let info = record.info.clone();
        if let Some(old) = self.snapshots.insert(record.info.id, record)
            && old.info.state != info.state
        {
            self.count_record(&old.info, -1);
            self.count_record(&info, 1);
        }
    }

    /// The table entry at `index`.
    pub fn entry(&self, id: SnapshotId, index: u32) -> Option<TableEntry> {
        self.tables.get(&(id, index))
    }

    /// Table entries of `id` from index `from`, in index order.
    pub fn entries(
        &self,
        id: SnapshotId,
        from: u32,
    ) -> impl Iterator<Item = (u32, TableEntry)> + '_ {
        self.tables.range((id, from)..=(id, u32::MAX)).map(|e| {
            let ((_, index), entry) = e.into_pair();
            (index, entry)
        })
    }

    /// Sets the entry at `index` of a table of `source`, storing `data` for a new
    /// chunk, and adds the new entry's reference. The replaced entry, if it held a
    /// reference, is pushed on `released`: the caller passes them to
    /// [`Self::release_all`] once the whole batch is applied, so a chunk a batch
    /// validated as present stays present until the batch ends.
    ///
    /// Returns the encoded bytes of `data` if `source` did not reference this chunk
    /// before (whether the store already held it for another source is not revealed).
    ///
    /// The caller has verified the chunk: a non-zero entry either comes with verified
    /// `data` or names a hash the store holds.
    #[allow(clippy::too_many_arguments)]
    pub fn set_entry(
        &mut self,
        store: &mut ChunkStore<M>,
        source: Principal,
        id: SnapshotId,
        index: u32,
        entry: TableEntry,
        data: Option<(Codec, &[u8])>,
        released: &mut Vec<((SnapshotId, u32), Hash256)>,
    ) -> u64 {
        let mut new_bytes = 0;
        if !entry.zero {
            match data {
                Some((codec, bytes)) => {
                    if !self.source_holds(source, &entry.hash) {
                        new_bytes = bytes.len() as u64;
                    }
                    store.add_ref_with_data(&entry.hash, entry.len, codec, bytes);
                }
                None => store.add_ref(&entry.hash),
            }
            self.index_add((id, index), source, &entry.hash);
        }
        if let Some(old) = self.tables.insert((id, index), entry)
            && !old.zero
        {
            released.push(((id, index), old.hash));
        }
        new_bytes
    }

    /// Releases the references `set_entry` replaced in tables of `source`.
    pub fn release_all(
        &mut self,
        store: &mut ChunkStore<M>,
        source: Principal,
        released: &[((SnapshotId, u32), Hash256)],
    ) {
        for (key, hash) in released {
            self.index_release(*key, source, hash);
            store.release(hash);
        }
    }

    /// Every table entry of every snapshot (for consistency checks).
    pub fn all_entries(&self) -> impl Iterator<Item = ((SnapshotId, u32), TableEntry)> + '_ {
        self.tables.iter().map(|e| e.into_pair())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_round_trip_table_entries() {
        for (zero, set_here) in [(false, false), (true, false), (false, true), (true, true)] {
            let entry = TableEntry {
                hash: Hash256([7; 32]),
                len: 65_536,
                zero,
                set_here,
            };
            let bytes = entry.to_bytes();
            assert_eq!(bytes.len(), ENTRY_LEN);
            assert_eq!(TableEntry::from_bytes(bytes), entry);
        }
    }
}
