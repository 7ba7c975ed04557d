//! The kit's persisted state: configuration, the active image, backup and restore
//! progress. Stored candid-encoded in one `StableCell`; it is small (under a kilobyte)
//! and written only when progress changes, never on the app's write path.

use std::borrow::Cow;

use candid::{CandidType, Decode, Encode, Principal};
use canvault_protocol::Hash256;
use canvault_protocol::kit_api::{FailedBackup, LastBackup};
use canvault_protocol::merkle::Frontier;
use canvault_protocol::vault_api::SnapshotId;
use ic_stable_structures::Storable;
use ic_stable_structures::storable::Bound;
use serde::{Deserialize, Serialize};

/// Layout version of [`KitState`]; bump on incompatible changes. 2: recorded chunk
/// digests are frame digests (`chunk::frame_hash`). 3: the cell's bytes carry a magic
/// and a SHA-256 of the candid encoding ([`STATE_MAGIC`]); generation 2 cells (bare
/// candid) are read and migrated. 4: a backup's root walk and committed root, a
/// restore's root walk (absent fields of generation 3 read as none: the walks start
/// over), and the frozen bitmap (MemoryId 14, rebuilt when the kit loads).
pub const STATE_VERSION: u32 = 4;

/// The first bytes of a generation-3 state cell, followed by the SHA-256 of the candid
/// encoding that follows it.
pub const STATE_MAGIC: &[u8; 8] = b"CVKITST3";

/// The largest image a restore without an expected root may announce, unless the
/// admin configured another cap: 64 GiB.
pub const DEFAULT_MAX_UNVERIFIED_RESTORE_BYTES: u64 = 64 << 30;

/// The kit's default chunk size: 64 KiB. Dirty tracking is only as fine as a chunk, so
/// small chunks keep incremental backups small (measured: after 1% of the example app
/// changed, 3% of a full backup's cycles with 64 KiB chunks, 13% with 1 MiB chunks; see
/// docs/benchmarks.md). The cost is more table entries: 16,384 per GiB.
pub const DEFAULT_KIT_CHUNK_SIZE: u32 = canvault_protocol::chunk::MIN_CHUNK_SIZE;

/// Kit settings.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where backups go.
    pub vault: Option<Principal>,
    /// Admins besides the app's controllers.
    pub admins: Vec<Principal>,
    /// Automatic backup interval in seconds (0: off).
    pub interval_seconds: u64,
    /// Chunk size of every backup (kits before state generation 4 doubled it above
    /// 2^18 chunks); a known table of another size makes the next backup a full one.
    pub chunk_size: u32,
    /// Ceiling of the adaptive limit of `put_chunks` calls in flight
    /// (`canvault_protocol::flow`).
    pub window: u32,
    /// Largest image a restore without an expected root may announce (`None`:
    /// [`DEFAULT_MAX_UNVERIFIED_RESTORE_BYTES`]).
    pub max_unverified_restore_bytes: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            vault: None,
            admins: Vec::new(),
            interval_seconds: 0,
            chunk_size: DEFAULT_KIT_CHUNK_SIZE,
            window: canvault_protocol::flow::DEFAULT_MAX_IN_FLIGHT,
            max_unverified_restore_bytes: None,
        }
    }
}

/// What a backup copies.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The app's image (its whole stable memory as the app sees it).
    Image,
    /// An app-defined data set (e.g. one user's posts), staged by the kit at the freeze.
    Dataset(u64),
}

/// A backup between its freeze and its commit.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// What is backed up.
    pub target: Target,
    /// Idempotency key of `begin_snapshot`.
    pub nonce: u64,
    /// The vault it goes to.
    pub vault: Principal,
    /// The vault's snapshot id, once begun.
    pub snapshot_id: Option<SnapshotId>,
    /// The parent asked for (incremental), if any.
    pub parent: Option<SnapshotId>,
    /// When the image was frozen.
    pub started_at_ns: u64,
    /// Image size at the freeze.
    pub image_size: u64,
    /// Chunk size.
    pub chunk_size: u32,
    /// Chunks in the to-send set at the freeze.
    pub chunks_total: u32,
    /// Chunks acknowledged.
    pub chunks_done: u32,
    /// Chunks sent with data.
    pub data_chunks: u32,
    /// Encoded bytes sent.
    pub bytes_sent: u64,
    /// Failed calls retried.
    pub retries: u32,
    /// Consecutive failures of the current step.
    pub failures_in_a_row: u32,
    /// The last error.
    pub last_error: Option<String>,
    /// The root walk over the frozen digests, once every chunk was acknowledged
    /// (absent in older kits: the walk starts over).
    pub root_walk: Option<Frontier>,
    /// The root the vault committed: the backup is merging into the known table.
    pub committed_root: Option<Hash256>,
}

/// A restore armed by an admin.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Restore {
    /// The vault allowed to push.
    pub vault: Principal,
    /// The snapshot expected.
    pub snapshot_id: SnapshotId,
    /// The root the admin expects.
    pub expected_root: Option<Hash256>,
    /// Geometry and root announced by the vault.
    pub begun: Option<RestoreGeometry>,
    /// Staging bytes below this offset may hold an older image; above it the staging
    /// memory was just grown and is all zeros, so zero chunks there need no write.
    pub stale_below: Option<u64>,
    /// The root walk over the staged digests, advanced as contiguous chunks arrive
    /// (absent in older kits: it starts over).
    pub root_walk: Option<Frontier>,
}

/// What the vault announced.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreGeometry {
    /// Image size.
    pub image_size: u64,
    /// Chunk size.
    pub chunk_size: u32,
    /// Root to verify.
    pub root: Hash256,
}

/// The last restore applied: a retried `restore_finish` for it is answered as done.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LastRestore {
    /// The vault that pushed it.
    pub vault: Principal,
    /// Its snapshot.
    pub snapshot_id: SnapshotId,
    /// Its root.
    pub root: Hash256,
    /// When the switch happened.
    pub completed_at_ns: u64,
}

/// Everything the kit persists besides its structures.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct KitState {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// Settings.
    pub config: Config,
    /// Which image memory the app sees: 0 or 1.
    pub active_image: u8,
    /// Logical size of the active image, in wasm pages.
    pub image_pages: u64,
    /// Which digest table holds the known digests: 0 (MemoryId 4) or 1 (MemoryId 8);
    /// the other stages a restore's. A restore's switch swaps them, like the images.
    pub known_table: u8,
    /// Chunk size of the hashes in the known table (the last complete backup's).
    pub known_chunk_size: u32,
    /// The last complete backup.
    pub last_backup: Option<LastBackup>,
    /// The last failure since then.
    pub last_failure: Option<FailedBackup>,
    /// The backup in progress.
    pub backup: Option<Backup>,
    /// The armed restore.
    pub restore: Option<Restore>,
    /// Complete backups since install.
    pub backups_completed: u64,
    /// Restores applied since install.
    pub restores_completed: u64,
    /// Next `begin_snapshot` nonce.
    pub next_nonce: u64,
    /// The last restore applied (absent in generation 2).
    pub last_restore: Option<LastRestore>,
    /// When an image backup was asked for while a data-set backup ran (it starts
    /// before any queued data set).
    pub image_backup_requested_at_ns: Option<u64>,
}

impl Default for KitState {
    fn default() -> Self {
        Self {
            version: STATE_VERSION,
            config: Config::default(),
            active_image: 0,
            image_pages: 0,
            known_table: 0,
            known_chunk_size: DEFAULT_KIT_CHUNK_SIZE,
            last_backup: None,
            last_failure: None,
            backup: None,
            restore: None,
            backups_completed: 0,
            restores_completed: 0,
            next_nonce: 1,
            last_restore: None,
            image_backup_requested_at_ns: None,
        }
    }
}

impl Backup {
    /// A backup of `target` frozen at `started_at_ns`, with `chunks_total` chunks to send.
    #[must_use]
    pub fn starting(
        target: Target,
        vault: Principal,
        parent: Option<SnapshotId>,
        started_at_ns: u64,
        image_size: u64,
        chunk_size: u32,
        chunks_total: u32,
    ) -> Self {
        Self {
            target,
            nonce: 0,
            vault,
            snapshot_id: None,
            parent,
            started_at_ns,
            image_size,
            chunk_size,
            chunks_total,
            chunks_done: 0,
            data_chunks: 0,
            bytes_sent: 0,
            retries: 0,
            failures_in_a_row: 0,
            last_error: None,
            root_walk: None,
            committed_root: None,
        }
    }
}

impl KitState {
    /// Records `backup` as the one in progress and gives it the next `begin_snapshot` nonce.
    pub fn start_backup(&mut self, mut backup: Backup) {
        backup.nonce = self.next_nonce;
        self.next_nonce += 1;
        self.backup = Some(backup);
    }
}

impl KitState {
    /// The cell's bytes: [`STATE_MAGIC`], the SHA-256 of the candid encoding, the encoding.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let candid = Encode!(self).expect("kit state encodes");
        let mut out = Vec::with_capacity(STATE_MAGIC.len() + 32 + candid.len());
        out.extend_from_slice(STATE_MAGIC);
        out.extend_from_slice(&Hash256::of(&candid).0);
        out.extend_from_slice(&candid);
        out
    }

    /// Reads a state cell of generation 4 or 3 (checked against its digest; 3 migrated)
    /// or 2 (migrated).
    ///
    /// # Errors
    /// The bytes are not a kit state the kit wrote: a bad digest, an undecodable
    /// encoding, an unknown version.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if let Some(rest) = bytes.strip_prefix(STATE_MAGIC.as_slice()) {
            let (digest, candid) = rest
                .split_at_checked(32)
                .ok_or("kit state cell truncated")?;
            if Hash256::of(candid).0 != digest {
                return Err("kit state cell does not match its checksum".into());
            }
            let mut state = Decode!(candid, Self).map_err(|e| format!("kit state: {e}"))?;
            if state.version != STATE_VERSION && state.version != 3 {
                return Err(format!("unsupported kit state version {}", state.version));
            }
            state.version = STATE_VERSION;
            return Ok(state);
        }
        // Generation 2: bare candid; the fields added since are options (absent: None).
        let mut state = Decode!(bytes, Self).map_err(|e| format!("kit state: {e}"))?;
        if state.version != 2 {
            return Err(format!("unsupported kit state version {}", state.version));
        }
        state.version = STATE_VERSION;
        Ok(state)
    }
}

impl Storable for KitState {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.encode())
    }

    fn into_bytes(self) -> Vec<u8> {
        self.encode()
    }

    /// Traps on bytes the kit did not write: in `post_upgrade` that keeps the old module
    /// instead of re-initialising over memory the kit cannot read.
    fn from_bytes(bytes: Cow<'_, [u8]>) -> Self {
        Self::decode(&bytes).unwrap_or_else(|e| panic!("canvault kit: {e}"))
    }

    const BOUND: Bound = Bound::Unbounded;
}
