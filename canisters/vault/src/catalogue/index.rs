//! Indexes derived from the catalogue, kept in step with every change:
//!
//! - [`Counters`]: snapshots per state (so `status` is O(1)) and, in `open`, in-progress
//!   snapshots per source (so `begin_snapshot` can cap them);
//! - per-source references: how many non-zero table entries of a source's snapshots
//!   (queued deletions included) point at each hash. A writer may name a chunk as
//!   `Known` only when its own source references it, so the store, which is shared and
//!   content-addressed, never tells one source what another one stored.
//!
//! Invariant: the per-source index counts exactly the non-zero entries whose table key
//! is below `Counters::index_from` (all of them once it is `None`). A vault upgraded
//! from a module without the index starts at `(0, 0)` and [`Catalogue::build_index`]
//! moves the cursor through the tables in budgeted steps; meanwhile a changed entry at
//! or above the cursor is left for the cursor to count, so nothing is counted twice,
//! and a `Known` the index cannot confirm yet is answered `missing` (the writer sends
//! the bytes, which the store deduplicates).

use candid::{CandidType, Principal};
use canvault_protocol::Hash256;
use canvault_protocol::vault_api::{SnapshotId, SnapshotInfo, SnapshotState};
use ic_stable_structures::Memory;
use serde::Deserialize;

use super::{Budget, Catalogue};
use crate::storable::candid_storable;

/// 1: counters and per-source index introduced (0: an empty cell, rebuild them).
const GENERATION: u32 = 1;

/// Snapshot counters and the index build cursor.
#[derive(CandidType, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Layout generation of the derived indexes (0: not built).
    pub generation: u32,
    /// Snapshots in progress.
    pub in_progress: u64,
    /// Complete snapshots.
    pub complete: u64,
    /// Failed snapshots.
    pub failed: u64,
    /// The latest completion time seen (never lowered by a deletion).
    pub last_complete_at_ns: Option<u64>,
    /// Table key from which the per-source index has not counted entries yet.
    pub index_from: Option<(SnapshotId, u32)>,
}

candid_storable!(Counters);

impl<M: Memory> Catalogue<M> {
    /// Rebuilds the counters from the records and restarts the per-source index when
    /// they were never built (an upgrade from a module without them).
    pub(super) fn migrate_indexes(&mut self) {
        if self.counters.get().generation == GENERATION {
            return;
        }
        let mut c = Counters {
            generation: GENERATION,
            index_from: (!self.tables.is_empty()).then_some((0, 0)),
            ..Counters::default()
        };
        let infos: Vec<SnapshotInfo> = self.snapshots.values().map(|r| r.info).collect();
        for info in &infos {
            count(&mut c, &info.state, info.completed_at_ns, 1);
            if info.state == SnapshotState::InProgress {
                let open = self.open.get(&info.source).unwrap_or(0);
                self.open.insert(info.source, open + 1);
            }
        }
        self.counters.set(c);
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters.get().clone()
    }

    /// Snapshots of `source` in progress.
    pub fn open_count(&self, source: Principal) -> u32 {
        self.open.get(&source).unwrap_or(0)
    }

    /// Counts a record leaving (`delta` -1) or entering (+1) the catalogue.
    pub(super) fn count_record(&mut self, info: &SnapshotInfo, delta: i64) {
        let mut c = self.counters.get().clone();
        count(&mut c, &info.state, info.completed_at_ns, delta);
        self.counters.set(c);
        if info.state == SnapshotState::InProgress {
            let open = i64::from(self.open.get(&info.source).unwrap_or(0)) + delta;
            match u32::try_from(open) {
                Ok(0) | Err(_) => self.open.remove(&info.source),
                Ok(n) => self.open.insert(info.source, n),
            };
        }
    }

    /// True if a table of `source` references `hash` (as far as the index is built).
    pub fn source_holds(&self, source: Principal, hash: &Hash256) -> bool {
        self.source_refs.contains_key(&(source, hash.0))
    }

    fn indexed(&self, key: (SnapshotId, u32)) -> bool {
        self.counters.get().index_from.is_none_or(|from| key < from)
    }

    /// Counts a new non-zero entry at `key` of a table of `source`.
    pub(super) fn index_add(&mut self, key: (SnapshotId, u32), source: Principal, hash: &Hash256) {
        if self.indexed(key) {
            let refs = self.source_refs.get(&(source, hash.0)).unwrap_or(0);
            self.source_refs.insert((source, hash.0), refs + 1);
        }
    }

    /// Uncounts a non-zero entry at `key` of a table of `source`.
    pub(super) fn index_release(
        &mut self,
        key: (SnapshotId, u32),
        source: Principal,
        hash: &Hash256,
    ) {
        if self.indexed(key) {
            match self.source_refs.get(&(source, hash.0)).unwrap_or(0) {
                0 | 1 => self.source_refs.remove(&(source, hash.0)),
                n => self.source_refs.insert((source, hash.0), n - 1),
            };
        }
    }

    /// Moves the index cursor through the tables within `budget`. Returns `true` once
    /// the index is complete.
    pub fn build_index(&mut self, budget: Budget<'_>) -> bool {
        let Some(mut from) = self.counters.get().index_from else {
            return true;
        };
        let mut source: Option<(SnapshotId, Principal)> = None;
        let done = loop {
            let Some(((id, index), entry)) =
                self.tables.range(from..).next().map(|e| e.into_pair())
            else {
                break true;
            };
            from = (id, index.saturating_add(1));
            if index == u32::MAX {
                from = (id + 1, 0);
            }
            if !entry.zero {
                let owner = match source {
                    Some((sid, p)) if sid == id => Some(p),
                    _ => self
                        .snapshots
                        .get(&id)
                        .map(|r| r.info.source)
                        .or_else(|| self.doomed.get(&id)),
                };
                if let Some(owner) = owner {
                    source = Some((id, owner));
                    let refs = self.source_refs.get(&(owner, entry.hash.0)).unwrap_or(0);
                    self.source_refs.insert((owner, entry.hash.0), refs + 1);
                }
            }
            if !budget() {
                break false;
            }
        };
        let mut c = self.counters.get().clone();
        c.index_from = (!done).then_some(from);
        self.counters.set(c);
        done
    }
}

fn count(c: &mut Counters, state: &SnapshotState, completed_at_ns: Option<u64>, delta: i64) {
    let slot = match state {
        SnapshotState::InProgress => &mut c.in_progress,
        SnapshotState::Complete => {
            if delta > 0 {
                c.last_complete_at_ns = c.last_complete_at_ns.max(completed_at_ns);
            }
            &mut c.complete
        }
        SnapshotState::Failed { .. } => &mut c.failed,
    };
    *slot = slot.saturating_add_signed(delta);
}
