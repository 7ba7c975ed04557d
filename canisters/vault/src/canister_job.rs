//! Canister jobs: whole-canister backups (native snapshot of a canister the vault
//! controls, copied into the catalogue) and their restores (uploaded into a canister the
//! vault controls, loaded, read back). Persistent records and the state machine; the
//! calls are made by `canister_driver`, and this module never touches the system API.
//!
//! ```text
//! backup:  [Stopping (status, stop)] -> Taking -> (start) -> ReadingMetadata (ReadOwnerSnapshot starts here) -> Copying{i}.. -> Committing -> CleaningUp -> Done
//! restore: UploadingMetadata -> Uploading{i}.. -> Stopping (status, stop) -> Loading (load, take a check snapshot)
//!          -> (start) -> Verifying{i}.. -> CleaningUp -> Done
//! any step: retryable failure -> same step after backoff (1 s doubling, cap 60 s);
//!           permanent failure, or more than MAX_RETRIES in a row -> CleaningUp, then Failed
//! ```
//!
//! Before stopping, a job reads `canister_status` (`found`): a canister found stopped is
//! not stopped again, and only one found running is started again at the end, so a
//! job leaves the canister as it found it (a stopping one ends stopped).
//!
//! Invariants:
//! - `stopped` (the job must start the canister again) is set before the stop call of
//!   a canister found running is made (in the planning half of the step,
//!   which commits before the call leaves), so a canister the job may have stopped is
//!   always started again before the job ends, whatever failed;
//! - every native snapshot the job makes is recorded before it is used (`native`,
//!   `check`) and deleted in `CleaningUp`; a creation whose reply was lost is found
//!   again by listing the canister's snapshots (`known`: those that existed before);
//! - `Copying { next_index }`: every image chunk below it is in the catalogue snapshot,
//!   and `root` holds exactly their digests, in order (reads are idempotent: a chunk read
//!   twice is put twice, a no-op);
//! - a job not yet done or failed pins its catalogue snapshot;
//! - the record is the only progress state, so a job resumes after an upgrade.

use std::time::Duration;

use candid::{CandidType, Principal};
use canvault_protocol::canister_image::{
    CANISTER_IMAGE_CHUNK_SIZE, CanisterBackupRequest, CanisterImageHeader, CanisterImageLayout,
    CanisterJob, CanisterJobKind, CanisterJobState, Consistency, MAX_NATIVE_SNAPSHOT_ID_BYTES,
    RestoreCanisterRequest,
};
use canvault_protocol::vault_api::{SnapshotId, SnapshotKind, SnapshotState, VaultError};
use ic_management_canister_types::CanisterStatusType;
use ic_stable_structures::{Memory, StableBTreeMap};
use serde::Deserialize;
use serde_bytes::ByteBuf;

use crate::backup::{MAX_LABEL_BYTES, wrong_state};
use crate::restore_job::{MAX_RETRIES, backoff};
use crate::root::RootBuilder;
use crate::storable::candid_storable;
use crate::vault::Vault;

mod plan;
mod record;
pub use plan::{Plan, Step};
pub use record::Outcome;

/// A canister job as stored: the public view plus what resuming needs.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CanisterJobRecord {
    /// What the status endpoints return.
    pub job: CanisterJob,
    /// The principal catalogue snapshots are begun as (the vault itself).
    pub creator: Principal,
    /// The job may have stopped the canister it acts on and not started it yet.
    pub stopped: bool,
    /// Backup: the app-side snapshot read; restore: the snapshot uploaded into the target.
    pub native: Option<ByteBuf>,
    /// `native` is the owner's (`ReadOwnerSnapshot`): read, never deleted.
    pub keep_native: bool,
    /// Restore: the snapshot of the target taken after the load, read back to verify.
    pub check: Option<ByteBuf>,
    /// Snapshots the canister had before the job's pending creation (take or upload).
    pub known: Option<Vec<ByteBuf>>,
    /// The candid reply of `read_canister_snapshot_metadata` (backup: read; restore:
    /// from the image header).
    pub metadata: Option<ByteBuf>,
    /// The length of each chunk-store chunk read (backup) or stored (restore).
    pub wasm_chunk_lengths: Vec<u32>,
    /// The image layout, once known.
    pub layout: Option<CanisterImageLayout>,
    /// Digests of the image chunks stored so far (backup).
    pub root: RootBuilder,
    /// Restore: the target was loaded.
    pub loaded: bool,
    /// The canister's status read just before the job would stop it: only a canister
    /// found `Running` is started again (a stopped or stopping one is left stopped).
    /// Absent until read (and in records written before the read existed: those
    /// already stopped a canister they found running).
    pub found: Option<CanisterStatusType>,
    /// Why the job is failing (set when it enters `CleaningUp` after a failure).
    pub failure: Option<String>,
    /// Failures since the last progress.
    pub consecutive_failures: u32,
    /// Last change (ns).
    pub updated_at_ns: u64,
}

candid_storable!(CanisterJobRecord);

/// The canister-job table.
pub struct CanisterJobs<M: Memory> {
    pub(crate) map: StableBTreeMap<u64, CanisterJobRecord, M>,
}

impl<M: Memory> CanisterJobs<M> {
    /// Loads the table from `memory`, or creates it.
    pub fn init(memory: M) -> Self {
        Self {
            map: StableBTreeMap::init(memory),
        }
    }

    /// Records of jobs not yet done or failed.
    pub fn active(&self) -> impl Iterator<Item = CanisterJobRecord> + '_ {
        self.map.values().filter(|r| is_active(&r.job.state))
    }

    /// Catalogue snapshots written or read by active jobs.
    pub fn active_snapshots(&self) -> Vec<SnapshotId> {
        self.active().filter_map(|r| r.job.snapshot_id).collect()
    }
}

/// True until the job is done or failed.
pub fn is_active(state: &CanisterJobState) -> bool {
    !matches!(
        state,
        CanisterJobState::Done | CanisterJobState::Failed { .. }
    )
}

/// The canister a job acts on.
pub fn canister_of(kind: &CanisterJobKind) -> Principal {
    match kind {
        CanisterJobKind::Backup(b) => b.canister,
        CanisterJobKind::Restore(r) => r.target,
    }
}

/// Most canister jobs running at once (each holds a canister stopped at most briefly,
/// and pins a snapshot): a bound on the vault's timer work.
pub const MAX_ACTIVE_CANISTER_JOBS: usize = 16;

impl<M: Memory> Vault<M> {
    /// Starts copying `req.canister` into a new catalogue snapshot; `creator` is the
    /// vault's own principal.
    ///
    /// # Errors
    /// `InvalidRequest`: label too long, a job on that canister still running, too many jobs.
    pub fn backup_canister(
        &mut self,
        req: CanisterBackupRequest,
        creator: Principal,
        now_ns: u64,
    ) -> Result<CanisterJob, VaultError> {
        if req
            .label
            .as_ref()
            .is_some_and(|l| l.len() > MAX_LABEL_BYTES)
        {
            return Err(invalid(format!(
                "label longer than {MAX_LABEL_BYTES} bytes"
            )));
        }
        let (state, owners) = match &req.consistency {
            Consistency::StopTakeStart => (CanisterJobState::Stopping, None),
            Consistency::Running => (CanisterJobState::Taking, None),
            Consistency::ReadOwnerSnapshot { snapshot_id } => {
                if snapshot_id.len() > MAX_NATIVE_SNAPSHOT_ID_BYTES {
                    return Err(invalid(format!(
                        "a native snapshot id is at most {MAX_NATIVE_SNAPSHOT_ID_BYTES} bytes"
                    )));
                }
                (CanisterJobState::ReadingMetadata, Some(snapshot_id.clone()))
            }
        };
        let job =
            self.new_canister_job(CanisterJobKind::Backup(req), state, None, creator, now_ns)?;
        if owners.is_some() {
            let mut record = self.canister_jobs.map.get(&job.id).expect("just created");
            record.native = owners;
            record.keep_native = true;
            self.canister_jobs.map.insert(job.id, record);
        }
        Ok(job)
    }

    /// Starts loading a complete whole-canister snapshot into `req.target`.
    ///
    /// # Errors
    /// `SnapshotNotFound`; `WrongState` (not complete); `InvalidRequest`: a kit image, a
    /// job on that canister still running, too many jobs, an unreadable image header.
    pub fn restore_canister(
        &mut self,
        req: RestoreCanisterRequest,
        creator: Principal,
        now_ns: u64,
    ) -> Result<CanisterJob, VaultError> {
        let info = self.get_snapshot(req.snapshot_id)?;
        if info.state != SnapshotState::Complete {
            return Err(wrong_state(&info, "Complete"));
        }
        let Some(SnapshotKind::WholeCanister(layout)) = info.kind.clone() else {
            return Err(invalid(format!(
                "snapshot {} is a kit image: restore it with start_restore",
                info.id
            )));
        };
        let header = self
            .image_chunk(info.id, layout.header_index())
            .and_then(|raw| CanisterImageHeader::from_chunk(&raw).map_err(|e| e.to_string()))
            .map_err(|e| invalid(format!("snapshot {}: {e}", info.id)))?;
        if header.layout != layout || header.wasm_chunk_lengths.len() != layout.wasm_chunks as usize
        {
            return Err(invalid(format!(
                "snapshot {}: its header does not match its layout",
                info.id
            )));
        }
        let snapshot = info.id;
        let mut job = self.new_canister_job(
            CanisterJobKind::Restore(req),
            CanisterJobState::UploadingMetadata,
            Some(snapshot),
            creator,
            now_ns,
        )?;
        let mut record = self.canister_jobs.map.get(&job.id).expect("just created");
        record.metadata = Some(header.metadata);
        record.wasm_chunk_lengths = header.wasm_chunk_lengths;
        record.layout = Some(layout);
        job = record.job.clone();
        self.canister_jobs.map.insert(job.id, record);
        Ok(job)
    }

    fn new_canister_job(
        &mut self,
        kind: CanisterJobKind,
        state: CanisterJobState,
        snapshot_id: Option<SnapshotId>,
        creator: Principal,
        now_ns: u64,
    ) -> Result<CanisterJob, VaultError> {
        let canister = canister_of(&kind);
        let mut active = 0;
        for r in self.canister_jobs.active() {
            if canister_of(&r.job.kind) == canister {
                return Err(invalid(format!(
                    "canister job {} on {canister} is still running",
                    r.job.id
                )));
            }
            active += 1;
        }
        if active >= MAX_ACTIVE_CANISTER_JOBS {
            return Err(invalid(format!(
                "{MAX_ACTIVE_CANISTER_JOBS} canister jobs are running: wait for one to end"
            )));
        }
        let id = self.next_id(|c| &mut c.next_job_id);
        let job = CanisterJob {
            id,
            kind,
            state,
            snapshot_id,
            bytes: 0,
            retries: 0,
            last_error: None,
        };
        self.canister_jobs.map.insert(
            id,
            CanisterJobRecord {
                job: job.clone(),
                creator,
                stopped: false,
                native: None,
                keep_native: false,
                check: None,
                known: None,
                metadata: None,
                wasm_chunk_lengths: Vec::new(),
                layout: None,
                root: RootBuilder::default(),
                loaded: false,
                found: None,
                failure: None,
                consecutive_failures: 0,
                updated_at_ns: now_ns,
            },
        );
        Ok(job)
    }

    /// One canister job.
    ///
    /// # Errors
    /// `JobNotFound` (also for a job of the other kind than `backup` says).
    pub fn canister_job(&self, id: u64, backup: bool) -> Result<CanisterJob, VaultError> {
        self.canister_jobs
            .map
            .get(&id)
            .map(|r| r.job)
            .filter(|j| matches!(j.kind, CanisterJobKind::Backup(_)) == backup)
            .ok_or(VaultError::JobNotFound(id))
    }

    /// Every canister job, in id order.
    pub fn list_canister_jobs(&self) -> Vec<CanisterJob> {
        self.canister_jobs.map.values().map(|r| r.job).collect()
    }

    /// Ids of the canister jobs the driver must keep advancing.
    pub fn active_canister_jobs(&self) -> Vec<u64> {
        self.canister_jobs.active().map(|r| r.job.id).collect()
    }

    /// The decoded bytes of image chunk `index` of a stored snapshot.
    pub(crate) fn image_chunk(&self, id: SnapshotId, index: u64) -> Result<Vec<u8>, String> {
        let index = u32::try_from(index).map_err(|_| format!("no chunk {index}"))?;
        let entry = self
            .catalogue
            .entry(id, index)
            .ok_or_else(|| format!("chunk {index} missing"))?;
        if entry.zero {
            return Ok(vec![0; entry.len as usize]);
        }
        let chunk = self
            .store
            .get(&entry.hash)
            .ok_or_else(|| format!("chunk {index} not stored"))?;
        canvault_protocol::chunk::open(chunk.codec, &chunk.bytes, chunk.len, &entry.hash)
            .map_err(|e| format!("chunk {index}: {e}"))
    }
}

/// The delay before the next attempt after `failures` failures in a row, or `None` once
/// they exceed [`MAX_RETRIES`].
fn retry_delay(failures: u32) -> Option<Duration> {
    (failures <= MAX_RETRIES).then(|| backoff(failures))
}

fn invalid(reason: impl Into<String>) -> VaultError {
    VaultError::InvalidRequest(reason.into())
}

/// The image chunk size as a `usize`.
const CHUNK: usize = CANISTER_IMAGE_CHUNK_SIZE as usize;

#[cfg(test)]
mod tests;
