//! The vault's candid interface: roles, the begin / put / commit backup protocol,
//! catalogue, downloads, restore jobs and status.
//!
//! Idempotency rules (so a re-send is never mistaken for new data):
//! - `begin_snapshot` with a `(caller, nonce)` already seen returns the same snapshot;
//! - `put_chunks` of an `(index, hash)` already recorded in the snapshot is a no-op;
//!   the same index with a different hash is a [`VaultError::ConflictingChunk`];
//! - `commit_snapshot` of a complete snapshot with the same root succeeds again.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

pub use crate::canister_image::SnapshotKind;
use crate::{Codec, Hash256};

/// A snapshot's id within one vault (assigned in increasing order).
pub type SnapshotId = u64;

/// What a principal may do in a vault.
#[derive(
    CandidType, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum Role {
    /// Manage roles and retention, restore, download, upload, delete.
    Owner,
    /// Push backups (source canisters).
    Writer,
    /// List and download.
    Reader,
}

/// Which snapshots survive retention. A snapshot is kept if any rule keeps it; the
/// newest complete snapshot of each (source, data set) is always kept.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// The newest `keep_last` complete snapshots per (source, data set).
    pub keep_last: u32,
    /// The newest complete snapshot of each of the last `keep_daily` days that have one.
    pub keep_daily: u32,
    /// The newest complete snapshot of each of the last `keep_weekly` weeks that have one.
    pub keep_weekly: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            keep_last: 10,
            keep_daily: 7,
            keep_weekly: 4,
        }
    }
}

/// The vault's install (and upgrade) argument.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct VaultInit {
    /// Owners; the installer becomes one too when this is empty.
    pub owners: Vec<Principal>,
    /// Source canisters allowed to push.
    pub writers: Vec<Principal>,
    /// Principals allowed to list and download.
    pub readers: Vec<Principal>,
    /// Retention policy (default: keep 10 last, 7 daily, 4 weekly).
    pub retention: Option<RetentionPolicy>,
}

/// The lifecycle of a snapshot.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum SnapshotState {
    /// Chunks are arriving.
    InProgress,
    /// Every chunk is present and the root recomputed.
    Complete,
    /// Given up; kept for inspection until retention removes it.
    Failed {
        /// Why it failed.
        reason: String,
    },
}

/// A catalogue entry.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The id.
    pub id: SnapshotId,
    /// The canister whose image it is.
    pub source: Principal,
    /// The snapshot its chunk table started from, if incremental.
    pub parent: Option<SnapshotId>,
    /// Its state.
    pub state: SnapshotState,
    /// When `begin_snapshot` ran (vault time, ns).
    pub created_at_ns: u64,
    /// When it became complete.
    pub completed_at_ns: Option<u64>,
    /// Image size in bytes.
    pub image_size: u64,
    /// Chunk size in bytes.
    pub chunk_size: u32,
    /// Number of chunks.
    pub chunk_count: u32,
    /// The image root, once complete.
    pub root: Option<Hash256>,
    /// Encoded bytes of chunks this snapshot added to the store (not deduplicated).
    pub new_bytes: u64,
    /// A free-form label.
    pub label: Option<String>,
    /// The app-defined data set it backs up (`None`: the source's own image). Retention
    /// works per (source, data set).
    pub dataset: Option<String>,
    /// A kit image or a whole canister. Vaults always answer it; it is absent only from
    /// records written before whole-canister backups existed (read them as kit images).
    pub kind: Option<SnapshotKind>,
}

/// A page of the catalogue (`list_snapshot_page`).
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct ListSnapshotsRequest {
    /// Only this source's snapshots.
    pub source: Option<Principal>,
    /// The first snapshot id to look at (a previous page's `next`).
    pub start: Option<SnapshotId>,
    /// Most snapshots wanted (absent, 0 or above the vault's page size: the page size).
    pub limit: Option<u32>,
}

/// Snapshots in id order, and where the next page starts.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotPage {
    /// The snapshots (may be fewer than asked, even none, while `next` is set).
    pub snapshots: Vec<SnapshotInfo>,
    /// The `start` of the next page; absent at the end of the catalogue.
    pub next: Option<SnapshotId>,
}

/// Starts a snapshot.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BeginSnapshotRequest {
    /// Start from this snapshot's chunk table (incremental); ignored when absent.
    pub parent: Option<SnapshotId>,
    /// Image size in bytes.
    pub image_size: u64,
    /// Chunk size in bytes (a multiple of 64 KiB, at most 1 MiB).
    pub chunk_size: u32,
    /// Caller-chosen idempotency key: a re-sent begin returns the same snapshot.
    pub nonce: u64,
    /// A free-form label.
    pub label: Option<String>,
    /// Owners uploading an off-chain copy name the source; writers must leave it empty.
    pub source: Option<Principal>,
}

/// The snapshot begun.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BeginSnapshotResponse {
    /// Its id.
    pub snapshot_id: SnapshotId,
    /// The parent actually used (`None`: the chunk table starts empty).
    pub parent: Option<SnapshotId>,
}

/// A chunk's content in a transfer.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum ChunkBody {
    /// The encoded bytes.
    Data {
        /// Their encoding.
        codec: Codec,
        /// The encoded bytes.
        bytes: ByteBuf,
    },
    /// The receiver already holds a chunk with this hash (dedup); no bytes sent.
    Known,
    /// All zeros; never sent or stored.
    Zero,
}

/// One chunk of an image in a transfer: where it goes, what it hashes to, its bytes.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChunkPut {
    /// The chunk's index in the image.
    pub index: u32,
    /// Its digest: the frame digest (`chunk::frame_hash`), or `chunk::zero_hash(len)`.
    pub hash: Hash256,
    /// Decoded length.
    pub len: u32,
    /// The content.
    pub body: ChunkBody,
}

impl ChunkPut {
    /// The put carrying `raw` at `index`: a zero chunk without bytes, otherwise its
    /// sealed frame (`chunk::seal`).
    #[must_use]
    pub fn with_bytes(index: u32, raw: &[u8]) -> Self {
        let len = u32::try_from(raw.len()).expect("a chunk is at most 1 MiB");
        if crate::chunk::is_zero(raw) {
            return Self {
                index,
                hash: crate::chunk::zero_hash(len),
                len,
                body: ChunkBody::Zero,
            };
        }
        let sealed = crate::chunk::seal(raw);
        Self {
            index,
            hash: sealed.hash,
            len,
            body: ChunkBody::Data {
                codec: sealed.codec,
                bytes: sealed.bytes.into(),
            },
        }
    }
}

/// Chunks for a snapshot in progress.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PutChunksRequest {
    /// The snapshot.
    pub snapshot_id: SnapshotId,
    /// The chunks, each verified on arrival.
    pub chunks: Vec<ChunkPut>,
}

/// What a `put_chunks` recorded.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct PutChunksResponse {
    /// Chunks recorded (including idempotent repeats).
    pub recorded: u32,
    /// Indices sent as `Known` whose hash the vault does not hold: send their data.
    pub missing: Vec<u32>,
}

/// Completes a snapshot.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CommitSnapshotRequest {
    /// The snapshot.
    pub snapshot_id: SnapshotId,
    /// The image root the sender computed; the vault recomputes it.
    pub root: Hash256,
}

/// A chunk as stored, for downloads.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct StoredChunk {
    /// The frame digest (`chunk::frame_hash`): what the chunk is stored under.
    pub hash: Hash256,
    /// Decoded length.
    pub len: u32,
    /// Encoding of `bytes`.
    pub codec: Codec,
    /// The encoded bytes.
    pub bytes: ByteBuf,
}

/// One entry of a snapshot's chunk table.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Chunk index.
    pub index: u32,
    /// The chunk's digest: its frame digest, or `chunk::zero_hash(len)`.
    pub hash: Hash256,
    /// Decoded length.
    pub len: u32,
    /// True for an all-zero chunk (no bytes stored).
    pub zero: bool,
}

/// A page of a snapshot's chunk table.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ManifestPage {
    /// Entries in index order.
    pub entries: Vec<ManifestEntry>,
    /// The index to ask for next, if any.
    pub next: Option<u32>,
}

/// Starts pushing a snapshot into a target canister that embeds the kit.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct StartRestoreRequest {
    /// A complete snapshot.
    pub snapshot_id: SnapshotId,
    /// The canister to restore into (its admin must have armed the restore).
    pub target: Principal,
}

/// Progress of a restore job.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum RestoreJobState {
    /// Announcing the restore to the target.
    Starting,
    /// Pushing chunks; `next_index` is the first not yet acknowledged.
    Pushing {
        /// First chunk not yet acknowledged.
        next_index: u32,
    },
    /// Asking the target to verify and switch.
    Finishing,
    /// The target switched to the restored image.
    Done,
    /// Given up.
    Failed {
        /// Why.
        reason: String,
    },
}

/// A restore job.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RestoreJob {
    /// Job id.
    pub id: u64,
    /// The snapshot restored.
    pub snapshot_id: SnapshotId,
    /// The target canister.
    pub target: Principal,
    /// Progress.
    pub state: RestoreJobState,
    /// Encoded bytes pushed so far.
    pub bytes_sent: u64,
    /// Failed attempts so far (retried with backoff).
    pub retries: u32,
}

/// A role change.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RoleChange {
    /// Who.
    pub principal: Principal,
    /// Which role.
    pub role: Role,
    /// Grant (true) or revoke (false).
    pub grant: bool,
}

/// Gauges for monitoring.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VaultStatus {
    /// Distinct chunks stored.
    pub chunks: u64,
    /// Encoded bytes of stored chunks.
    pub chunk_bytes: u64,
    /// Snapshots per state: (in progress, complete, failed).
    pub snapshots: (u64, u64, u64),
    /// Completion time of the newest complete snapshot.
    pub last_complete_at_ns: Option<u64>,
    /// Stable memory size in bytes.
    pub stable_memory_bytes: u64,
    /// The vault's cycle balance.
    pub cycles: u128,
    /// The retention policy in force.
    pub retention: RetentionPolicy,
    /// Kit restore jobs (`start_restore`) not yet done or failed.
    pub active_restores: u32,
    /// Whole-canister jobs (`backup_canister`, `restore_canister`, scheduled backups) not
    /// yet done or failed; absent from vaults that predate them.
    pub active_canister_jobs: Option<u32>,
    /// Canisters with a backup schedule; absent from vaults that predate schedules.
    pub scheduled_canisters: Option<u32>,
    /// The vault code's version string.
    pub version: String,
}

/// Every error a vault endpoint returns.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The caller lacks the role.
    #[error("{caller} is not allowed: the {needed:?} role is required")]
    Unauthorized {
        /// The caller.
        caller: Principal,
        /// The role needed.
        needed: Role,
    },
    /// No such snapshot.
    #[error("snapshot {0} not found")]
    SnapshotNotFound(SnapshotId),
    /// The snapshot is not in the state the operation needs.
    #[error("snapshot {id} is {state:?}, not {expected}")]
    WrongState {
        /// The snapshot.
        id: SnapshotId,
        /// Its state.
        state: SnapshotState,
        /// What the operation needs.
        expected: String,
    },
    /// The snapshot belongs to another source.
    #[error("snapshot {id} belongs to {owner}, not to the caller")]
    NotYourSnapshot {
        /// The snapshot.
        id: SnapshotId,
        /// Its source.
        owner: Principal,
    },
    /// A chunk failed verification.
    #[error("chunk {index} rejected: {reason}")]
    BadChunk {
        /// Its index.
        index: u32,
        /// Why.
        reason: String,
    },
    /// An index already holds a different chunk in this snapshot.
    #[error("chunk {index} was already recorded with hash {recorded}, not {sent}")]
    ConflictingChunk {
        /// Its index.
        index: u32,
        /// The hash recorded.
        recorded: Hash256,
        /// The hash sent now.
        sent: Hash256,
    },
    /// Commit found chunks missing.
    #[error("{missing} chunks missing, the first is {first}")]
    MissingChunks {
        /// How many.
        missing: u32,
        /// The first missing index.
        first: u32,
    },
    /// Commit recomputed a different root.
    #[error("root mismatch: sent {sent}, computed {computed}")]
    RootMismatch {
        /// The root sent.
        sent: Hash256,
        /// The root recomputed.
        computed: Hash256,
    },
    /// The request is malformed (bad geometry, oversize batch...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The snapshot is in use or busy: read by a restore, being copied into a child,
    /// or its own table work (parent copy, commit walk) is not finished. Retry later.
    #[error("snapshot {0} is in use or busy: retry later")]
    InUse(SnapshotId),
    /// No such restore job.
    #[error("restore job {0} not found")]
    JobNotFound(u64),
}

impl VaultError {
    /// True if retrying the same request later may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::InUse(_))
    }
}
