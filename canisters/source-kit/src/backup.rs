//! The backup state machine, without effects: freeze, plan batches, acknowledge,
//! commit or fail. The driver (`driver.rs`) performs the calls.
//!
//! A backup moves through: freeze (dirty set → to-send set) → begin (the vault assigns
//! a snapshot id) → batches until the to-send set is empty → commit (root) → complete.
//! Invariants:
//! - a chunk leaves the to-send set only when the vault acknowledged its `(index, hash)`;
//! - a failed backup puts every chunk it had to send back into the dirty set, and the
//!   known table (the last complete backup) is untouched, so nothing is ever skipped;
//! - unchanged chunks are never read: the snapshot references them by their known digest.

use std::collections::BTreeSet;

use candid::Principal;
use canvault_protocol::Hash256;
use canvault_protocol::chunk::{
    ENTRY_OVERHEAD_BYTES, MAX_BATCH_PAYLOAD_BYTES, chunk_count, chunk_len,
};
use canvault_protocol::kit_api::{FailedBackup, KitError, LastBackup};
use canvault_protocol::merkle::image_root;
use canvault_protocol::vault_api::{BeginSnapshotRequest, ChunkBody, ChunkPut, SnapshotId};
use ic_stable_structures::Memory;

use crate::kit::{Kit, WASM_PAGE};
use crate::state::{Backup, Target, effective_chunk_size};

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
        let chunk_size = effective_chunk_size(s.config.chunk_size, image_size);
        let incremental = s
            .last_backup
            .as_ref()
            .filter(|last| last.vault == vault && s.known_chunk_size == chunk_size)
            .map(|last| last.snapshot_id);
        let count = chunk_count(image_size, chunk_size);
        self.send.clear_all();
        if incremental.is_some() {
            let dirty: Vec<u32> = self.dirty.iter_from(0).filter(|i| *i < count).collect();
            for i in dirty {
                self.send.set(i);
            }
        } else {
            self.clear_known(Target::Image);
            self.send.set_range(count);
        }
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
        let todo: Vec<u32> = self
            .send
            .iter_from(0)
            .filter(|i| !in_flight.contains(i))
            .collect();
        let mut batches: Vec<Batch> = Vec::new();
        let mut current = Batch {
            chunks: Vec::new(),
            data_bytes: 0,
        };
        let mut current_bytes = 0usize;
        for i in todo {
            if !keep_going() {
                break;
            }
            let raw = self.frozen_chunk(b.target, i, b.image_size, b.chunk_size);
            // A zero chunk is never sealed; a sealed one the vault already holds goes by
            // digest only, unless the vault asked for its bytes.
            let mut put = ChunkPut::with_bytes(i, &raw);
            if matches!(put.body, ChunkBody::Data { .. })
                && !force_data.contains(&i)
                && self.vault_knows(b.target, &put.hash)
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

    /// The root of the frozen image: new digests where acknowledged, known ones elsewhere.
    ///
    /// # Panics
    /// If a chunk has neither (an invariant violation).
    pub fn frozen_root(&self) -> Option<Hash256> {
        let b = self.state().backup.as_ref()?;
        let count = chunk_count(b.image_size, b.chunk_size);
        let hashes = (0..count).map(|i| {
            let h = self
                .pending
                .get(&i)
                .or_else(|| self.known_digest(b.target, i))
                .unwrap_or_else(|| panic!("chunk {i} has no digest: neither sent nor known"));
            Hash256(h)
        });
        Some(image_root(b.image_size, b.chunk_size, hashes))
    }

    /// The vault committed: the frozen content becomes the known base for the next backup.
    pub fn complete(&mut self, root: Hash256, now_ns: u64) {
        let Some(b) = self.state().backup.clone() else {
            return;
        };
        let count = chunk_count(b.image_size, b.chunk_size);
        let acked: Vec<(u32, [u8; 32])> = self.pending.iter().map(|e| e.into_pair()).collect();
        self.merge_known(b.target, acked, count);
        self.pending.clear_new();
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
            return;
        }
        self.update_state(|s| {
            s.last_backup = Some(last);
            s.last_failure = None;
            s.backup = None;
            s.backups_completed += 1;
        });
    }

    /// Gives the backup up: every chunk it had to send becomes dirty again (an image),
    /// or the failure is recorded on the data set (the app queues it again). Returns
    /// the vault and snapshot begun for it, which the driver asks the vault to abort.
    pub fn fail(&mut self, reason: String, now_ns: u64) -> Option<(Principal, SnapshotId)> {
        let b = self.state().backup.clone()?;
        let begun = b.snapshot_id.map(|id| (b.vault, id));
        if let Target::Dataset(id) = b.target {
            self.send.clear_all();
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
        let unsent: Vec<u32> = self.send.iter_from(0).collect();
        let sent: Vec<u32> = self.pending.keys().collect();
        for i in unsent.into_iter().chain(sent) {
            self.dirty.set(i);
        }
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
