//! The candid interface the source kit adds to an app canister: admin endpoints
//! (configure, back up, arm a restore, status) and the restore endpoints a vault calls.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

use crate::Hash256;
use crate::vault_api::{ChunkPut, SnapshotId};

/// Kit settings an admin may change. Absent fields keep their current value.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct KitConfig {
    /// The vault backups go to.
    pub vault: Option<Principal>,
    /// Principals allowed to administer the kit, besides the app's controllers.
    pub admins: Option<Vec<Principal>>,
    /// Back up automatically every this many seconds (0 turns it off).
    pub interval_seconds: Option<u64>,
    /// Chunk size for the next full backup (a multiple of 64 KiB, at most 1 MiB).
    pub chunk_size: Option<u32>,
    /// Ceiling of `put_chunks` calls in flight at once (1 to 256; default 32): the
    /// kit's adaptive flow limit never exceeds it.
    pub window: Option<u32>,
    /// Largest image a restore armed without an expected root may announce (the kit's
    /// default is 64 GiB); with an expected root the root fixes the size.
    pub max_unverified_restore_bytes: Option<u64>,
}

/// A backup in progress.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BackupProgress {
    /// The vault's snapshot id, once `begin_snapshot` answered.
    pub snapshot_id: Option<SnapshotId>,
    /// When the point-in-time image was frozen.
    pub started_at_ns: u64,
    /// Image size frozen at the start.
    pub image_size: u64,
    /// Chunks to send (changed since the last backup).
    pub chunks_total: u32,
    /// Chunks acknowledged by the vault.
    pub chunks_done: u32,
    /// Encoded bytes sent (including re-sends).
    pub bytes_sent: u64,
    /// Failed calls retried so far.
    pub retries: u32,
    /// The last error seen, if any.
    pub last_error: Option<String>,
}

/// The last complete backup.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LastBackup {
    /// The vault.
    pub vault: Principal,
    /// Its snapshot id.
    pub snapshot_id: SnapshotId,
    /// The image root.
    pub root: Hash256,
    /// Image size.
    pub image_size: u64,
    /// When it completed.
    pub completed_at_ns: u64,
    /// Chunks sent with data by that backup.
    pub chunks_sent: u32,
    /// Encoded bytes sent by that backup.
    pub bytes_sent: u64,
    /// When the image was frozen: the point in time the snapshot holds (`None` for a
    /// snapshot installed by a restore, and in records written before it was kept).
    pub frozen_at_ns: Option<u64>,
}

/// Why the last backup failed.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FailedBackup {
    /// When it was given up.
    pub at_ns: u64,
    /// Why.
    pub reason: String,
}

/// A restore armed by an admin.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RestoreProgress {
    /// The vault allowed to push.
    pub vault: Principal,
    /// The snapshot expected.
    pub snapshot_id: SnapshotId,
    /// The root the admin expects, if given.
    pub expected_root: Option<Hash256>,
    /// Chunks verified and staged.
    pub chunks_staged: u32,
    /// Chunks in the image (known once the vault began).
    pub chunks_total: Option<u32>,
}

/// What the kit reports.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct KitStatus {
    /// The app image's size in bytes.
    pub image_size: u64,
    /// Chunk size in use.
    pub chunk_size: u32,
    /// The configured vault.
    pub vault: Option<Principal>,
    /// Automatic backup interval (0: off).
    pub interval_seconds: u64,
    /// Chunks written since the last complete backup.
    pub dirty_chunks: u32,
    /// The backup in progress.
    pub backup: Option<BackupProgress>,
    /// The last complete backup.
    pub last_backup: Option<LastBackup>,
    /// The last failed backup since then.
    pub last_failure: Option<FailedBackup>,
    /// The armed restore.
    pub restore: Option<RestoreProgress>,
    /// Complete backups since install.
    pub backups_completed: u64,
    /// Restores applied since install.
    pub restores_completed: u64,
    /// Set when something besides the kit grew or overwrote raw stable memory (raw
    /// `ic0.stable*` / `ic_cdk::stable` writes): such bytes are never backed up.
    pub foreign_stable_memory: Option<String>,
    /// When an image backup was asked for while a data-set backup ran; it starts
    /// before any other queued data set.
    pub image_backup_requested_at_ns: Option<u64>,
}

/// An app-defined data set (e.g. one user's data) backed up to its own vault.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DatasetInfo {
    /// The app's name for it (e.g. the user's principal as text).
    pub name: String,
    /// The vault it goes to (e.g. the user's personal vault).
    pub vault: Principal,
    /// Its last complete backup.
    pub last_backup: Option<LastBackup>,
    /// The last failure since then.
    pub last_failure: Option<FailedBackup>,
    /// Backups queued and not yet started.
    pub queued: u32,
}

/// Arms a restore: the only way a vault may push an image into this canister.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ArmRestoreRequest {
    /// The vault allowed to push.
    pub vault: Principal,
    /// The snapshot to accept.
    pub snapshot_id: SnapshotId,
    /// If given, the image root must equal it.
    pub expected_root: Option<Hash256>,
}

/// Sent by the vault before the chunks.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RestoreBeginRequest {
    /// The snapshot.
    pub snapshot_id: SnapshotId,
    /// Image size.
    pub image_size: u64,
    /// Chunk size.
    pub chunk_size: u32,
    /// The image root the chunks must recompute.
    pub root: Hash256,
}

/// Chunks pushed by the vault into the staging image.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RestoreChunksRequest {
    /// The snapshot.
    pub snapshot_id: SnapshotId,
    /// Chunks with data (`Data` or `Zero`).
    pub chunks: Vec<ChunkPut>,
}

/// Every error a kit endpoint returns.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KitError {
    /// The caller is neither a controller nor an admin (or not the armed vault).
    #[error("{0} is not allowed to call this endpoint")]
    Unauthorized(Principal),
    /// No vault is configured.
    #[error("no vault is configured")]
    NotConfigured,
    /// A backup is already running.
    #[error("a backup is already in progress")]
    BackupInProgress,
    /// A restore is armed or running; backups wait.
    #[error("a restore is armed; finish or abandon it first")]
    RestoreInProgress,
    /// No restore is armed.
    #[error("no restore is armed")]
    NotArmed,
    /// The request names another snapshot than the armed one.
    #[error("restore armed for snapshot {armed}, not {got}")]
    WrongSnapshot {
        /// Armed.
        armed: SnapshotId,
        /// Received.
        got: SnapshotId,
    },
    /// A chunk failed verification.
    #[error("chunk {index} rejected: {reason}")]
    BadChunk {
        /// Its index.
        index: u32,
        /// Why.
        reason: String,
    },
    /// Chunks are missing at finish.
    #[error("{missing} chunks missing, the first is {first}")]
    Incomplete {
        /// How many.
        missing: u32,
        /// The first missing index.
        first: u32,
    },
    /// The staged image does not recompute the expected root.
    #[error("root mismatch: expected {expected}, computed {computed}")]
    RootMismatch {
        /// The root expected.
        expected: Hash256,
        /// The root recomputed.
        computed: Hash256,
    },
    /// The request is malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The data-set queue is full; try again after queued backups ran.
    #[error("the data-set backup queue is full ({queued} jobs queued)")]
    QueueFull {
        /// Jobs queued.
        queued: u32,
    },
}
