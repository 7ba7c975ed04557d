//! Table-sized work, done in budgeted steps so that no message ever walks a whole
//! table: releasing a deleted snapshot's table, copying a parent's table into a child,
//! recomputing a root at commit.
//!
//! Every step takes a budget closure (`true` while the message may go on; the canister
//! passes one reading the instruction counter, tests pass counters) and checks it after
//! each entry, so a step always makes progress and stops soon after the budget is spent.
//! Progress lives in stable maps, so a step resumes where the last one stopped, in a later
//! message, after an upgrade too.

use std::collections::BTreeSet;

use candid::{CandidType, Principal};
use canvault_protocol::vault_api::SnapshotId;
use ic_stable_structures::Memory;
use serde::Deserialize;

use super::{Catalogue, TableEntry};
use crate::root::RootBuilder;
use crate::storable::candid_storable;
use crate::store::ChunkStore;

/// Parent entries [`Catalogue::advance_inherit`] reads per range read.
const INHERIT_SLICE: usize = 64;

/// A budget: `true` while the current message may do more work.
pub type Budget<'a> = &'a dyn Fn() -> bool;

/// A commit part-way through its table walk.
#[derive(CandidType, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitProgress {
    /// The next index to look for.
    pub next: u32,
    /// Indices found missing so far.
    pub missing: u32,
    /// The first missing index.
    pub first_missing: Option<u32>,
    /// The tree over the entries walked (meaningless once one is missing).
    pub root: RootBuilder,
}

candid_storable!(CommitProgress);

/// Where a commit's table walk stands after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitWalk {
    /// The budget ran out; progress is saved.
    Partial,
    /// Every index was walked.
    Done(CommitProgress),
}

impl<M: Memory> Catalogue<M> {
    /// Deletes a snapshot from the catalogue at once (record, nonce, pending copy and
    /// commit) and queues its table for release by [`Self::collect`].
    pub fn doom(&mut self, id: SnapshotId) {
        let Some(record) = self.snapshots.remove(&id) else {
            return;
        };
        if self.nonces.get(&(record.creator, record.nonce)) == Some(id) {
            self.nonces.remove(&(record.creator, record.nonce));
        }
        self.inherits.remove(&id);
        self.commits.remove(&id);
        self.count_record(&record.info, -1);
        self.doomed.insert(id, record.info.source);
    }

    /// Releases queued tables within `budget`. Returns `true` once the queue is empty.
    pub fn collect(&mut self, store: &mut ChunkStore<M>, budget: Budget<'_>) -> bool {
        while let Some((id, source)) = self.doomed.first_key_value() {
            while let Some(e) = self.tables.range((id, 0)..=(id, u32::MAX)).next() {
                let (key, entry) = e.into_pair();
                self.tables.remove(&key);
                if !entry.zero {
                    self.index_release(key, source, &entry.hash);
                    store.release(&entry.hash);
                }
                if !budget() {
                    return false;
                }
            }
            self.doomed.remove(&id);
            if !budget() {
                return self.doomed.is_empty();
            }
        }
        true
    }

    /// Snapshots whose tables are still being released.
    pub fn doomed_count(&self) -> u64 {
        self.doomed.len()
    }

    /// The source of a snapshot queued for release.
    pub fn doomed_source(&self, id: SnapshotId) -> Option<Principal> {
        self.doomed.get(&id)
    }

    /// Queues a copy of `parent`'s table into the new `child`.
    pub fn start_inherit(&mut self, parent: SnapshotId, child: SnapshotId) {
        self.inherits.insert(child, (parent, 0));
    }

    /// True while `child`'s parent table is still being copied.
    pub fn inheriting(&self, child: SnapshotId) -> bool {
        self.inherits.contains_key(&child)
    }

    /// Parents being copied from (they must not be deleted meanwhile).
    pub fn inherit_parents(&self) -> BTreeSet<SnapshotId> {
        self.inherits.values().map(|(parent, _)| parent).collect()
    }

    /// Children with a copy pending, in id order.
    pub fn pending_inherits(&self) -> Vec<SnapshotId> {
        self.inherits.keys().collect()
    }

    /// Copies `child`'s parent table on, within `budget`, as inherited entries below the
    /// child's chunk count, never over an entry the child already has (sent for it).
    /// Returns `true` once the copy is complete (or none was pending).
    pub fn advance_inherit(
        &mut self,
        store: &mut ChunkStore<M>,
        child: SnapshotId,
        budget: Budget<'_>,
    ) -> bool {
        let Some((parent, mut next)) = self.inherits.get(&child) else {
            return true;
        };
        let Some(info) = self.snapshots.get(&child).map(|r| r.info) else {
            self.inherits.remove(&child);
            return true;
        };
        let count = info.chunk_count;
        loop {
            // One range read per slice of entries, not per entry.
            let slice: Vec<((SnapshotId, u32), TableEntry)> = if next < count {
                self.tables
                    .range((parent, next)..(parent, count))
                    .take(INHERIT_SLICE)
                    .map(|e| e.into_pair())
                    .collect()
            } else {
                Vec::new()
            };
            if slice.is_empty() {
                self.inherits.remove(&child);
                return true;
            }
            for ((_, index), entry) in slice {
                let entry = TableEntry {
                    set_here: false,
                    ..entry
                };
                // Inserting first and putting back an entry sent for the child (rare)
                // saves a lookup per entry over asking first.
                if let Some(sent) = self.tables.insert((child, index), entry) {
                    self.tables.insert((child, index), sent);
                } else if !entry.zero {
                    store.add_ref(&entry.hash);
                    self.index_add((child, index), info.source, &entry.hash);
                }
                next = index + 1;
                if !budget() {
                    self.inherits.insert(child, (parent, next));
                    return false;
                }
            }
        }
    }

    /// Forgets a commit's partial walk (its table changed).
    pub fn reset_commit(&mut self, id: SnapshotId) {
        self.commits.remove(&id);
    }

    /// Walks `id`'s table on from the saved progress within `budget`, counting missing
    /// indices below `count` and building the root over the digests. A finished walk
    /// stays saved (a commit call consumes it with [`Self::reset_commit`]), so the
    /// table-work chain can walk ahead of the writer's next `commit_snapshot`.
    pub fn walk_for_commit(
        &mut self,
        id: SnapshotId,
        count: u32,
        budget: Budget<'_>,
    ) -> CommitWalk {
        let mut p = self.commits.get(&id).unwrap_or_default();
        let mut done = true;
        for (index, entry) in self.entries(id, p.next) {
            if index > p.next {
                p.missing += index - p.next;
                p.first_missing.get_or_insert(p.next);
            }
            if p.first_missing.is_none() {
                p.root.push(entry.hash);
            }
            p.next = index + 1;
            if !budget() {
                done = false;
                break;
            }
        }
        self.commits.insert(id, p.clone());
        if !done && p.next < count {
            return CommitWalk::Partial;
        }
        if p.next < count {
            p.missing += count - p.next;
            p.first_missing.get_or_insert(p.next);
        }
        CommitWalk::Done(p)
    }

    /// Walks every saved commit on within `budget`. Returns `true` once all are done.
    pub fn advance_commits(&mut self, budget: Budget<'_>) -> bool {
        for id in self.commits.keys().collect::<Vec<_>>() {
            let count = self.snapshots.get(&id).map_or(0, |r| r.info.chunk_count);
            if self.walk_for_commit(id, count, budget) == CommitWalk::Partial {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
