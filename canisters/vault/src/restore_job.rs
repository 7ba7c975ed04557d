//! Restore jobs: persistent records and the state machine the driver advances.
//!
//! ```text
//! Starting --begin acked--> Pushing{0} --batches acked--> Pushing{n} ... --> Finishing --finish acked--> Done
//!     any step: retryable failure -> same state, retried after backoff (1 s doubling, cap 60 s)
//!               permanent failure or more than MAX_RETRIES in a row -> Failed{reason}
//! ```
//!
//! Invariants:
//! - `Pushing { next_index }`: every chunk below `next_index` was acknowledged by the
//!   target; it only moves past acknowledged batches, so a lost reply re-sends (the
//!   target accepts a re-sent chunk);
//! - a job not yet `Done` or `Failed` pins its snapshot (it cannot be deleted);
//! - the record is the only progress state, so a job resumes after an upgrade.
//!
//! The calls themselves are made by `restore_driver`; this module decides what to send
//! and what a reply means, and never touches the system API.

use std::collections::BTreeSet;
use std::time::Duration;

use candid::{CandidType, Principal};
use canvault_protocol::chunk::{
    ENTRY_OVERHEAD_BYTES, MAX_BATCH_DECODED_BYTES, MAX_BATCH_PAYLOAD_BYTES,
};
use canvault_protocol::kit_api::{RestoreBeginRequest, RestoreChunksRequest};
use canvault_protocol::vault_api::{
    ChunkBody, ChunkPut, RestoreJob, RestoreJobState, SnapshotId, SnapshotState,
    StartRestoreRequest, VaultError,
};
use ic_stable_structures::{Memory, StableBTreeMap};
use serde::Deserialize;

use crate::backup::wrong_state;
use crate::storable::candid_storable;
use crate::vault::Vault;

/// Consecutive retryable failures after which a job fails.
pub const MAX_RETRIES: u32 = 20;
/// First retry delay; doubles on each consecutive failure.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A job as stored: the public view plus retry bookkeeping.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// What `restore_status` returns.
    pub job: RestoreJob,
    /// Failures since the last progress.
    pub consecutive_failures: u32,
    /// The last failure seen.
    pub last_error: Option<String>,
    /// Last change (ns).
    pub updated_at_ns: u64,
}

candid_storable!(JobRecord);

/// The job table.
pub struct Jobs<M: Memory> {
    pub(crate) map: StableBTreeMap<u64, JobRecord, M>,
}

impl<M: Memory> Jobs<M> {
    /// Loads the table from `memory`, or creates it.
    pub fn init(memory: M) -> Self {
        Self {
            map: StableBTreeMap::init(memory),
        }
    }

    /// Snapshots read by jobs not yet done or failed.
    pub fn active_snapshots(&self) -> BTreeSet<SnapshotId> {
        self.map
            .values()
            .filter(|r| is_active(&r.job.state))
            .map(|r| r.job.snapshot_id)
            .collect()
    }

    /// Number of jobs not yet done or failed.
    pub fn active_count(&self) -> usize {
        self.map
            .values()
            .filter(|r| is_active(&r.job.state))
            .count()
    }

    /// Ids of jobs not yet done or failed.
    pub fn active_ids(&self) -> Vec<u64> {
        self.map
            .iter()
            .filter(|e| is_active(&e.value().job.state))
            .map(|e| *e.key())
            .collect()
    }
}

/// True until the job is done or failed.
pub fn is_active(state: &RestoreJobState) -> bool {
    !matches!(
        state,
        RestoreJobState::Done | RestoreJobState::Failed { .. }
    )
}

/// One call's worth of chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The first index after this batch.
    pub end: u32,
    /// Encoded bytes in it.
    pub bytes: u64,
    /// The request.
    pub request: RestoreChunksRequest,
}

/// What the driver sends next to `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `canvault_restore_begin`.
    Begin(RestoreBeginRequest),
    /// `canvault_restore_chunks`, one call per batch, in index order.
    Push(Vec<Batch>),
    /// `canvault_restore_finish`.
    Finish(SnapshotId),
}

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Transient (target busy, stopped, upgrading, timed out): try the same step later.
    Retry(String),
    /// Retrying cannot help (the target refused, or is gone).
    Permanent(String),
}

impl Failure {
    /// Classifies an IC reject: codes 2 (transient), 5 (canister error: trapped,
    /// stopped, upgrading) and 6 (unknown, e.g. timeout) are retried.
    pub fn from_reject(code: u32, message: &str) -> Self {
        let text = format!("target rejected the call (code {code}): {message}");
        match code {
            2 | 5 | 6 => Self::Retry(text),
            _ => Self::Permanent(text),
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Begin or finish acknowledged.
    Acked,
    /// Push: batches acknowledged in order up to `next_index` (`bytes` in them), then
    /// possibly a failure of the first batch not acknowledged.
    Pushed {
        /// First index not acknowledged.
        next_index: u32,
        /// Encoded bytes acknowledged.
        bytes: u64,
        /// Why the next batch failed, if it did.
        error: Option<Failure>,
    },
    /// The step failed.
    Failed(Failure),
}

/// Delay before retry number `n` (1-based): 1 s doubling, capped.
pub fn backoff(n: u32) -> Duration {
    let exp = n.saturating_sub(1).min(16);
    (FIRST_BACKOFF * 2u32.pow(exp)).min(MAX_BACKOFF)
}

impl<M: Memory> Vault<M> {
    /// Starts a restore of a complete snapshot into `target` (pins the snapshot).
    ///
    /// # Errors
    /// `SnapshotNotFound`, `WrongState` (not complete), `InvalidRequest` if a job into
    /// the same target is still running.
    pub fn start_restore(
        &mut self,
        req: &StartRestoreRequest,
        now_ns: u64,
    ) -> Result<RestoreJob, VaultError> {
        let info = self.get_snapshot(req.snapshot_id)?;
        if info.state != SnapshotState::Complete {
            return Err(wrong_state(&info, "Complete"));
        }
        if let Some(busy) = self
            .jobs
            .map
            .values()
            .find(|r| r.job.target == req.target && is_active(&r.job.state))
        {
            return Err(VaultError::InvalidRequest(format!(
                "restore job {} into {} is still running",
                busy.job.id, req.target
            )));
        }
        let id = self.next_id(|c| &mut c.next_job_id);
        let job = RestoreJob {
            id,
            snapshot_id: req.snapshot_id,
            target: req.target,
            state: RestoreJobState::Starting,
            bytes_sent: 0,
            retries: 0,
        };
        self.jobs.map.insert(
            id,
            JobRecord {
                job: job.clone(),
                consecutive_failures: 0,
                last_error: None,
                updated_at_ns: now_ns,
            },
        );
        Ok(job)
    }

    /// One job.
    ///
    /// # Errors
    /// `JobNotFound`.
    pub fn restore_status(&self, id: u64) -> Result<RestoreJob, VaultError> {
        self.jobs
            .map
            .get(&id)
            .map(|r| r.job)
            .ok_or(VaultError::JobNotFound(id))
    }

    /// Every job, in id order.
    pub fn list_restores(&self) -> Vec<RestoreJob> {
        self.jobs.map.values().map(|r| r.job).collect()
    }

    /// Ids of the jobs the driver must keep advancing.
    pub fn active_restores(&self) -> Vec<u64> {
        self.jobs.active_ids()
    }

    /// The next step of an active job and its target; `None` once done or failed.
    /// A push step carries up to `max_batches` batches, each within the call payload
    /// budget (`MAX_BATCH_PAYLOAD_BYTES`, counting `ENTRY_OVERHEAD_BYTES` per chunk) and
    /// the receiver's work budget (`MAX_BATCH_DECODED_BYTES` of decoded chunks).
    pub fn restore_step(&self, id: u64, max_batches: usize) -> Option<(Principal, Step)> {
        let job = self.jobs.map.get(&id)?.job;
        let info = self
            .get_snapshot(job.snapshot_id)
            .expect("active jobs pin their snapshot");
        let step = match job.state {
            RestoreJobState::Starting => Step::Begin(RestoreBeginRequest {
                snapshot_id: info.id,
                image_size: info.image_size,
                chunk_size: info.chunk_size,
                root: info.root.expect("complete snapshots have a root"),
            }),
            RestoreJobState::Pushing { next_index } => {
                Step::Push(self.plan_batches(info.id, next_index, max_batches))
            }
            RestoreJobState::Finishing => Step::Finish(info.id),
            RestoreJobState::Done | RestoreJobState::Failed { .. } => return None,
        };
        Some((job.target, step))
    }

    /// Up to `max_batches` push batches of job `id` from index `from` on, planned as
    /// [`Self::restore_step`] plans them (a pipeline plans ahead of what the target has
    /// acknowledged). Empty unless the job is pushing and `from` is below its chunk count.
    pub fn restore_batches_from(&self, id: u64, from: u32, max_batches: usize) -> Vec<Batch> {
        let Some(record) = self.jobs.map.get(&id) else {
            return Vec::new();
        };
        if !matches!(record.job.state, RestoreJobState::Pushing { .. }) {
            return Vec::new();
        }
        self.plan_batches(record.job.snapshot_id, from, max_batches)
    }

    /// Records how a step ended; returns the delay before the next step, or `None`
    /// when the job is over.
    pub fn restore_record(&mut self, id: u64, outcome: Outcome, now_ns: u64) -> Option<Duration> {
        let mut record = self.jobs.map.get(&id)?;
        let chunk_count = self.get_snapshot(record.job.snapshot_id).ok()?.chunk_count;
        let after_progress = |next_index: u32| {
            if next_index >= chunk_count {
                RestoreJobState::Finishing
            } else {
                RestoreJobState::Pushing { next_index }
            }
        };
        let failure = match (&record.job.state, outcome) {
            (RestoreJobState::Starting, Outcome::Acked) => {
                record.job.state = after_progress(0);
                None
            }
            (RestoreJobState::Finishing, Outcome::Acked) => {
                record.job.state = RestoreJobState::Done;
                None
            }
            (
                RestoreJobState::Pushing { next_index: from },
                Outcome::Pushed {
                    next_index,
                    bytes,
                    error,
                },
            ) => {
                if next_index > *from {
                    record.consecutive_failures = 0;
                    record.job.bytes_sent += bytes;
                    record.job.state = after_progress(next_index);
                    error
                } else {
                    Some(error.unwrap_or_else(|| {
                        Failure::Permanent(format!(
                            "internal error: a push from {from} made no progress"
                        ))
                    }))
                }
            }
            (_, Outcome::Failed(failure)) => Some(failure),
            (state, outcome) => Some(Failure::Permanent(format!(
                "internal error: outcome {outcome:?} in state {state:?}"
            ))),
        };
        let delay = match failure {
            None => {
                record.consecutive_failures = 0;
                Some(Duration::ZERO)
            }
            Some(Failure::Permanent(reason)) => {
                record.job.state = RestoreJobState::Failed { reason };
                None
            }
            Some(Failure::Retry(reason)) => {
                record.job.retries += 1;
                record.consecutive_failures += 1;
                if record.consecutive_failures > MAX_RETRIES {
                    record.job.state = RestoreJobState::Failed {
                        reason: format!(
                            "gave up after {MAX_RETRIES} retries in a row; last error: {reason}"
                        ),
                    };
                    None
                } else {
                    record.last_error = Some(reason);
                    Some(backoff(record.consecutive_failures))
                }
            }
        };
        let delay = delay.filter(|_| is_active(&record.job.state));
        record.updated_at_ns = now_ns;
        self.jobs.map.insert(id, record);
        delay
    }

    fn plan_batches(&self, snapshot: SnapshotId, from: u32, max_batches: usize) -> Vec<Batch> {
        let mut batches = Vec::new();
        let mut chunks = Vec::new();
        let (mut size, mut decoded, mut bytes, mut expected) = (0usize, 0u64, 0u64, from);
        for (index, entry) in self.catalogue.entries(snapshot, from) {
            assert_eq!(index, expected, "complete snapshots have every index");
            let encoded = if entry.zero {
                0
            } else {
                let meta = self
                    .store
                    .meta(&entry.hash)
                    .expect("referenced chunks are stored");
                meta.encoded_len as usize
            };
            let cost = ENTRY_OVERHEAD_BYTES + encoded;
            let full = size + cost > MAX_BATCH_PAYLOAD_BYTES
                || decoded + u64::from(entry.len) > MAX_BATCH_DECODED_BYTES;
            if !chunks.is_empty() && full {
                batches.push(Batch {
                    end: index,
                    bytes,
                    request: RestoreChunksRequest {
                        snapshot_id: snapshot,
                        chunks: std::mem::take(&mut chunks),
                    },
                });
                (size, decoded, bytes) = (0, 0, 0);
                if batches.len() == max_batches {
                    return batches;
                }
            }
            let body = if entry.zero {
                ChunkBody::Zero
            } else {
                let chunk = self
                    .store
                    .get(&entry.hash)
                    .expect("referenced chunks are stored");
                ChunkBody::Data {
                    codec: chunk.codec,
                    bytes: chunk.bytes,
                }
            };
            size += cost;
            decoded += u64::from(entry.len);
            bytes += encoded as u64;
            chunks.push(ChunkPut {
                index,
                hash: entry.hash,
                len: entry.len,
                body,
            });
            expected = index + 1;
        }
        if !chunks.is_empty() {
            batches.push(Batch {
                end: expected,
                bytes,
                request: RestoreChunksRequest {
                    snapshot_id: snapshot,
                    chunks,
                },
            });
        }
        batches
    }
}

#[cfg(test)]
mod tests;
