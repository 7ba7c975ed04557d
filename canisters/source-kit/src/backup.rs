//! The backup state machine, without effects: freeze, plan batches, acknowledge,
//! commit or fail. The driver (`driver.rs`) performs the calls.
//!
//! A backup moves through: freeze (dirty set → to-send set) → begin (the vault assigns
//! a snapshot id) → batches until the to-send set is empty → commit (root) → complete.
//! Invariants:
//! - a chunk leaves the to-send set only when the vault acknowledged its `(index, hash)`;
//! - a failed backup puts every chunk it had to send back into the dirty set, and the
//!   known table (the last complete backup) is untouched, so nothing is ever skipped;
//! - unchanged chunks are never read: the snapshot references them by their known digest;
//! - no step walks the image's chunks in one execution: freezing and failing are
//!   word-wise bitmap passes, planning reads the to-send bitmap from a cursor, and the
//!   root walk and the merge into the known table advance under a budget, their
//!   progress in stable memory.

use std::collections::BTreeSet;

use candid::Principal;
use canvault_protocol::Hash256;
use canvault_protocol::chunk::{
    ENTRY_OVERHEAD_BYTES, MAX_BATCH_PAYLOAD_BYTES, chunk_count, chunk_len,
};
use canvault_protocol::kit_api::{FailedBackup, KitError, LastBackup};
use canvault_protocol::merkle::Frontier;
use canvault_protocol::vault_api::{BeginSnapshotRequest, ChunkBody, ChunkPut, SnapshotId};
use ic_stable_structures::Memory;

use crate::kit::{Kit, WASM_PAGE};
use crate::state::{Backup, Target};

/// Chunks of one `put_chunks` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The chunks, in index order.
    pub chunks: Vec<ChunkPut>,
    /// Encoded bytes carried.
    pub data_bytes: u64,
}

impl<M: Memory> Kit<M> {
    /// Freezes the image for a backup to `vault` (call the app's `before_snapshot` hook
    /// first, in the same message). The backup is exactly the image at this moment.
    ///
    /// # Errors
    /// A backup is running, or a restore is armed.
    pub fn freeze(&mut self, vault: Principal, now_ns: u64) -> Result<(), KitError> {
        let s = self.state();
        if s.backup.is_some() {
            return Err(KitError::BackupInProgress);
        }
        if s.restore.is_some() {
            return Err(KitError::RestoreInProgress);
        }
        let image_size = s.image_pages * WASM_PAGE;
        let chunk_size = s.config.chunk_size;
        let incremental = s
            .last_backup
            .as_ref()
            .filter(|last| last.vault == vault && s.known_chunk_size == chunk_size)
            .map(|last| last.snapshot_id);
        let count = chunk_count(image_size, chunk_size);
        self.send.clear_all();
        if incremental.is_some() {
            self.send.union_below(&self.dirty, count);
        } else {
            self.clear_known(Target::Image);
            self.send.set_range(count);
        }
        self.frozen.clear_all();
        self.frozen.union_below(&self.send, count);
        self.dirty.clear_all();
        self.pending.clear_new();
        self.release_all_frozen();
        let total = self.send.count();
        self.update_state(|s| {
            s.known_chunk_size = chunk_size;
            s.image_backup_requested_at_ns = None;
            s.start_backup(Backup::starting(
                Target::Image,
                vault,
                incremental,
                now_ns,
                image_size,
                chunk_size,
                total,
            ));
        });
        Ok(())
    }

    /// The `begin_snapshot` request of the backup in progress.
    /// A data set's snapshots carry the label `dataset:<name>`, so the vault can keep
    /// them apart from the image's (and one data set's from another's).
    pub fn begin_request(&self) -> Option<BeginSnapshotRequest> {
        self.state().backup.as_ref().map(|b| BeginSnapshotRequest {
            parent: b.parent,
            image_size: b.image_size,
            chunk_size: b.chunk_size,
            nonce: b.nonce,
            label: match b.target {
                Target::Image => None,
                Target::Dataset(id) => self.dataset_label(id),
            },
            source: None,
        })
    }

    /// Records the vault's snapshot id. If the vault could not use the parent (it no
    /// longer holds it), the backup becomes a full one.
    pub fn begun(&mut self, snapshot_id: SnapshotId, parent_used: Option<SnapshotId>) {
        let Some(b) = self.state().backup.clone() else {
            return;
        };
        if b.parent.is_some() && parent_used.is_none() {
            let count = chunk_count(b.image_size, b.chunk_size);
            self.clear_known(b.target);
            self.send.set_range(count);
            self.frozen.set_range(count);
            let total = self.send.count();
            self.update_state(|s| {
                if let Some(b) = s.backup.as_mut() {
                    b.parent = None;
                    b.chunks_total = total;
                }
            });
        }
        self.update_state(|s| {
            if let Some(b) = s.backup.as_mut() {
                b.snapshot_id = Some(snapshot_id);
            }
        });
    }

    /// Plans up to `max_batches` batches of chunks not yet acknowledged and not in
    /// `in_flight`. `force_data` lists indices the vault reported missing: their bytes
    /// are sent even if the digest looks known. `keep_going` is asked before each chunk
    /// (the driver bounds the instructions of one execution with it).
    pub fn plan_batches(
        &mut self,
        max_batches: usize,
        in_flight: &BTreeSet<u32>,
        force_data: &BTreeSet<u32>,
        mut keep_going: impl FnMut() -> bool,
    ) -> Vec<Batch> {
        let Some(b) = self.state().backup.clone() else {
            return Vec::new();
        };
        self.advance_known_set(b.target);
        let mut batches: Vec<Batch> = Vec::new();
        let mut current = Batch {
            chunks: Vec::new(),
            data_bytes: 0,
        };
        let mut current_bytes = 0usize;
        let mut cursor = Some(0);
        while let Some(i) = cursor.and_then(|c| self.send.next_from(c)) {
            cursor = i.checked_add(1);
            if in_flight.contains(&i) {
                continue;
            }
            if !keep_going() {
                break;
            }
            let raw = self.frozen_chunk(b.target, i, b.image_size, b.chunk_size);
            // A zero chunk is never sealed; a sealed one the vault already holds goes by
            // digest only, unless the vault asked for its bytes.
            let mut put = ChunkPut::with_bytes(i, &raw);
            if matches!(put.body, ChunkBody::Data { .. })
                && !force_data.contains(&i)
                && self.vault_knows(b.target, i, &put.hash)
            {
                put.body = ChunkBody::Known;
            }
            let size = ENTRY_OVERHEAD_BYTES
                + match &put.body {
                    ChunkBody::Data { bytes, .. } => bytes.len(),
                    _ => 0,
                };
            if current_bytes + size > MAX_BATCH_PAYLOAD_BYTES && !current.chunks.is_empty() {
                batches.push(std::mem::replace(
                    &mut current,
                    Batch {
                        chunks: Vec::new(),
                        data_bytes: 0,
                    },
                ));
                current_bytes = 0;
                if batches.len() == max_batches {
                    break;
                }
            }
            current_bytes += size;
            if let ChunkBody::Data { bytes, .. } = &put.body {
                current.data_bytes += bytes.len() as u64;
            }
            current.chunks.push(put);
        }
        if !current.chunks.is_empty() && batches.len() < max_batches {
            batches.push(current);
        }
        batches
    }

    /// Records the vault's acknowledgement of `batch`; indices in `missing` (sent as
    /// `Known` but not held by the vault) stay to be sent with data. Returns how many
    /// chunks were acknowledged.
    pub fn acknowledge(&mut self, batch: &Batch, missing: &[u32]) -> u32 {
        let missing: BTreeSet<u32> = missing.iter().copied().collect();
        let mut acked = 0;
        let mut data_chunks = 0;
        for c in &batch.chunks {
            if missing.contains(&c.index) || !self.send.get(c.index) {
                continue;
            }
            self.send.clear(c.index);
            self.pending.insert(c.index, c.hash.0);
            self.release_frozen(c.index);
            acked += 1;
            if matches!(c.body, ChunkBody::Data { .. }) {
                data_chunks += 1;
            }
        }
        self.update_state(|s| {
            if let Some(b) = s.backup.as_mut() {
                b.chunks_done += acked;
                b.data_chunks += data_chunks;
                b.bytes_sent += batch.data_bytes;
                b.failures_in_a_row = 0;
            }
        });
        acked
    }

    /// True when every chunk was acknowledged.
    pub fn ready_to_commit(&self) -> bool {
        self.state().backup.is_some() && self.send.count() == 0
    }

    /// Advances the root walk over the frozen image (new digests where acknowledged,
    /// known ones elsewhere) while `keep_going`, saving its progress; the root once
    /// every chunk was walked. `None` before every chunk was acknowledged.
    ///
    /// # Panics
    /// If a chunk has neither digest (an invariant violation).
    pub fn advance_root(&mut self, mut keep_going: impl FnMut() -> bool) -> Option<Hash256> {
        if !self.ready_to_commit() {
            return None;
        }
        let b = self.state().backup.clone()?;
        let count = chunk_count(b.image_size, b.chunk_size);
        let mut walk = b.root_walk.unwrap_or_default();
        if walk.pushed < count {
            self.walk_digests(b.target, count, &mut walk, &mut keep_going);
            let saved = walk.clone();
            self.update_state(|s| {
                if let Some(b) = s.backup.as_mut() {
                    b.root_walk = Some(saved);
                }
            });
        }
        walk.image_root(b.image_size, b.chunk_size)
    }

    /// Pushes digests `walk.pushed..count` of `target` into `walk` while `keep_going`:
    /// the pending table's where it has one, the known table's elsewhere. Both are read
    /// in order by one range iterator each (no per-chunk lookup).
    fn walk_digests(
        &self,
        target: Target,
        count: u32,
        walk: &mut Frontier,
        keep_going: &mut impl FnMut() -> bool,
    ) {
        let from = walk.pushed;
        let mut pending = self
            .pending
            .range(from..)
            .map(|e| (*e.key(), e.value()))
            .peekable();
        let mut known: Box<dyn Iterator<Item = (u32, [u8; 32])> + '_> = match target {
            Target::Image => Box::new(self.known.range(from..).map(|e| (*e.key(), e.value()))),
            Target::Dataset(id) => Box::new(
                self.dataset_known
                    .range((id, from)..=(id, u32::MAX))
                    .map(|e| (e.key().1, e.value())),
            ),
        };
        let mut known_next = known.next();
        while walk.pushed < count && keep_going() {
            let i = walk.pushed;
            while known_next.is_some_and(|(k, _)| k < i) {
                known_next = known.next();
            }
            let digest = match pending.next_if(|(k, _)| *k == i) {
                Some((_, h)) => h,
                None => match known_next {
                    Some((k, h)) if k == i => h,
                    _ => panic!("chunk {i} has no digest: neither sent nor known"),
                },
            };
            walk.push(&Hash256(digest));
        }
    }

    /// The root of the frozen image, walked in one go (tests and host-side tools; the
    /// driver walks with [`Kit::advance_root`] under a budget).
    pub fn frozen_root(&mut self) -> Option<Hash256> {
        self.advance_root(|| true)
    }

    /// The vault committed the snapshot with `root`: from now on the backup only
    /// completes ([`Kit::advance_complete`]); it can no longer fail.
    pub fn committed(&mut self, root: Hash256) {
        self.update_state(|s| {
            if let Some(b) = s.backup.as_mut() {
                b.committed_root = Some(root);
            }
        });
    }

    /// Merges the committed backup into the known table while `keep_going` (each step
    /// is durable); once merged, the frozen content becomes the known base for the next
    /// backup and the backup ends. True when it ended (or none was committed).
    pub fn advance_complete(&mut self, now_ns: u64, mut keep_going: impl FnMut() -> bool) -> bool {
        let Some(b) = self.state().backup.clone() else {
            return true;
        };
        let Some(root) = b.committed_root else {
            return true;
        };
        let count = chunk_count(b.image_size, b.chunk_size);
        loop {
            if !keep_going() {
                return false;
            }
            if !self.merge_step(b.target, count) {
                break;
            }
        }
        self.frozen.clear_all();
        self.release_all_frozen();
        let last = LastBackup {
            vault: b.vault,
            snapshot_id: b.snapshot_id.unwrap_or_default(),
            root,
            image_size: b.image_size,
            completed_at_ns: now_ns,
            chunks_sent: b.data_chunks,
            bytes_sent: b.bytes_sent,
            frozen_at_ns: Some(b.started_at_ns),
        };
        if let Target::Dataset(id) = b.target {
            self.dataset_completed(id, last);
            self.update_state(|s| s.backup = None);
            return true;
        }
        self.update_state(|s| {
            s.last_backup = Some(last);
            s.last_failure = None;
            s.backup = None;
            s.backups_completed += 1;
        });
        true
    }

    /// The vault committed: completes in one go (tests; the driver completes with
    /// [`Kit::advance_complete`] under a budget).
    pub fn complete(&mut self, root: Hash256, now_ns: u64) {
        self.committed(root);
        self.advance_complete(now_ns, || true);
    }

    /// True while a committed backup merges into the known table.
    pub fn completing(&self) -> bool {
        self.state()
            .backup
            .as_ref()
            .is_some_and(|b| b.committed_root.is_some())
    }

    /// Gives the backup up: every chunk it had to send becomes dirty again (an image:
    /// the frozen bitmap, word-wise), or the failure is recorded on the data set (the
    /// app queues it again). Returns the vault and snapshot begun for it, which the
    /// driver asks the vault to abort. A committed backup cannot fail (`None`).
    pub fn fail(&mut self, reason: String, now_ns: u64) -> Option<(Principal, SnapshotId)> {
        let b = self.state().backup.clone()?;
        if b.committed_root.is_some() {
            return None;
        }
        let begun = b.snapshot_id.map(|id| (b.vault, id));
        if let Target::Dataset(id) = b.target {
            self.send.clear_all();
            self.frozen.clear_all();
            self.pending.clear_new();
            self.dataset_failed(
                id,
                FailedBackup {
                    at_ns: now_ns,
                    reason,
                },
            );
            self.update_state(|s| s.backup = None);
            return begun;
        }
        let count = chunk_count(b.image_size, b.chunk_size);
        self.dirty.union_below(&self.frozen, count);
        self.frozen.clear_all();
        self.send.clear_all();
        self.pending.clear_new();
        self.release_all_frozen();
        self.update_state(|s| {
            s.backup = None;
            s.last_failure = Some(FailedBackup {
                at_ns: now_ns,
                reason,
            });
        });
        begun
    }

    /// Counts a failed call of the current step; returns the consecutive failures.
    pub fn record_failure(&mut self, error: String) -> u32 {
        let mut n = 0;
        self.update_state(|s| {
            if let Some(b) = s.backup.as_mut() {
                b.retries += 1;
                b.failures_in_a_row += 1;
                b.last_error = Some(error);
                n = b.failures_in_a_row;
            }
        });
        n
    }

    /// Chunks written since the last freeze (what the next backup sends at most).
    pub fn dirty_chunks(&self) -> u32 {
        self.dirty.count()
    }

    /// Length of chunk `i` in the frozen geometry.
    pub fn frozen_chunk_len(&self, i: u32) -> Option<u32> {
        self.state()
            .backup
            .as_ref()
            .map(|b| chunk_len(i, b.image_size, b.chunk_size))
    }
}
