//! Deployments: the persistent record of one vault creation, advanced step by step.
//!
//! ```text
//!   Accepted ──create──▶ CanisterCreated ──install──▶ CodeInstalled ──controllers──▶ ControllersSet ──▶ Registered
//!      │ (no canister yet)
//!      └──cancel (deposit the credit back)──▶ Cancelled
//!
//!   fork target (`fork_target_of` set): Accepted ──create──▶ CanisterCreated ──controllers──▶ ControllersSet ──▶ Registered
//! ```
//!
//! A fork target is an empty canister for a vault to restore into: created with the
//! factory as its only controller (so a lost CMC reply can be settled by
//! `recover_fork_target`, which checks exactly that), then handed to its requester and
//! the vault. Its "registration" only closes the record: it never enters the registry.
//!
//! The driver writes `pending = Some(step)` before each effect and records its result
//! (clearing `pending`) right after, in the callback. A record found with `pending` set
//! while nothing runs it therefore means the callback trapped and the result was lost;
//! [`next_step`] then asks the driver to *verify* the canister's state before acting
//! again (install and controllers can be checked with `canister_status`), or reports
//! the outcome as unknown (a lost CMC reply: only the canister id can settle it, see
//! `recover_deployment`). Once `canister_id` is recorded no step creates a canister again.
//!
//! Cycles: the requester's cycles are accepted when the record is created. The service
//! fee stays with the factory; the rest is the `credit` the creation attaches to the
//! CMC call. A failed creation comes back as a refund (less the CMC's penalty when the
//! CMC itself failed), which becomes the credit again: the next attempt re-uses it, or
//! `cancel_deployment` deposits it back to the requester.

use candid::{CandidType, Principal};
use canvault_factory_api::{
    CreateForkTargetRequest, CreateVaultRequest, DeploymentInfo, FactoryConfig, FactoryError,
    MAX_CONTROLLERS, Permission, Stage, Step, StepError, SubnetChoice, VaultInfo, VaultKind,
};
use canvault_protocol::Hash256;
use canvault_protocol::vault_api::VaultInit;
use ic_stable_structures::{Memory, StableBTreeMap};
use serde::Deserialize;

use crate::memory::{self, Memories, Vm};
use crate::storable::candid_storable;

/// Most writers or readers a request may name.
pub const MAX_ROLE_PRINCIPALS: usize = 100;

/// Longest subnet type name.
const MAX_SUBNET_TYPE_CHARS: usize = 64;

/// A stored deployment (its public form).
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Stored(pub DeploymentInfo);

candid_storable!(Stored);

/// What the driver does next for a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// `create_canister` on the CMC with `cycles` attached.
    CreateCanister {
        /// The credit to attach.
        cycles: u128,
    },
    /// Install the vault module; first check `canister_status` when `verify`.
    InstallCode {
        /// The vault canister.
        canister: Principal,
        /// An earlier attempt's result was lost.
        verify: bool,
    },
    /// Set the final controllers; first check `canister_status` when `verify`.
    SetControllers {
        /// The vault canister.
        canister: Principal,
        /// An earlier attempt's result was lost.
        verify: bool,
    },
    /// Record the vault in the registry (no effect outside the factory).
    Register,
    /// Registered: nothing left.
    Done,
    /// Cancelled: nothing left.
    Cancelled,
    /// The result of `step` was lost and cannot be checked from here.
    Unknown(Step),
}

/// The step to run next. Pure.
#[must_use]
pub fn next_step(d: &DeploymentInfo) -> NextStep {
    let canister = d.canister_id;
    match (d.stage, canister) {
        (Stage::Registered, _) => NextStep::Done,
        (Stage::Cancelled, _) => NextStep::Cancelled,
        (Stage::Accepted, _) => match d.pending {
            Some(step @ (Step::CreateCanister | Step::Refund)) => NextStep::Unknown(step),
            _ => NextStep::CreateCanister { cycles: d.credit },
        },
        // A fork target stays empty: its controllers are set right after its creation.
        (Stage::CanisterCreated, Some(canister)) if d.fork_target_of.is_some() => {
            NextStep::SetControllers {
                canister,
                verify: d.pending == Some(Step::SetControllers),
            }
        }
        (Stage::CanisterCreated, Some(canister)) => NextStep::InstallCode {
            canister,
            verify: d.pending == Some(Step::InstallCode),
        },
        (Stage::CodeInstalled, Some(canister)) => NextStep::SetControllers {
            canister,
            verify: d.pending == Some(Step::SetControllers),
        },
        (Stage::ControllersSet, Some(_)) => NextStep::Register,
        (stage, None) => unreachable!("deployment {} is {stage:?} without a canister", d.id),
    }
}

/// True if a call that failed with reject `code` may succeed when retried as is
/// (0: not sent for lack of cycles; 2: SYS_TRANSIENT or not sent; 6: SYS_UNKNOWN).
#[must_use]
pub fn retryable_code(code: u32) -> bool {
    matches!(code, 0 | 2 | 6)
}

/// The roles a request installs: owners, writers, readers (defaults applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    /// Owners.
    pub owners: Vec<Principal>,
    /// Writers.
    pub writers: Vec<Principal>,
    /// Readers.
    pub readers: Vec<Principal>,
}

fn dedup(list: &[Principal]) -> Vec<Principal> {
    let mut out: Vec<Principal> = Vec::with_capacity(list.len());
    for p in list {
        if !out.contains(p) {
            out.push(*p);
        }
    }
    out
}

/// The roles of the vault `requester` asked for. Pure.
#[must_use]
pub fn roles(req: &CreateVaultRequest, requester: Principal) -> Roles {
    let (owners, writers) = match req.kind {
        VaultKind::App { app } => (
            if req.owners.is_empty() {
                vec![requester]
            } else {
                dedup(&req.owners)
            },
            if req.writers.is_empty() {
                vec![app]
            } else {
                dedup(&req.writers)
            },
        ),
        VaultKind::Personal { user, app } => (vec![user], vec![app]),
    };
    Roles {
        owners,
        writers,
        readers: dedup(&req.readers),
    }
}

/// The vault's install argument. Pure.
#[must_use]
pub fn vault_init(req: &CreateVaultRequest, requester: Principal) -> VaultInit {
    let Roles {
        owners,
        writers,
        readers,
    } = roles(req, requester);
    VaultInit {
        owners,
        writers,
        readers,
        retention: req.retention,
    }
}

/// The vault's final controllers: its owners (the user of a personal vault), then the
/// factory when it manages upgrades. Never the app of a personal vault. Pure.
#[must_use]
pub fn controllers(
    req: &CreateVaultRequest,
    requester: Principal,
    factory: Principal,
) -> Vec<Principal> {
    let mut list = roles(req, requester).owners;
    if req.managed_upgrades && !list.contains(&factory) {
        list.push(factory);
    }
    list
}

/// The final controllers of deployment `d`'s canister: a vault's (see [`controllers`]),
/// or a fork target's: its requester and its vault, never the factory. Pure.
#[must_use]
pub fn final_controllers(d: &DeploymentInfo, factory: Principal) -> Vec<Principal> {
    match d.fork_target_of {
        Some(vault) => dedup(&[d.requester, vault]),
        None => controllers(&d.request, d.requester, factory),
    }
}

/// The stored request of a fork target: the subnet and balance asked for; the vault as
/// the app and the requester as the owner, so that quotas count it for the requester
/// like an app vault. Pure.
#[must_use]
pub fn fork_target_request(
    req: &CreateForkTargetRequest,
    requester: Principal,
) -> CreateVaultRequest {
    CreateVaultRequest {
        kind: VaultKind::App { app: req.vault },
        owners: vec![requester],
        writers: vec![],
        readers: vec![],
        retention: None,
        subnet: req.subnet.clone(),
        initial_cycles: req.initial_cycles,
        managed_upgrades: false,
    }
}

/// Checks a fork-target request from `caller` for `vault` (its registry record) before
/// anything is charged. Pure.
///
/// # Errors
/// [`FactoryError::Unauthorized`] unless `caller` is a registered owner of the vault;
/// [`FactoryError::InvalidRequest`] for a balance below the minimum or a bad subnet type.
pub fn validate_fork_target(
    req: &CreateForkTargetRequest,
    caller: Principal,
    vault: &VaultInfo,
    config: &FactoryConfig,
) -> Result<(), FactoryError> {
    if !vault.owners.contains(&caller) {
        return Err(FactoryError::Unauthorized {
            caller,
            needed: Permission::VaultOwner,
        });
    }
    validate_placement(&req.subnet, req.initial_cycles, config)
}

/// Checks the subnet choice and the starting balance of a request. Pure.
fn validate_placement(
    subnet: &SubnetChoice,
    initial_cycles: u128,
    config: &FactoryConfig,
) -> Result<(), FactoryError> {
    if initial_cycles < config.min_initial_cycles {
        return Err(invalid(format!(
            "initial_cycles {} is below the minimum {}",
            initial_cycles, config.min_initial_cycles
        )));
    }
    if let SubnetChoice::SubnetType { subnet_type } = subnet
        && (subnet_type.is_empty() || subnet_type.chars().count() > MAX_SUBNET_TYPE_CHARS)
    {
        return Err(invalid("a subnet type is 1 to 64 characters"));
    }
    Ok(())
}

/// The principal whose vault count a request uses: the user of a personal vault, the
/// requester of an app vault. Pure.
#[must_use]
pub fn quota_subject(kind: &VaultKind, requester: Principal) -> Principal {
    match kind {
        VaultKind::App { .. } => requester,
        VaultKind::Personal { user, .. } => *user,
    }
}

fn invalid(msg: impl Into<String>) -> FactoryError {
    FactoryError::InvalidRequest(msg.into())
}

/// Checks a request from `caller` before anything is charged. Pure.
///
/// # Errors
/// [`FactoryError::Unauthorized`] for a personal vault asked by neither its app nor its
/// user; [`FactoryError::InvalidRequest`] for anything malformed.
pub fn validate(
    req: &CreateVaultRequest,
    caller: Principal,
    config: &FactoryConfig,
) -> Result<(), FactoryError> {
    let anonymous = Principal::anonymous();
    let named = req
        .owners
        .iter()
        .chain(&req.writers)
        .chain(&req.readers)
        .copied()
        .chain(match req.kind {
            VaultKind::App { app } => vec![app],
            VaultKind::Personal { user, app } => vec![user, app],
        });
    for p in named {
        if p == anonymous || p == Principal::management_canister() {
            return Err(invalid(format!("{p} cannot hold a role in a vault")));
        }
    }
    if let VaultKind::Personal { user, app } = req.kind {
        if caller != user && caller != app {
            return Err(FactoryError::Unauthorized {
                caller,
                needed: Permission::AppOrUser,
            });
        }
        if user == app {
            return Err(invalid("the user of a personal vault cannot be its app"));
        }
        if !req.owners.is_empty() || !req.writers.is_empty() {
            return Err(invalid(
                "a personal vault's owner is its user and its writer its app: leave owners and writers empty",
            ));
        }
        if caller == app
            && (!req.readers.is_empty() || req.retention.is_some() || req.managed_upgrades)
        {
            return Err(invalid(
                "a personal vault's readers, retention and managed upgrades are its user's alone: \
                 the app leaves them empty (no readers, the vault's default retention, not managed); \
                 the user changes them on the vault and with set_managed_upgrades",
            ));
        }
    }
    if dedup(&req.owners).len() >= MAX_CONTROLLERS {
        return Err(invalid(format!(
            "at most {} owners (each is a controller, and the factory may be one)",
            MAX_CONTROLLERS - 1
        )));
    }
    if req.writers.len() > MAX_ROLE_PRINCIPALS || req.readers.len() > MAX_ROLE_PRINCIPALS {
        return Err(invalid(format!(
            "at most {MAX_ROLE_PRINCIPALS} writers and {MAX_ROLE_PRINCIPALS} readers"
        )));
    }
    validate_placement(&req.subnet, req.initial_cycles, config)
}

/// What a request costs: the creation fee and initial balance (forwarded to the CMC),
/// plus the service fee. Pure.
#[must_use]
pub fn required_cycles(
    req: &CreateVaultRequest,
    creation_fee: u128,
    config: &FactoryConfig,
) -> u128 {
    creation_fee
        .saturating_add(req.initial_cycles)
        .saturating_add(config.service_fee)
}

/// Picks the default subnet for deployment `id`: the subnets other than `avoid`, in
/// principal order, rotating with the deployment id. Pure.
///
/// # Errors
/// [`FactoryError::NoSubnetAvailable`] when none is left.
pub fn pick_default_subnet(
    mut subnets: Vec<Principal>,
    avoid: Option<Principal>,
    id: u64,
) -> Result<Principal, FactoryError> {
    subnets.retain(|s| Some(*s) != avoid);
    subnets.sort();
    subnets.dedup();
    if subnets.is_empty() {
        return Err(FactoryError::NoSubnetAvailable { avoided: avoid });
    }
    Ok(subnets[(id % subnets.len() as u64) as usize])
}

/// A new deployment record. Pure.
#[allow(clippy::too_many_arguments)]
#[must_use]
pub fn new_record(
    id: u64,
    requester: Principal,
    request: CreateVaultRequest,
    subnet: Option<Principal>,
    version: Hash256,
    accepted: u128,
    service_fee: u128,
    now: u64,
) -> DeploymentInfo {
    DeploymentInfo {
        id,
        requester,
        request,
        subnet,
        version,
        stage: Stage::Accepted,
        canister_id: None,
        accepted,
        service_fee,
        credit: accepted - service_fee,
        funded: 0,
        refunded: 0,
        pending: None,
        last_error: None,
        attempts: 1,
        created_at_ns: now,
        updated_at_ns: now,
        fork_target_of: None,
    }
}

/// Transitions of a record. Each keeps the invariants: `canister_id` is set from
/// `CanisterCreated` on; `credit` is zero once cycles went into a canister or back.
pub trait Transitions {
    /// An effect is about to start.
    fn begin(&mut self, step: Step, now: u64);
    /// A step failed with a known outcome (nothing was done, or it was undone).
    fn fail(&mut self, step: Step, message: String, retryable: bool, now: u64);
    /// The CMC created `canister`; `refunded` came back.
    fn created(&mut self, canister: Principal, refunded: u128, now: u64);
    /// A creation attempt failed; `refunded` came back (the new credit).
    fn create_failed(&mut self, refunded: u128, message: String, retryable: bool, now: u64);
    /// Moves to `stage` (install, controllers, registration done).
    fn advance(&mut self, stage: Stage, now: u64);
    /// The credit went back to the requester.
    fn cancelled(&mut self, now: u64);
}

impl Transitions for DeploymentInfo {
    fn begin(&mut self, step: Step, now: u64) {
        self.pending = Some(step);
        self.updated_at_ns = now;
    }

    fn fail(&mut self, step: Step, message: String, retryable: bool, now: u64) {
        self.pending = None;
        self.last_error = Some(StepError {
            step,
            message,
            retryable,
            at_ns: now,
        });
        self.updated_at_ns = now;
    }

    fn created(&mut self, canister: Principal, refunded: u128, now: u64) {
        self.stage = Stage::CanisterCreated;
        self.canister_id = Some(canister);
        self.funded = self.credit.saturating_sub(refunded);
        self.credit = 0;
        self.pending = None;
        self.updated_at_ns = now;
    }

    fn create_failed(&mut self, refunded: u128, message: String, retryable: bool, now: u64) {
        self.credit = refunded;
        self.fail(Step::CreateCanister, message, retryable, now);
    }

    fn advance(&mut self, stage: Stage, now: u64) {
        debug_assert!(stage > self.stage && stage != Stage::Cancelled);
        self.stage = stage;
        self.pending = None;
        self.updated_at_ns = now;
    }

    fn cancelled(&mut self, now: u64) {
        self.refunded = self.credit;
        self.credit = 0;
        self.stage = Stage::Cancelled;
        self.pending = None;
        self.updated_at_ns = now;
    }
}

/// The registry record of a finished deployment. Pure.
///
/// # Panics
/// If the deployment has no canister.
#[must_use]
pub fn vault_record(d: &DeploymentInfo, factory: Principal, now: u64) -> VaultInfo {
    let Roles {
        owners,
        writers,
        readers,
    } = roles(&d.request, d.requester);
    VaultInfo {
        canister_id: d
            .canister_id
            .expect("a registered deployment has a canister"),
        kind: d.request.kind,
        owners,
        writers,
        readers,
        controllers: controllers(&d.request, d.requester, factory),
        subnet: d.subnet,
        version: d.version,
        managed_upgrades: d.request.managed_upgrades,
        created_at_ns: now,
        deployment_id: d.id,
    }
}

/// True while a deployment may still change (neither registered nor cancelled).
#[must_use]
pub fn is_open(d: &DeploymentInfo) -> bool {
    !matches!(d.stage, Stage::Registered | Stage::Cancelled)
}

/// The deployment records, and the index of the open ones.
///
/// Invariant: `open` holds exactly the ids of the open records; [`Deployments::put`]
/// and [`Deployments::remove`] keep it so.
pub struct Deployments<M: Memory> {
    map: StableBTreeMap<u64, Stored, Vm<M>>,
    open: StableBTreeMap<u64, (), Vm<M>>,
}

impl<M: Memory> Deployments<M> {
    /// Loads (or creates) the maps.
    pub fn init(memories: &Memories<M>) -> Self {
        Self {
            map: StableBTreeMap::init(memories.get(memory::DEPLOYMENTS)),
            open: StableBTreeMap::init(memories.get(memory::OPEN_DEPLOYMENTS)),
        }
    }

    /// Builds the open index from the records (migration from layout 1, which had none).
    pub fn rebuild_open_index(&mut self) {
        self.open.clear_new();
        let open: Vec<u64> = self
            .map
            .iter()
            .filter(|e| is_open(&e.value().0))
            .map(|e| *e.key())
            .collect();
        for id in open {
            self.open.insert(id, ());
        }
    }

    /// The record `id`.
    ///
    /// # Errors
    /// [`FactoryError::DeploymentNotFound`].
    pub fn get(&self, id: u64) -> Result<DeploymentInfo, FactoryError> {
        self.map
            .get(&id)
            .map(|s| s.0)
            .ok_or(FactoryError::DeploymentNotFound(id))
    }

    /// Stores a record.
    pub fn put(&mut self, record: DeploymentInfo) {
        if is_open(&record) {
            self.open.insert(record.id, ());
        } else {
            self.open.remove(&record.id);
        }
        self.map.insert(record.id, Stored(record));
    }

    /// Forgets record `id`.
    pub fn remove(&mut self, id: u64) {
        self.open.remove(&id);
        self.map.remove(&id);
    }

    /// Changes record `id` and stores it; returns the new record.
    ///
    /// # Errors
    /// [`FactoryError::DeploymentNotFound`].
    pub fn update(
        &mut self,
        id: u64,
        f: impl FnOnce(&mut DeploymentInfo),
    ) -> Result<DeploymentInfo, FactoryError> {
        let mut record = self.get(id)?;
        f(&mut record);
        self.put(record.clone());
        Ok(record)
    }

    /// Records from `start` on, at most `limit`, optionally only those of `requester`.
    #[must_use]
    pub fn list(
        &self,
        start: u64,
        limit: usize,
        requester: Option<Principal>,
    ) -> Vec<DeploymentInfo> {
        self.map
            .range(start..)
            .map(|e| e.into_pair().1.0)
            .filter(|d| requester.is_none_or(|r| d.requester == r))
            .take(limit)
            .collect()
    }

    /// Up to `limit` records after `after` (from the first when absent), in id order.
    #[must_use]
    pub fn after(&self, after: Option<u64>, limit: usize) -> Vec<DeploymentInfo> {
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        self.map
            .range((from, std::ops::Bound::Unbounded))
            .take(limit)
            .map(|e| e.into_pair().1.0)
            .collect()
    }

    /// Records neither registered nor cancelled, read through the index.
    #[must_use]
    pub fn open(&self) -> Vec<DeploymentInfo> {
        self.open
            .keys()
            .filter_map(|id| self.get(id).ok())
            .collect()
    }

    /// How many records are open.
    #[must_use]
    pub fn open_count(&self) -> u64 {
        self.open.len()
    }
}

#[cfg(test)]
mod tests;
