//! App-defined data sets (e.g. one user's posts) backed up to their own vault (a
//! user's personal vault), incrementally.
//!
//! The app hands the kit the data set's bytes; the kit queues the job (bytes kept in
//! stable memory until its turn), and when no other backup runs it stages the bytes in
//! its data-set memory, hashes every chunk, and puts only the chunks whose digest
//! changed since that data set's last backup into the to-send set. From there the
//! backup runs exactly like an image backup (`backup.rs`), with the data set's own
//! known digests. Data sets use small chunks so a user's edit moves little data.

use candid::{CandidType, Principal};
use canvault_protocol::chunk::{chunk_count, chunk_hash, chunk_len};
use canvault_protocol::kit_api::{DatasetInfo, FailedBackup, KitError};
use canvault_protocol::vault_api::SnapshotId;
use ic_stable_structures::Memory;
use serde::{Deserialize, Serialize};

use crate::kit::{Kit, WASM_PAGE};
use crate::state::{Backup, Target};

/// Chunk size of data sets: one wasm page, so small edits move little.
pub const DATASET_CHUNK_SIZE: u32 = canvault_protocol::chunk::MIN_CHUNK_SIZE;
/// Largest data set accepted in one job.
pub const MAX_DATASET_BYTES: usize = 64 * 1024 * 1024;
/// Longest data-set name (it travels in the snapshot's label).
pub const MAX_DATASET_NAME_BYTES: usize = 128;
/// Most data-set jobs queued at once (one per data set: a newer job for a data set
/// replaces its queued one).
pub const MAX_QUEUED_DATASET_JOBS: u64 = 32;
/// Most bytes of queued data-set jobs at once.
pub const MAX_QUEUED_DATASET_BYTES: u64 = 256 * 1024 * 1024;
/// A data-set backup running this long while an image backup waits is given up.
pub const DATASET_YIELD_AFTER_NS: u64 = 5 * 60 * 1_000_000_000;
/// A data-set backup running this long is given up in any case.
pub const MAX_DATASET_BACKUP_NS: u64 = 60 * 60 * 1_000_000_000;
/// Prefix of the label of a data set's snapshots: `dataset:<name>`. Vaults keep
/// retention per (source, label) for such snapshots.
pub const DATASET_LABEL_PREFIX: &str = "dataset:";

/// A queued data-set backup: the bytes, kept until its turn.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DatasetJob {
    /// The data set.
    pub dataset_id: u64,
    /// Its content at the time the app queued it.
    pub bytes: serde_bytes::ByteBuf,
}

/// A data set's record (name, vault, last backup).
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DatasetRecord(pub DatasetInfo);

/// A data-set backup stopped for an on-demand image backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preempted {
    /// The vault and snapshot it had begun there (to abort), if any.
    pub vault_snapshot: Option<(Principal, SnapshotId)>,
}

crate::candid_storable!(DatasetJob);
crate::candid_storable!(DatasetRecord);

impl<M: Memory> Kit<M> {
    fn dataset_id(&self, name: &str) -> Option<u64> {
        self.datasets
            .iter()
            .find(|e| e.value().0.name == name)
            .map(|e| *e.key())
    }

    /// Queues a backup of data set `name` (created on first use) to `vault`. A job
    /// already queued for the data set is replaced (its newer content supersedes it),
    /// so each data set has at most one queued job. Returns the data set's id.
    ///
    /// # Errors
    /// The name is empty or too long; the data set is too large; `vault` is the
    /// image backups' vault (data sets never share it: their snapshots would count
    /// against the image's retention); the queue is full.
    pub fn queue_dataset(
        &mut self,
        name: &str,
        vault: Principal,
        bytes: Vec<u8>,
    ) -> Result<u64, KitError> {
        if name.is_empty() || name.len() > MAX_DATASET_NAME_BYTES {
            return Err(KitError::InvalidRequest(format!(
                "a data set needs a name of 1 to {MAX_DATASET_NAME_BYTES} bytes"
            )));
        }
        if bytes.len() > MAX_DATASET_BYTES {
            return Err(KitError::InvalidRequest(format!(
                "data set of {} bytes exceeds the {MAX_DATASET_BYTES}-byte limit",
                bytes.len()
            )));
        }
        if self.state().config.vault == Some(vault) {
            return Err(KitError::InvalidRequest(
                "a data set may not go to the vault of the image backups".into(),
            ));
        }
        let id = self.dataset_id(name);
        let (mut jobs, mut queued_bytes, mut queued_job) = (0u64, 0u64, None);
        for e in self.dataset_queue_index.iter() {
            let (dataset, len) = e.value();
            jobs += 1;
            queued_bytes += len;
            if Some(dataset) == id {
                queued_job = Some((*e.key(), len));
            }
        }
        if let Some((_, replaced)) = queued_job {
            jobs -= 1;
            queued_bytes -= replaced;
        }
        if jobs >= MAX_QUEUED_DATASET_JOBS
            || queued_bytes + bytes.len() as u64 > MAX_QUEUED_DATASET_BYTES
        {
            return Err(KitError::QueueFull {
                queued: u32::try_from(jobs).unwrap_or(u32::MAX),
            });
        }
        let id = id.unwrap_or_else(|| {
            let id = self.datasets.last_key_value().map_or(1, |(k, _)| k + 1);
            let info = DatasetInfo {
                name: name.to_string(),
                vault,
                last_backup: None,
                last_failure: None,
                queued: 0,
            };
            self.datasets.insert(id, DatasetRecord(info));
            id
        });
        let mut record = self.datasets.get(&id).expect("just ensured");
        if record.0.vault != vault {
            // A new vault starts a new chain: the old digests mean nothing there.
            record.0.vault = vault;
            record.0.last_backup = None;
            self.clear_dataset_known(id);
        }
        if let Some((seq, _)) = queued_job {
            // The newer content replaces the queued job.
            self.datasets.insert(id, record);
            self.put_job(seq, id, bytes);
            return Ok(id);
        }
        record.0.queued += 1;
        self.datasets.insert(id, record);
        self.append_job(id, bytes);
        Ok(id)
    }

    /// Queues a job for data set `id` after every queued one.
    fn append_job(&mut self, id: u64, bytes: Vec<u8>) {
        let seq = self
            .dataset_queue_index
            .last_key_value()
            .map_or(1, |(k, _)| k + 1);
        self.put_job(seq, id, bytes);
    }

    /// Writes the job at `seq` (the queue and its index agree on every entry).
    fn put_job(&mut self, seq: u64, id: u64, bytes: Vec<u8>) {
        self.dataset_queue_index
            .insert(seq, (id, bytes.len() as u64));
        self.dataset_queue.insert(
            seq,
            DatasetJob {
                dataset_id: id,
                bytes: bytes.into(),
            },
        );
    }

    /// The record of data set `name`.
    pub fn dataset_info(&self, name: &str) -> Option<DatasetInfo> {
        self.dataset_id(name)
            .and_then(|id| self.datasets.get(&id))
            .map(|r| r.0)
    }

    /// Starts the next queued data-set backup if no backup runs. True if one started.
    pub fn start_next_dataset(&mut self, now_ns: u64) -> bool {
        if self.state().backup.is_some() || self.state().restore.is_some() {
            return false;
        }
        let Some((seq, job)) = self.dataset_queue.first_key_value() else {
            return false;
        };
        self.dataset_queue.remove(&seq);
        self.dataset_queue_index.remove(&seq);
        let Some(mut record) = self.datasets.get(&job.dataset_id) else {
            return false;
        };
        record.0.queued = record.0.queued.saturating_sub(1);
        self.datasets.insert(job.dataset_id, record.clone());
        self.stage_dataset(job.dataset_id, &record.0, &job.bytes, now_ns);
        true
    }

    /// Copies the bytes into the data-set memory and selects the changed chunks.
    fn stage_dataset(&mut self, id: u64, info: &DatasetInfo, bytes: &[u8], now_ns: u64) {
        let size = bytes.len() as u64;
        let pages = size.div_ceil(WASM_PAGE);
        let have = self.dataset_stage.size();
        if have < pages {
            assert!(
                self.dataset_stage.grow(pages - have) >= 0,
                "stable memory exhausted"
            );
        }
        self.dataset_stage.write(0, bytes);
        let cs = DATASET_CHUNK_SIZE;
        let count = chunk_count(size, cs);
        self.send.clear_all();
        self.pending.clear_new();
        let parent = info.last_backup.as_ref().map(|l| l.snapshot_id);
        for i in 0..count {
            let start = u64::from(i) * u64::from(cs);
            let raw = &bytes[start as usize..(start + u64::from(chunk_len(i, size, cs))) as usize];
            let unchanged =
                parent.is_some() && self.dataset_known.get(&(id, i)) == Some(chunk_hash(raw).0);
            if !unchanged {
                self.send.set(i);
            }
        }
        let total = self.send.count();
        self.frozen.clear_all();
        self.frozen.union_below(&self.send, count);
        self.invalidate_known_set();
        self.update_state(|s| {
            s.start_backup(Backup::starting(
                Target::Dataset(id),
                info.vault,
                parent,
                now_ns,
                size,
                cs,
                total,
            ));
        });
    }

    pub(crate) fn clear_dataset_known(&mut self, id: u64) {
        let keys: Vec<(u64, u32)> = self
            .dataset_known
            .keys_range((id, 0)..=(id, u32::MAX))
            .collect();
        for k in keys {
            self.dataset_known.remove(&k);
        }
    }

    pub(crate) fn dataset_failed(&mut self, id: u64, failure: FailedBackup) {
        if let Some(mut record) = self.datasets.get(&id) {
            record.0.last_failure = Some(failure);
            self.datasets.insert(id, record);
        }
    }

    pub(crate) fn dataset_completed(
        &mut self,
        id: u64,
        last: canvault_protocol::kit_api::LastBackup,
    ) {
        if let Some(mut record) = self.datasets.get(&id) {
            record.0.last_backup = Some(last);
            record.0.last_failure = None;
            self.datasets.insert(id, record);
        }
    }

    /// Stops the data-set backup in progress so that an image backup can freeze now
    /// (an on-demand backup is a point in time: it cannot wait for the data set). The
    /// data set is queued again with its staged bytes, unless the app queued newer
    /// content for it meanwhile, which supersedes them. The requeued job may take the
    /// queue one job past its caps: it was admitted under them once. Returns the
    /// vault-side snapshot to abort, if one was begun; `None` if no data set runs.
    pub fn preempt_dataset_backup(&mut self) -> Option<Preempted> {
        let b = self.state().backup.clone()?;
        let Target::Dataset(id) = b.target else {
            return None;
        };
        if b.committed_root.is_some() {
            // Committed: it only merges into the known table now, and must finish.
            return None;
        }
        let begun = b.snapshot_id.map(|snapshot| (b.vault, snapshot));
        self.send.clear_all();
        self.frozen.clear_all();
        self.pending.clear_new();
        self.update_state(|s| s.backup = None);
        let superseded = self.dataset_queue_index.iter().any(|e| e.value().0 == id);
        if let (false, Some(mut record)) = (superseded, self.datasets.get(&id)) {
            let len = usize::try_from(b.image_size).expect("a data set fits in memory");
            let mut bytes = vec![0; len];
            self.dataset_stage.read(0, &mut bytes);
            record.0.queued += 1;
            self.datasets.insert(id, record);
            self.append_job(id, bytes);
        }
        Some(Preempted {
            vault_snapshot: begun,
        })
    }

    /// Why the data-set backup in progress must be given up now, if it must: it ran
    /// for [`MAX_DATASET_BACKUP_NS`], or for [`DATASET_YIELD_AFTER_NS`] while an image
    /// backup waits (a vault that answers `InUse` or never replies cannot hold the
    /// backup slot).
    pub fn dataset_backup_expired(&self, now_ns: u64) -> Option<String> {
        let b = self.state().backup.as_ref()?;
        if !matches!(b.target, Target::Dataset(_)) || b.committed_root.is_some() {
            return None;
        }
        let ran = now_ns.saturating_sub(b.started_at_ns);
        if ran >= MAX_DATASET_BACKUP_NS {
            return Some(format!("data-set backup timed out after {ran} ns"));
        }
        let waiting = self.state().image_backup_requested_at_ns.is_some();
        (waiting && ran >= DATASET_YIELD_AFTER_NS)
            .then(|| format!("data-set backup gave way to the image backup after {ran} ns"))
    }

    /// The label of the snapshots of data set `id`: `dataset:<name>`.
    pub(crate) fn dataset_label(&self, id: u64) -> Option<String> {
        self.datasets
            .get(&id)
            .map(|r| format!("{DATASET_LABEL_PREFIX}{}", r.0.name))
    }

    /// Queued data-set jobs.
    pub fn queued_datasets(&self) -> u64 {
        self.dataset_queue.len()
    }
}
