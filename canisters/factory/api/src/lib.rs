//! The canvault factory's candid interface (`canisters/factory/factory.did`): what an
//! app, an end user or an operator sends to the factory and what it answers.
//!
//! - Vaults: [`CreateVaultRequest`] (paid with attached cycles), [`VaultInfo`] as the
//!   registry keeps it, top-ups, managed-upgrade opt-out, deletion by an owner.
//! - Deployments: every creation is a persistent [`DeploymentInfo`] advanced through the
//!   [`Stage`]s `Accepted → CanisterCreated → CodeInstalled → ControllersSet →
//!   Registered`; `resume_deployment` completes one that stopped, `cancel_deployment`
//!   gives back the cycles of one that never created a canister.
//! - Fork targets: [`CreateForkTargetRequest`], an empty canister for a vault to restore
//!   a whole-canister snapshot into, created by the same resumable deployment record
//!   (no install stage; `resume_fork_target`, `recover_fork_target`).
//! - Vault versions: chunked, hash-checked uploads ([`BeginUploadRequest`],
//!   [`UploadChunkRequest`]), one version current ([`VersionInfo`]).
//! - Fleet upgrades: [`FleetUpgradeStatus`] with a [`VaultUpgradeState`] per vault.
//! - Errors: one [`FactoryError`] for every endpoint; nothing traps on a bad request.
//!
//! Cycles are `nat` on the wire (`u128` here). Pure types: no ic-cdk.

use candid::{CandidType, Principal};
use canvault_protocol::Hash256;
use canvault_protocol::vault_api::RetentionPolicy;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Largest chunk `upload_version_chunk` accepts (and the size the factory re-cuts a
/// version into for `install_chunked_code`): 1 MiB, the management canister's limit.
pub const MAX_UPLOAD_CHUNK_BYTES: usize = 1024 * 1024;

/// Largest vault module: the target's wasm chunk store holds 100 chunks of 1 MiB.
pub const MAX_MODULE_BYTES: u64 = 100 * MAX_UPLOAD_CHUNK_BYTES as u64;

/// Most controllers a canister may have (IC limit).
pub const MAX_CONTROLLERS: usize = 10;

/// The factory's install argument (also accepted, optionally, on upgrade).
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct FactoryInit {
    /// The admins (at least one at install; on upgrade, replaces the list when non-empty).
    pub admins: Vec<Principal>,
    /// Fees and quotas; absent: [`FactoryConfig::default`] at install, unchanged on upgrade.
    pub config: Option<FactoryConfig>,
}

/// Per-principal limits.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Vaults (registered or being deployed) per principal: the user of a personal vault,
    /// the requester (payer) of an app vault.
    pub max_vaults_per_principal: u32,
    /// Deployments a caller may start per UTC day.
    pub max_creations_per_day: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_vaults_per_principal: 10,
            max_creations_per_day: 20,
        }
    }
}

/// What a vault creation costs, and the quotas. Set by admins.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactoryConfig {
    /// The canister creation fee forwarded to the cycles minting canister on top of the
    /// initial balance; absent: `cost_create_canister` of the factory's own subnet
    /// (500B cycles on a 13-node subnet). Set it for bigger target subnets.
    pub creation_fee: Option<u128>,
    /// Kept by the factory per deployment: pays its calls, the vault module's bytes
    /// sent to the new canister, and its instructions.
    pub service_fee: u128,
    /// Smallest initial balance a request may ask for.
    pub min_initial_cycles: u128,
    /// Kept by the factory from each top-up: pays its `deposit_cycles` call.
    pub top_up_fee: u128,
    /// Per-principal limits.
    pub quotas: Quotas,
}

impl Default for FactoryConfig {
    fn default() -> Self {
        Self {
            creation_fee: None,
            service_fee: 10_000_000_000,
            min_initial_cycles: 100_000_000_000,
            top_up_fee: 20_000_000,
            quotas: Quotas::default(),
        }
    }
}

/// Who a vault is for.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaultKind {
    /// An app's own vault: the app pushes its image; the owners manage it.
    App {
        /// The app canister.
        app: Principal,
    },
    /// An end user's personal vault: the user is its only owner and a controller; the app
    /// may only write (push the user's data set).
    Personal {
        /// The end user.
        user: Principal,
        /// The app that pushes into it.
        app: Principal,
    },
}

impl VaultKind {
    /// The app canister of either kind.
    #[must_use]
    pub fn app(&self) -> Principal {
        match self {
            Self::App { app } | Self::Personal { app, .. } => *app,
        }
    }
}

/// Where the vault goes.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum SubnetChoice {
    /// One of the cycles minting canister's default subnets other than `avoid` (an app
    /// passes its own, `ic_cdk::api::subnet_self()`), chosen by the factory in rotation.
    Default {
        /// The subnet to keep away from.
        avoid: Option<Principal>,
    },
    /// This subnet.
    Subnet {
        /// The subnet's principal.
        subnet: Principal,
    },
    /// Any subnet of this type (e.g. `"fiduciary"`), picked by the cycles minting canister.
    SubnetType {
        /// The CMC subnet type.
        subnet_type: String,
    },
}

/// `create_vault`'s request. The caller attaches
/// `creation fee + service fee + initial_cycles` cycles (see `status().config`).
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CreateVaultRequest {
    /// Who it is for. Anyone may pay for an app vault; a personal vault only the app or
    /// the user may request.
    pub kind: VaultKind,
    /// App vaults: the owners (empty: the requester), at most 9. Personal vaults: must be
    /// empty (the user is the owner).
    pub owners: Vec<Principal>,
    /// App vaults: the writers (empty: the app). Personal vaults: must be empty (the app
    /// is the writer).
    pub writers: Vec<Principal>,
    /// Readers.
    pub readers: Vec<Principal>,
    /// Retention policy (absent: the vault's default).
    pub retention: Option<RetentionPolicy>,
    /// Where to create it.
    pub subnet: SubnetChoice,
    /// The vault's starting balance.
    pub initial_cycles: u128,
    /// Keep the factory as a controller so that fleet upgrades reach this vault.
    pub managed_upgrades: bool,
}

/// A registered vault.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VaultInfo {
    /// The vault canister.
    pub canister_id: Principal,
    /// Who it is for.
    pub kind: VaultKind,
    /// Its owners, as installed.
    pub owners: Vec<Principal>,
    /// Its writers, as installed.
    pub writers: Vec<Principal>,
    /// Its readers, as installed.
    pub readers: Vec<Principal>,
    /// Its controllers, as set by the factory.
    pub controllers: Vec<Principal>,
    /// Its subnet, when the factory chose it (absent for a subnet-type choice).
    pub subnet: Option<Principal>,
    /// SHA-256 of the vault module installed by the factory.
    pub version: Hash256,
    /// Whether fleet upgrades apply to it.
    pub managed_upgrades: bool,
    /// When it was registered (ns).
    pub created_at_ns: u64,
    /// The deployment that created it.
    pub deployment_id: u64,
}

/// How far a deployment got. Each stage is recorded before the next effect starts.
#[derive(
    CandidType, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum Stage {
    /// Cycles accepted, request recorded; no canister yet.
    Accepted,
    /// The canister exists (funded with the initial balance by its creation).
    CanisterCreated,
    /// The vault module is installed with its roles.
    CodeInstalled,
    /// The final controllers are set.
    ControllersSet,
    /// In the registry: done.
    Registered,
    /// Given up before any canister existed; the credit went back to the requester.
    Cancelled,
}

/// An effect of a deployment.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `create_canister` on the cycles minting canister.
    CreateCanister,
    /// Upload the module into the canister's chunk store and `install_chunked_code`.
    InstallCode,
    /// `update_settings` with the final controllers.
    SetControllers,
    /// `deposit_cycles` of the credit back to the requester.
    Refund,
}

/// Why a step failed.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    /// The step.
    pub step: Step,
    /// What went wrong.
    pub message: String,
    /// True if `resume_deployment` may succeed as things are.
    pub retryable: bool,
    /// When (ns).
    pub at_ns: u64,
}

/// A deployment record.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DeploymentInfo {
    /// Its id.
    pub id: u64,
    /// Who paid.
    pub requester: Principal,
    /// The request.
    pub request: CreateVaultRequest,
    /// The subnet chosen for a `Default` or `Subnet` choice.
    pub subnet: Option<Principal>,
    /// The vault module (pinned when accepted).
    pub version: Hash256,
    /// How far it got.
    pub stage: Stage,
    /// The canister, once created.
    pub canister_id: Option<Principal>,
    /// Cycles accepted from the requester.
    pub accepted: u128,
    /// Cycles the factory keeps (its service fee).
    pub service_fee: u128,
    /// Cycles held for the requester: what the next creation attempt attaches, or what
    /// cancelling gives back. Zero once the canister exists.
    pub credit: u128,
    /// Cycles that went into the canister's creation (creation fee + starting balance).
    pub funded: u128,
    /// Cycles given back to the requester by `cancel_deployment`.
    pub refunded: u128,
    /// An effect started whose result was never recorded (its callback trapped).
    pub pending: Option<Step>,
    /// The last failure.
    pub last_error: Option<StepError>,
    /// Runs so far (`create_vault` is the first; each resume adds one).
    pub attempts: u32,
    /// When it was accepted (ns).
    pub created_at_ns: u64,
    /// Last change (ns).
    pub updated_at_ns: u64,
    /// `Some(vault)`: this deployment creates a fork target for `vault` (an empty
    /// canister, controlled by the requester and the vault, see `create_fork_target`),
    /// not a vault: no module, no registry entry; `version` is then all zeros and
    /// `request` carries the subnet and initial cycles (its kind names the vault as the
    /// app, its owners the requester). Absent in records written before fork targets.
    pub fork_target_of: Option<Principal>,
}

/// `create_fork_target`'s request: an empty canister on a chosen subnet, for a
/// registered vault to restore a whole-canister snapshot into (a fork). The caller, a
/// registered owner of `vault`, attaches `creation fee + service fee + initial_cycles`.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CreateForkTargetRequest {
    /// The vault that will upload and load the snapshot (made a controller).
    pub vault: Principal,
    /// Where to create the canister.
    pub subnet: SubnetChoice,
    /// Its starting balance (it pays for the uploaded snapshot's storage and the load).
    pub initial_cycles: u128,
}

/// `create_fork_target`'s answer.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ForkTargetResponse {
    /// The deployment that created it (`get_deployment`).
    pub deployment_id: u64,
    /// The empty canister.
    pub canister_id: Principal,
    /// Its subnet, when the factory chose it (absent for a subnet-type choice).
    pub subnet: Option<Principal>,
    /// Its controllers: the requester and the vault (the factory is not one).
    pub controllers: Vec<Principal>,
}

/// `create_vault`'s answer.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CreateVaultResponse {
    /// The deployment that created it.
    pub deployment_id: u64,
    /// The registered vault.
    pub vault: VaultInfo,
}

/// Tells the factory which canister a deployment created when the reply of the
/// cycles minting canister was lost (admins only).
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RecoverDeploymentRequest {
    /// The deployment, stopped with `pending = opt CreateCanister`.
    pub deployment_id: u64,
    /// The canister the CMC created (controlled by the factory, no module).
    pub canister_id: Principal,
}

/// Starts uploading a vault module (admins only).
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BeginUploadRequest {
    /// A unique label, e.g. the semver `"0.1.0"`.
    pub label: String,
    /// SHA-256 of the whole module, checked at commit.
    pub sha256: Hash256,
    /// Size of the whole module in bytes.
    pub size: u64,
}

/// Appends a chunk to an upload (admins only).
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct UploadChunkRequest {
    /// The upload.
    pub upload_id: u64,
    /// Where the chunk starts: must equal the bytes received so far.
    pub offset: u64,
    /// At most [`MAX_UPLOAD_CHUNK_BYTES`].
    pub bytes: ByteBuf,
}

/// An upload in progress.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct UploadProgress {
    /// The upload.
    pub upload_id: u64,
    /// The label it will get.
    pub label: String,
    /// Declared size.
    pub size: u64,
    /// Bytes received so far (the next offset).
    pub received: u64,
}

/// A vault version.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// SHA-256 of the module (what `canister_status` reports as `module_hash`).
    pub hash: Hash256,
    /// Its label.
    pub label: String,
    /// Module size in bytes.
    pub size: u64,
    /// 1 MiB chunks it is installed from.
    pub chunks: u32,
    /// The admin who uploaded it.
    pub uploaded_by: Principal,
    /// When it was committed (ns).
    pub uploaded_at_ns: u64,
    /// True for the version new vaults get.
    pub current: bool,
}

/// Starts a fleet upgrade (admins only).
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct StartFleetUpgradeRequest {
    /// The version to roll out.
    pub version: Hash256,
}

/// Upgrades the next batch (admins only).
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RunFleetBatchRequest {
    /// Most vaults upgraded concurrently in this batch (at least 1).
    pub max_vaults: u32,
}

/// Why a fleet upgrade leaves a vault alone.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Its owner opted out of managed upgrades (when the rollout started, or since).
    OptedOut,
    /// It already runs the version.
    AlreadyCurrent,
    /// It left the registry during the rollout.
    NotRegistered,
    /// The rollout was cancelled before its turn.
    Cancelled,
    /// The factory is not (or no longer) a controller of it.
    NotController,
}

/// One vault in a fleet upgrade.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum VaultUpgradeState {
    /// Waiting for a batch.
    Pending,
    /// In the batch running now (or its result was lost: the next batch checks it again).
    InProgress,
    /// Runs the new version.
    Upgraded {
        /// When (ns).
        at_ns: u64,
    },
    /// Left alone.
    Skipped {
        /// Why.
        reason: SkipReason,
    },
    /// The upgrade failed; the vault runs its previous version (and was restarted).
    Failed {
        /// Why.
        reason: String,
    },
}

/// A vault's line in a fleet upgrade.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VaultUpgrade {
    /// The vault.
    pub canister_id: Principal,
    /// The version it had when the rollout started.
    pub from_version: Hash256,
    /// Its state.
    pub state: VaultUpgradeState,
}

/// A fleet upgrade.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FleetUpgradeStatus {
    /// Rollout id.
    pub id: u64,
    /// The version rolled out.
    pub version: Hash256,
    /// When it started (ns).
    pub started_at_ns: u64,
    /// No vault is pending or in progress.
    pub finished: bool,
    /// Vaults waiting (pending or in progress).
    pub pending: u32,
    /// Vaults upgraded.
    pub upgraded: u32,
    /// Vaults skipped.
    pub skipped: u32,
    /// Vaults failed.
    pub failed: u32,
    /// Vaults in the rollout; their lines are read in pages with
    /// `list_fleet_upgrade_vaults`.
    pub total: u32,
}

/// Reads a page of the vaults of the current fleet upgrade.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ListFleetVaultsRequest {
    /// Start after this vault (absent: from the first); a page's `next`.
    pub start: Option<Principal>,
    /// Most lines, 1 to [`MAX_FLEET_PAGE`].
    pub limit: u32,
}

/// Most lines in a [`FleetVaultsPage`].
pub const MAX_FLEET_PAGE: u32 = 1_000;

/// A page of the vaults of a fleet upgrade, in canister order.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FleetVaultsPage {
    /// The lines.
    pub vaults: Vec<VaultUpgrade>,
    /// Where the next page starts (its `start`); absent after the last.
    pub next: Option<Principal>,
}

/// Sends the attached cycles, less the top-up fee, to a registered vault.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TopUpRequest {
    /// The vault.
    pub canister_id: Principal,
}

/// `top_up_vault`'s answer.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TopUpResponse {
    /// Cycles deposited into the vault: all that were attached but the top-up fee.
    pub deposited: u128,
    /// Cycles the factory kept (`top_up_fee`).
    pub fee: u128,
}

/// Opts a vault in or out of fleet upgrades (its owners only).
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SetManagedUpgradesRequest {
    /// The vault.
    pub canister_id: Principal,
    /// True: fleet upgrades reach it (the factory must still be its controller).
    pub managed: bool,
}

/// `delete_vault`'s answer.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DeleteVaultResponse {
    /// True if the factory stopped and deleted the canister; false if it only left the
    /// registry (the factory is not a controller: its controllers delete it).
    pub canister_deleted: bool,
}

/// The factory at a glance.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FactoryStatus {
    /// Fees and quotas in force.
    pub config: FactoryConfig,
    /// The creation fee charged now (the configured one, or `cost_create_canister`).
    pub creation_fee: u128,
    /// What `create_vault` needs attached besides the initial balance:
    /// `creation_fee + service_fee`.
    pub fixed_cost: u128,
    /// The version new vaults get.
    pub current_version: Option<VersionInfo>,
    /// Versions stored.
    pub versions: u32,
    /// Vaults in the registry.
    pub vaults: u64,
    /// Deployments neither registered nor cancelled.
    pub open_deployments: u64,
    /// The factory's balance.
    pub cycles: u128,
}

/// Who may call an endpoint.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// A factory admin.
    Admin,
    /// The deployment's requester (or an admin).
    Requester,
    /// An owner of the vault.
    VaultOwner,
    /// The app of the request, or the user of a personal vault.
    AppOrUser,
}

/// Which quota.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// [`Quotas::max_vaults_per_principal`].
    VaultsPerPrincipal,
    /// [`Quotas::max_creations_per_day`].
    CreationsPerDay,
}

/// Every error a factory endpoint returns.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactoryError {
    /// The caller lacks the permission.
    #[error("{caller} is not allowed: {needed:?} permission required")]
    Unauthorized {
        /// The caller.
        caller: Principal,
        /// What is needed.
        needed: Permission,
    },
    /// The request is malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Fewer cycles attached than the request costs; none were taken.
    #[error("{attached} cycles attached, {required} required")]
    InsufficientCycles {
        /// Cycles attached.
        attached: u128,
        /// Cycles required.
        required: u128,
    },
    /// A quota is used up; nothing was taken.
    #[error("quota {quota:?} exceeded: {used} of {limit} used")]
    QuotaExceeded {
        /// Which.
        quota: QuotaKind,
        /// Its limit.
        limit: u32,
        /// Already used.
        used: u32,
    },
    /// The user already has a personal vault for this app.
    #[error("a personal vault for this user and app exists: {0}")]
    PersonalVaultExists(Principal),
    /// No vault version is current yet.
    #[error("no vault version is current")]
    NoCurrentVersion,
    /// No such version.
    #[error("version {0} not found")]
    VersionNotFound(Hash256),
    /// A version with this hash or label exists.
    #[error("version {label} ({hash}) already exists")]
    VersionExists {
        /// Its hash.
        hash: Hash256,
        /// Its label.
        label: String,
    },
    /// The version is current or being rolled out.
    #[error("version {0} is in use")]
    VersionInUse(Hash256),
    /// No such upload.
    #[error("upload {0} not found")]
    UploadNotFound(u64),
    /// A chunk did not start where the upload stands.
    #[error("chunk at offset {got}, expected {expected}")]
    UnexpectedOffset {
        /// The next offset expected.
        expected: u64,
        /// The offset sent.
        got: u64,
    },
    /// Commit before every byte arrived.
    #[error("upload incomplete: {received} of {size} bytes")]
    UploadIncomplete {
        /// Bytes received.
        received: u64,
        /// Declared size.
        size: u64,
    },
    /// The module's hash differs from the declared one; the upload was discarded.
    #[error("module hash {computed} differs from the declared {declared}")]
    HashMismatch {
        /// Declared.
        declared: Hash256,
        /// Computed.
        computed: Hash256,
    },
    /// No default subnet is left once the avoided one is excluded.
    #[error("no default subnet other than {avoided:?}")]
    NoSubnetAvailable {
        /// The subnet avoided.
        avoided: Option<Principal>,
    },
    /// No such deployment.
    #[error("deployment {0} not found")]
    DeploymentNotFound(u64),
    /// The deployment is running now (another call is advancing it).
    #[error("deployment {0} is running")]
    DeploymentBusy(u64),
    /// The deployment is registered or cancelled.
    #[error("deployment {id} is finished ({stage:?})")]
    DeploymentFinished {
        /// The deployment.
        id: u64,
        /// Its final stage.
        stage: Stage,
    },
    /// A step failed; the record keeps everything needed to resume (or cancel).
    #[error("deployment {deployment_id} stopped at {step:?}: {message}")]
    DeploymentFailed {
        /// The deployment.
        deployment_id: u64,
        /// The step that failed.
        step: Step,
        /// Why.
        message: String,
        /// True if `resume_deployment` may succeed as things are.
        retryable: bool,
    },
    /// The result of an effect was lost (its callback trapped) and cannot be checked:
    /// `recover_deployment` (create) or an operator must settle it.
    #[error("deployment {deployment_id}: the outcome of {step:?} is unknown")]
    OutcomeUnknown {
        /// The deployment.
        deployment_id: u64,
        /// The step whose outcome is unknown.
        step: Step,
    },
    /// No such vault in the registry.
    #[error("vault {0} not found")]
    VaultNotFound(Principal),
    /// A fleet upgrade is still running.
    #[error("fleet upgrade {0} is running")]
    FleetUpgradeRunning(u64),
    /// No fleet upgrade to run.
    #[error("no fleet upgrade")]
    NoFleetUpgrade,
    /// The factory cannot front the cycles of this top-up.
    #[error("the factory has {available} spendable cycles, {needed} needed")]
    FactoryLowOnCycles {
        /// Needed.
        needed: u128,
        /// Spendable now.
        available: u128,
    },
    /// A call the factory made failed.
    #[error("{method} failed ({code}): {message}")]
    CallFailed {
        /// The method called.
        method: String,
        /// Reject code (0: not sent, too few cycles; 2: not sent, system).
        code: u32,
        /// The reject message.
        message: String,
    },
}

impl FactoryError {
    /// True if the same request may succeed later without changes.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::DeploymentFailed { retryable, .. } => *retryable,
            Self::DeploymentBusy(_)
            | Self::FleetUpgradeRunning(_)
            | Self::FactoryLowOnCycles { .. } => true,
            Self::CallFailed { code, .. } => matches!(code, 0 | 2 | 6),
            _ => false,
        }
    }
}
