//! Typed calls to a vault, to the kit endpoints of an app canister, and to the factory,
//! on top of a [`Transport`]. Every failure becomes a [`CliError`] sentence.

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Principal};
use canvault_protocol::Hash256;
use canvault_protocol::canister_image::{
    CanisterBackupRequest, CanisterJob, CanisterSchedule, CanisterScheduleInfo,
    RestoreCanisterRequest,
};
use canvault_protocol::kit_api::{ArmRestoreRequest, KitConfig, KitError, KitStatus};
use canvault_protocol::vault_api::{
    BeginSnapshotRequest, BeginSnapshotResponse, CommitSnapshotRequest, ManifestEntry,
    ManifestPage, PutChunksRequest, PutChunksResponse, RestoreJob, SnapshotId, SnapshotInfo,
    StartRestoreRequest, StoredChunk, VaultError, VaultStatus,
};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterSettings, CanisterStatusResult, UpdateSettingsArgs,
};
use serde::de::DeserializeOwned;

use crate::error::{CliError, CliResult};
use crate::transport::Transport;

/// Manifest entries asked for per `get_manifest` page (the vault's maximum).
const MANIFEST_PAGE: u32 = 10_000;

#[derive(Clone, Copy)]
enum Kind {
    Query,
    Update,
    /// An update to the management canister about the canister the call names.
    Management,
}

/// Encodes `args`, calls, and decodes the reply as `R`.
fn call<A, R>(
    t: &dyn Transport,
    canister: Principal,
    kind: Kind,
    method: &str,
    args: A,
    what: &'static str,
) -> CliResult<R>
where
    A: ArgumentEncoder,
    R: for<'de> ArgumentDecoder<'de>,
{
    let bad = |message: String| CliError::BadReply {
        canister,
        method: method.to_string(),
        kind: what,
        message,
    };
    let arg = candid::encode_args(args).map_err(|e| bad(e.to_string()))?;
    let reply = match kind {
        Kind::Query => t.query(canister, method, arg),
        Kind::Update => t.update(canister, method, arg),
        Kind::Management => t.management_update(canister, method, arg),
    }
    .map_err(|e| CliError::from_transport(e, canister, method, t.caller(), &t.network()))?;
    candid::decode_args(&reply).map_err(|e| bad(e.to_string()))
}

/// A vault canister.
pub struct VaultClient<'t> {
    t: &'t dyn Transport,
    /// The vault's id.
    pub id: Principal,
}

impl<'t> VaultClient<'t> {
    /// The vault `id`, through `t`.
    #[must_use]
    pub fn new(t: &'t dyn Transport, id: Principal) -> Self {
        Self { t, id }
    }

    /// The transport.
    #[must_use]
    pub fn transport(&self) -> &'t dyn Transport {
        self.t
    }

    fn call<A, T>(&self, kind: Kind, method: &str, args: A, action: &str) -> CliResult<T>
    where
        A: ArgumentEncoder,
        T: CandidType + DeserializeOwned,
    {
        let (r,): (Result<T, VaultError>,) = call(self.t, self.id, kind, method, args, "vault")?;
        r.map_err(|e| CliError::from_vault(e, self.id, action, &self.t.network()))
    }

    /// Gauges.
    ///
    /// # Errors
    /// As every call: permission, network, not a vault.
    pub fn status(&self) -> CliResult<VaultStatus> {
        self.call(Kind::Query, "status", (), "report its status")
    }

    /// Snapshots, optionally of one source.
    ///
    /// # Errors
    /// As [`VaultClient::status`].
    pub fn list_snapshots(&self, source: Option<Principal>) -> CliResult<Vec<SnapshotInfo>> {
        self.call(Kind::Query, "list_snapshots", (source,), "list snapshots")
    }

    /// One snapshot.
    ///
    /// # Errors
    /// As [`VaultClient::status`]; [`CliError::NotFound`] for an unknown id.
    pub fn get_snapshot(&self, id: SnapshotId) -> CliResult<SnapshotInfo> {
        self.call(Kind::Query, "get_snapshot", (id,), "describe the snapshot")
    }

    /// A snapshot's whole chunk table, page by page.
    ///
    /// # Errors
    /// As [`VaultClient::get_snapshot`].
    pub fn manifest(&self, id: SnapshotId) -> CliResult<Vec<ManifestEntry>> {
        let mut entries = Vec::new();
        let mut start = 0u32;
        loop {
            let page: ManifestPage = self.call(
                Kind::Query,
                "get_manifest",
                (id, start, MANIFEST_PAGE),
                "list the snapshot's chunks",
            )?;
            entries.extend(page.entries);
            match page.next {
                Some(next) if next > start => start = next,
                _ => return Ok(entries),
            }
        }
    }

    /// A stored chunk by digest.
    ///
    /// # Errors
    /// As [`VaultClient::status`].
    pub fn get_chunk(&self, hash: Hash256) -> CliResult<StoredChunk> {
        self.call(Kind::Query, "get_chunk", (hash,), "send a chunk")
    }

    /// Pins a complete snapshot against retention for `seconds`; returns the expiry (ns).
    ///
    /// # Errors
    /// As [`VaultClient::get_snapshot`].
    pub fn open_download(&self, id: SnapshotId, seconds: u64) -> CliResult<u64> {
        self.call(
            Kind::Update,
            "open_download",
            (id, seconds),
            "open a download",
        )
    }

    /// Starts a snapshot (idempotent per caller and nonce).
    ///
    /// # Errors
    /// As [`VaultClient::status`].
    pub fn begin_snapshot(&self, req: BeginSnapshotRequest) -> CliResult<BeginSnapshotResponse> {
        self.call(Kind::Update, "begin_snapshot", (req,), "begin a snapshot")
    }

    /// Sends a batch of chunks.
    ///
    /// # Errors
    /// As [`VaultClient::status`]; a chunk the vault found corrupt.
    pub fn put_chunks(&self, req: PutChunksRequest) -> CliResult<PutChunksResponse> {
        self.call(Kind::Update, "put_chunks", (req,), "store chunks")
    }

    /// Completes a snapshot.
    ///
    /// # Errors
    /// As [`VaultClient::status`]; missing chunks or a root mismatch.
    pub fn commit_snapshot(&self, req: CommitSnapshotRequest) -> CliResult<SnapshotInfo> {
        self.call(
            Kind::Update,
            "commit_snapshot",
            (req,),
            "complete the snapshot",
        )
    }

    /// Starts pushing a snapshot into an armed target.
    ///
    /// # Errors
    /// As [`VaultClient::status`].
    pub fn start_restore(&self, req: StartRestoreRequest) -> CliResult<RestoreJob> {
        self.call(Kind::Update, "start_restore", (req,), "start the restore")
    }

    /// A restore job's progress.
    ///
    /// # Errors
    /// As [`VaultClient::status`].
    pub fn restore_status(&self, job: u64) -> CliResult<RestoreJob> {
        self.call(Kind::Query, "restore_status", (job,), "report the restore")
    }

    /// Starts copying a canister the vault controls (or may read) into the catalogue.
    ///
    /// # Errors
    /// As [`VaultClient::status`].
    pub fn backup_canister(&self, req: CanisterBackupRequest) -> CliResult<CanisterJob> {
        self.call(
            Kind::Update,
            "backup_canister",
            (req,),
            "back the canister up",
        )
    }

    /// Backs `schedule.canister` up whole every `schedule.interval_secs`.
    ///
    /// # Errors
    /// As [`VaultClient::status`].
    pub fn set_canister_schedule(
        &self,
        schedule: CanisterSchedule,
    ) -> CliResult<CanisterScheduleInfo> {
        self.call(
            Kind::Update,
            "set_canister_schedule",
            (schedule,),
            "schedule the canister's backups",
        )
    }

    /// A whole-canister backup's progress.
    ///
    /// # Errors
    /// As [`VaultClient::status`].
    pub fn canister_backup_status(&self, job: u64) -> CliResult<CanisterJob> {
        self.call(
            Kind::Query,
            "canister_backup_status",
            (job,),
            "report the canister backup",
        )
    }

    /// Starts loading a whole-canister snapshot into a canister the vault controls.
    ///
    /// # Errors
    /// As [`VaultClient::status`].
    pub fn restore_canister(&self, req: RestoreCanisterRequest) -> CliResult<CanisterJob> {
        self.call(
            Kind::Update,
            "restore_canister",
            (req,),
            "restore the canister",
        )
    }

    /// A whole-canister restore's progress.
    ///
    /// # Errors
    /// As [`VaultClient::status`].
    pub fn canister_restore_status(&self, job: u64) -> CliResult<CanisterJob> {
        self.call(
            Kind::Query,
            "canister_restore_status",
            (job,),
            "report the canister restore",
        )
    }
}

/// The canvault kit endpoints of an app canister.
pub struct KitClient<'t> {
    t: &'t dyn Transport,
    /// The app canister.
    pub id: Principal,
}

impl<'t> KitClient<'t> {
    /// The app `id`, through `t`.
    #[must_use]
    pub fn new(t: &'t dyn Transport, id: Principal) -> Self {
        Self { t, id }
    }

    fn call<A, T>(&self, kind: Kind, method: &str, args: A, action: &str) -> CliResult<T>
    where
        A: ArgumentEncoder,
        T: CandidType + DeserializeOwned,
    {
        let (r,): (Result<T, KitError>,) = call(
            self.t,
            self.id,
            kind,
            method,
            args,
            "app with the canvault kit",
        )?;
        r.map_err(|e| CliError::from_kit(e, self.id, action))
    }

    /// Backup and restore progress.
    ///
    /// # Errors
    /// Not an admin, network, not a kit.
    pub fn status(&self) -> CliResult<KitStatus> {
        self.call(Kind::Query, "canvault_status", (), "report its status")
    }

    /// Freezes the image and starts a backup.
    ///
    /// # Errors
    /// As [`KitClient::status`]; a backup or restore already running; no vault configured.
    pub fn backup_now(&self) -> CliResult<()> {
        self.call(Kind::Update, "canvault_backup_now", (), "start a backup")
    }

    /// Changes kit settings (the vault, the schedule...).
    ///
    /// # Errors
    /// As [`KitClient::status`].
    pub fn configure(&self, config: KitConfig) -> CliResult<()> {
        self.call(
            Kind::Update,
            "canvault_configure",
            (config,),
            "change its settings",
        )
    }

    /// Allows one vault to push one snapshot.
    ///
    /// # Errors
    /// As [`KitClient::status`].
    pub fn arm_restore(&self, req: ArmRestoreRequest) -> CliResult<()> {
        self.call(
            Kind::Update,
            "canvault_arm_restore",
            (req,),
            "arm the restore",
        )
    }
}

/// Calls a method whose reply is one candid value, without a typed error.
///
/// # Errors
/// As every call; a reply of another type.
pub fn call_plain<A, T>(
    t: &dyn Transport,
    canister: Principal,
    update: bool,
    method: &str,
    args: A,
    what: &'static str,
) -> CliResult<T>
where
    A: ArgumentEncoder,
    T: CandidType + DeserializeOwned,
{
    let kind = if update { Kind::Update } else { Kind::Query };
    let (r,): (T,) = call(t, canister, kind, method, args, what)?;
    Ok(r)
}

/// The management canister, about one canister (the caller must be its controller).
pub struct ManagementClient<'t> {
    t: &'t dyn Transport,
    /// The canister acted on.
    pub id: Principal,
}

/// `update_settings` of the snapshot readers alone (interface spec 0.57.0; the
/// ic-management-canister-types records in use predate the field).
#[derive(CandidType)]
struct SnapshotVisibilityArgs {
    canister_id: Principal,
    settings: SnapshotVisibilitySettings,
}

#[derive(CandidType)]
struct SnapshotVisibilitySettings {
    snapshot_visibility: Option<SnapshotVisibility>,
}

#[derive(CandidType, serde::Serialize)]
enum SnapshotVisibility {
    #[serde(rename = "allowed_viewers")]
    AllowedViewers(Vec<Principal>),
}

impl<'t> ManagementClient<'t> {
    /// The management canister about `id`, through `t`.
    #[must_use]
    pub fn new(t: &'t dyn Transport, id: Principal) -> Self {
        Self { t, id }
    }

    /// `canister_status`.
    ///
    /// # Errors
    /// Not a controller, no such canister, network.
    pub fn status(&self) -> CliResult<CanisterStatusResult> {
        let (r,): (CanisterStatusResult,) = call(
            self.t,
            self.id,
            Kind::Management,
            "canister_status",
            (CanisterIdRecord {
                canister_id: self.id,
            },),
            "management canister",
        )?;
        Ok(r)
    }

    /// Replaces the controllers.
    ///
    /// # Errors
    /// As [`ManagementClient::status`]; too many controllers.
    pub fn set_controllers(&self, controllers: Vec<Principal>) -> CliResult<()> {
        let settings = CanisterSettings {
            controllers: Some(controllers),
            ..CanisterSettings::default()
        };
        call(
            self.t,
            self.id,
            Kind::Management,
            "update_settings",
            (UpdateSettingsArgs {
                canister_id: self.id,
                settings,
                sender_canister_version: None,
            },),
            "management canister",
        )
    }

    /// Lets `viewers` (besides the controllers) read the canister's snapshots.
    ///
    /// # Errors
    /// As [`ManagementClient::status`]; more than 10 viewers.
    pub fn set_snapshot_viewers(&self, viewers: Vec<Principal>) -> CliResult<()> {
        call(
            self.t,
            self.id,
            Kind::Management,
            "update_settings",
            (SnapshotVisibilityArgs {
                canister_id: self.id,
                settings: SnapshotVisibilitySettings {
                    snapshot_visibility: Some(SnapshotVisibility::AllowedViewers(viewers)),
                },
            },),
            "management canister",
        )
    }
}
