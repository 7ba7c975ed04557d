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
use ic_stable_structures::Memory;
use serde::{Deserialize, Serialize};

use crate::kit::{Kit, WASM_PAGE};
use crate::state::{Backup, Target};

/// Chunk size of data sets: one wasm page, so small edits move little.
pub const DATASET_CHUNK_SIZE: u32 = canvault_protocol::chunk::MIN_CHUNK_SIZE;
/// Largest data set accepted in one job.
pub const MAX_DATASET_BYTES: usize = 64 * 1024 * 1024;

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

crate::candid_storable!(DatasetJob);
crate::candid_storable!(DatasetRecord);

impl<M: Memory> Kit<M> {
    fn dataset_id(&self, name: &str) -> Option<u64> {
        self.datasets
            .iter()
            .find(|e| e.value().0.name == name)
            .map(|e| *e.key())
    }

    /// Queues a backup of data set `name` (created on first use) to `vault`.
    /// Returns the data set's id.
    ///
    /// # Errors
    /// The data set is too large, or its name is empty.
    pub fn queue_dataset(
        &mut self,
        name: &str,
        vault: Principal,
        bytes: Vec<u8>,
    ) -> Result<u64, KitError> {
        if name.is_empty() {
            return Err(KitError::InvalidRequest("a data set needs a name".into()));
        }
        if bytes.len() > MAX_DATASET_BYTES {
            return Err(KitError::InvalidRequest(format!(
                "data set of {} bytes exceeds the {MAX_DATASET_BYTES}-byte limit",
                bytes.len()
            )));
        }
        let id = match self.dataset_id(name) {
            Some(id) => id,
            None => {
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
            }
        };
        let mut record = self.datasets.get(&id).expect("just ensured");
        if record.0.vault != vault {
            // A new vault starts a new chain: the old digests mean nothing there.
            record.0.vault = vault;
            record.0.last_backup = None;
            self.clear_dataset_known(id);
        }
        record.0.queued += 1;
        self.datasets.insert(id, record);
        let seq = self
            .dataset_queue
            .last_key_value()
            .map_or(1, |(k, _)| k + 1);
        self.dataset_queue.insert(
            seq,
            DatasetJob {
                dataset_id: id,
                bytes: bytes.into(),
            },
        );
        Ok(id)
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

    /// Queued data-set jobs.
    pub fn queued_datasets(&self) -> u64 {
        self.dataset_queue.len()
    }
}
