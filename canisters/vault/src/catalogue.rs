//! The snapshot catalogue: one record per snapshot, its chunk table, and the
//! idempotency index of `begin_snapshot`.
//!
//! Invariants:
//! - every change to a chunk table goes through [`Catalogue::set_entry`],
//!   [`Catalogue::inherit`] or [`Catalogue::remove`], which keep the store's reference
//!   counts equal to the number of non-zero entries pointing at each hash; so a chunk
//!   still referenced by any snapshot (in progress included) is never deleted;
//! - a table only holds indices below its snapshot's `chunk_count`;
//! - `(creator, nonce)` maps to the snapshot that nonce began, until it is deleted.
//!
//! ```text
//! TableEntry, layout version 1 (38 bytes, fixed):
//! version u8 | flags u8 (bit 0: zero, bit 1: set_here) | len u32 LE | hash [u8; 32]
//! ```

use std::borrow::Cow;

use candid::{CandidType, Principal};
use canvault_protocol::vault_api::{SnapshotId, SnapshotInfo};
use canvault_protocol::{Codec, Hash256};
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{Memory, StableBTreeMap, Storable};
use serde::Deserialize;

use crate::storable::{candid_storable, u32_at};
use crate::store::ChunkStore;

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

/// Snapshot records, chunk tables and the nonce index.
pub struct Catalogue<M: Memory> {
    snapshots: StableBTreeMap<SnapshotId, SnapshotRecord, M>,
    tables: StableBTreeMap<(SnapshotId, u32), TableEntry, M>,
    nonces: StableBTreeMap<(Principal, u64), SnapshotId, M>,
}

impl<M: Memory> Catalogue<M> {
    /// Loads the catalogue from its memories, or creates it.
    pub fn init(snapshots: M, tables: M, nonces: M) -> Self {
        Self {
            snapshots: StableBTreeMap::init(snapshots),
            tables: StableBTreeMap::init(tables),
            nonces: StableBTreeMap::init(nonces),
        }
    }

    /// The record of `id`.
    pub fn get(&self, id: SnapshotId) -> Option<SnapshotRecord> {
        self.snapshots.get(&id)
    }

    /// Every record, in id order.
    pub fn records(&self) -> impl Iterator<Item = SnapshotRecord> + '_ {
        self.snapshots.values()
    }

    /// The snapshot `creator` began with `nonce`.
    pub fn by_nonce(&self, creator: Principal, nonce: u64) -> Option<SnapshotId> {
        self.nonces.get(&(creator, nonce))
    }

    /// Adds a new record and indexes its nonce.
    pub fn create(&mut self, record: SnapshotRecord) {
        self.nonces
            .insert((record.creator, record.nonce), record.info.id);
        let previous = self.snapshots.insert(record.info.id, record);
        assert!(previous.is_none(), "snapshot ids are never reused");
    }

    /// Replaces the record of an existing snapshot.
    pub fn save(&mut self, record: SnapshotRecord) {
        self.snapshots.insert(record.info.id, record);
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

    /// Sets the entry at `index`, storing `data` for a new chunk, and moves references
    /// from the replaced entry to the new one. Returns the encoded bytes newly stored.
    ///
    /// The caller has verified the chunk: a non-zero entry either comes with verified
    /// `data` or names a hash the store holds.
    pub fn set_entry(
        &mut self,
        store: &mut ChunkStore<M>,
        id: SnapshotId,
        index: u32,
        entry: TableEntry,
        data: Option<(Codec, &[u8])>,
    ) -> u64 {
        let mut stored = 0;
        if !entry.zero {
            stored = match data {
                Some((codec, bytes)) => {
                    store.add_ref_with_data(&entry.hash, entry.len, codec, bytes)
                }
                None => {
                    store.add_ref(&entry.hash);
                    0
                }
            };
        }
        if let Some(old) = self.tables.insert((id, index), entry)
            && !old.zero
        {
            store.release(&old.hash);
        }
        stored
    }

    /// Copies `parent`'s entries below `count` into `child` as inherited entries.
    pub fn inherit(
        &mut self,
        store: &mut ChunkStore<M>,
        parent: SnapshotId,
        child: SnapshotId,
        count: u32,
    ) {
        if count == 0 {
            return;
        }
        let inherited: Vec<(u32, TableEntry)> = self
            .tables
            .range((parent, 0)..=(parent, count - 1))
            .map(|e| {
                let ((_, index), entry) = e.into_pair();
                (index, entry)
            })
            .collect();
        for (index, entry) in inherited {
            let entry = TableEntry {
                set_here: false,
                ..entry
            };
            self.set_entry(store, child, index, entry, None);
        }
    }

    /// Deletes a snapshot: its table (releasing every chunk reference), its nonce and its
    /// record. Chunks no other entry references are deleted by the store.
    pub fn remove(&mut self, store: &mut ChunkStore<M>, id: SnapshotId) {
        while let Some(e) = self.tables.range((id, 0)..=(id, u32::MAX)).next() {
            let (key, entry) = e.into_pair();
            self.tables.remove(&key);
            if !entry.zero {
                store.release(&entry.hash);
            }
        }
        if let Some(record) = self.snapshots.remove(&id)
            && self.nonces.get(&(record.creator, record.nonce)) == Some(id)
        {
            self.nonces.remove(&(record.creator, record.nonce));
        }
    }

    /// Number of table entries of `id`.
    pub fn entry_count(&self, id: SnapshotId) -> u64 {
        self.tables.range((id, 0)..=(id, u32::MAX)).count() as u64
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
