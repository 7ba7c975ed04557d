//! The asynchronous flows: running a deployment, cancelling and recovering one, fleet
//! batches, top-ups and vault deletion. The decisions are in the pure modules; here each
//! step is *record → call → record*: the deployment's `pending` step is persisted before
//! the call and its result right after, never holding a state borrow across an await.
//!
//! One run at a time per deployment, and one fleet batch at a time: heap locks whose
//! guards are dropped when the run ends, also when a trapped callback makes ic-cdk
//! cancel the task (the lock lives on the heap, the record in stable memory, so a trap
//! leaves a free lock and a record with `pending` set, which the next run verifies).

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;

use candid::Principal;
use canvault_factory_api::{
    CreateForkTargetRequest, CreateVaultRequest, CreateVaultResponse, DeleteVaultResponse,
    DeploymentInfo, FactoryError, FleetUpgradeStatus, ForkTargetResponse, RecoverDeploymentRequest,
    SkipReason, Stage, Step, SubnetChoice, TopUpResponse, VaultInfo, VaultUpgradeState,
};
use canvault_protocol::vault_api::VaultInit;
use cmc_types::{
    CanisterSettings, CreateCanisterArg, CreateCanisterError, SubnetFilter, SubnetSelection,
};
use ic_cdk::api::{canister_self, msg_caller, msg_cycles_accept, msg_cycles_available, time};
use ic_management_canister_types::{CanisterInstallMode, CanisterStatusType};

use crate::calls::{self, CallError};
use crate::deployment::{self, NextStep, Transitions, retryable_code};
use crate::versions::VersionRecord;
use crate::{creation_fee, with_factory};

thread_local! {
    static BUSY: RefCell<BTreeSet<u64>> = const { RefCell::new(BTreeSet::new()) };
    static FLEET_BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Holds deployment `id` while a run advances it.
struct DeploymentLock(u64);

impl DeploymentLock {
    fn acquire(id: u64) -> Result<Self, FactoryError> {
        if BUSY.with_borrow_mut(|b| b.insert(id)) {
            Ok(Self(id))
        } else {
            Err(FactoryError::DeploymentBusy(id))
        }
    }
}

impl Drop for DeploymentLock {
    fn drop(&mut self) {
        BUSY.with_borrow_mut(|b| b.remove(&self.0));
    }
}

/// Holds the fleet while a batch runs.
struct FleetLock;

impl FleetLock {
    fn acquire(rollout: u64) -> Result<Self, FactoryError> {
        if FLEET_BUSY.replace(true) {
            Err(FactoryError::FleetUpgradeRunning(rollout))
        } else {
            Ok(Self)
        }
    }
}

impl Drop for FleetLock {
    fn drop(&mut self) {
        FLEET_BUSY.set(false);
    }
}

/// Changes deployment `id` with a transition stamped now.
fn record(
    id: u64,
    f: impl FnOnce(&mut DeploymentInfo, u64),
) -> Result<DeploymentInfo, FactoryError> {
    let now = time();
    with_factory(|s| s.deployments.update(id, |d| f(d, now)))
}

/// Records that `step` failed with a known outcome and returns the matching error.
fn fail(id: u64, step: Step, message: String, retryable: bool) -> FactoryError {
    let _ = record(id, |d, now| d.fail(step, message.clone(), retryable, now));
    FactoryError::DeploymentFailed {
        deployment_id: id,
        step,
        message,
        retryable,
    }
}

fn fail_call(id: u64, step: Step, e: &CallError) -> FactoryError {
    fail(id, step, e.to_string(), retryable_code(e.code))
}

/// The subnet a request's choice resolves to now (`None`: the CMC picks, by type).
async fn resolve_subnet(choice: &SubnetChoice) -> Result<Option<Principal>, FactoryError> {
    Ok(match choice {
        SubnetChoice::Default { avoid } => {
            let subnets = calls::default_subnets().await?;
            let id = with_factory(|f| f.peek_deployment_id());
            Some(deployment::pick_default_subnet(subnets, *avoid, id)?)
        }
        SubnetChoice::Subnet { subnet } => Some(*subnet),
        SubnetChoice::SubnetType { .. } => None,
    })
}

/// `create_vault`: checks everything (cycles included) before taking anything, resolves
/// a default subnet, accepts exactly the cost, records the deployment, runs it.
pub async fn create_vault(req: CreateVaultRequest) -> Result<CreateVaultResponse, FactoryError> {
    let caller = msg_caller();
    let fee = creation_fee();
    with_factory(|f| f.check_create(&req, caller, msg_cycles_available(), fee, time()))?;
    let subnet = resolve_subnet(&req.subnet).await?;
    // Checked again: other calls may have moved the state during the await.
    let required =
        with_factory(|f| f.check_create(&req, caller, msg_cycles_available(), fee, time()))?;
    let accepted = msg_cycles_accept(required);
    assert_eq!(accepted, required, "the cycles checked are available");
    let d = with_factory(|f| f.accept(req, caller, subnet, accepted, time()));
    let vault = run(d.id, false).await?.vault(d.id)?;
    Ok(CreateVaultResponse {
        deployment_id: d.id,
        vault,
    })
}

/// `create_fork_target`: like `create_vault`, for an empty canister controlled by the
/// caller (a registered owner of the vault) and the vault.
pub async fn create_fork_target(
    req: CreateForkTargetRequest,
) -> Result<ForkTargetResponse, FactoryError> {
    let caller = msg_caller();
    let fee = creation_fee();
    with_factory(|f| f.check_fork_target(&req, caller, msg_cycles_available(), fee, time()))?;
    let subnet = resolve_subnet(&req.subnet).await?;
    let required =
        with_factory(|f| f.check_fork_target(&req, caller, msg_cycles_available(), fee, time()))?;
    let accepted = msg_cycles_accept(required);
    assert_eq!(accepted, required, "the cycles checked are available");
    let d = with_factory(|f| f.accept_fork_target(&req, caller, subnet, accepted, time()));
    run(d.id, false).await?.target(d.id)
}

/// `resume_deployment`: runs deployment `id` (a vault's) from its first step not done.
pub async fn resume(id: u64) -> Result<CreateVaultResponse, FactoryError> {
    let d = with_factory(|f| f.authorize_requester(id, msg_caller()))?;
    if d.fork_target_of.is_some() {
        return Err(FactoryError::InvalidRequest(format!(
            "deployment {id} creates a fork target: resume_fork_target"
        )));
    }
    let vault = run(id, true).await?.vault(id)?;
    Ok(CreateVaultResponse {
        deployment_id: id,
        vault,
    })
}

/// `resume_fork_target`: runs fork-target deployment `id` from its first step not done.
pub async fn resume_fork_target(id: u64) -> Result<ForkTargetResponse, FactoryError> {
    let d = with_factory(|f| f.authorize_requester(id, msg_caller()))?;
    if d.fork_target_of.is_none() {
        return Err(FactoryError::InvalidRequest(format!(
            "deployment {id} creates a vault: resume_deployment"
        )));
    }
    run(id, true).await?.target(id)
}

/// How a run ended (one value per call, moved once: its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Finished {
    /// A vault deployment, registered.
    Vault(VaultInfo),
    /// A fork target, closed.
    Target(DeploymentInfo),
}

impl Finished {
    fn vault(self, id: u64) -> Result<VaultInfo, FactoryError> {
        match self {
            Self::Vault(v) => Ok(v),
            Self::Target(_) => Err(FactoryError::InvalidRequest(format!(
                "deployment {id} created a fork target"
            ))),
        }
    }

    fn target(self, id: u64) -> Result<ForkTargetResponse, FactoryError> {
        match self {
            Self::Target(d) => Ok(ForkTargetResponse {
                deployment_id: d.id,
                canister_id: d
                    .canister_id
                    .expect("a closed fork target has its canister"),
                subnet: d.subnet,
                controllers: deployment::final_controllers(&d, canister_self()),
            }),
            Self::Vault(_) => Err(FactoryError::InvalidRequest(format!(
                "deployment {id} created a vault"
            ))),
        }
    }
}

/// Runs deployment `id` to its end, or to the first failure (recorded); a resumed run
/// counts as one more attempt.
async fn run(id: u64, resumed: bool) -> Result<Finished, FactoryError> {
    let _lock = DeploymentLock::acquire(id)?;
    if resumed {
        record(id, |d, _| d.attempts += 1)?;
    }
    loop {
        let d = with_factory(|f| f.deployments.get(id))?;
        match deployment::next_step(&d) {
            NextStep::Done | NextStep::Cancelled => {
                return Err(FactoryError::DeploymentFinished { id, stage: d.stage });
            }
            NextStep::Unknown(step) => {
                return Err(FactoryError::OutcomeUnknown {
                    deployment_id: id,
                    step,
                });
            }
            NextStep::CreateCanister { cycles } => create(&d, cycles).await?,
            NextStep::InstallCode { canister, verify } => install(&d, canister, verify).await?,
            NextStep::SetControllers { canister, verify } => {
                set_controllers(&d, canister, verify).await?
            }
            NextStep::Register if d.fork_target_of.is_some() => {
                return with_factory(|f| f.finish_fork_target(id, time())).map(Finished::Target);
            }
            NextStep::Register => {
                return with_factory(|f| f.register(id, canister_self(), time()))
                    .map(Finished::Vault);
            }
        }
    }
}

/// The CMC's subnet selection for a deployment.
fn selection(d: &DeploymentInfo) -> SubnetSelection {
    match (&d.request.subnet, d.subnet) {
        (SubnetChoice::SubnetType { subnet_type }, _) => SubnetSelection::Filter(SubnetFilter {
            subnet_type: Some(subnet_type.clone()),
        }),
        (_, Some(subnet)) => SubnetSelection::Subnet { subnet },
        (_, None) => SubnetSelection::Filter(SubnetFilter::default()),
    }
}

async fn create(d: &DeploymentInfo, cycles: u128) -> Result<(), FactoryError> {
    let arg = CreateCanisterArg {
        settings: Some(CanisterSettings {
            controllers: Some(vec![canister_self()]),
            ..CanisterSettings::default()
        }),
        subnet_type: None,
        subnet_selection: Some(selection(d)),
    };
    record(d.id, |d, now| d.begin(Step::CreateCanister, now))?;
    match calls::cmc_create(arg, cycles).await {
        Ok((Ok(canister), refunded)) => {
            record(d.id, |d, now| d.created(canister, refunded, now))?;
            Ok(())
        }
        Ok((Err(CreateCanisterError::Refunded { create_error, .. }), refunded)) => {
            let message = format!("the cycles minting canister refused: {create_error}");
            record(d.id, |d, now| {
                d.create_failed(refunded, message.clone(), false, now)
            })?;
            Err(FactoryError::DeploymentFailed {
                deployment_id: d.id,
                step: Step::CreateCanister,
                message,
                retryable: false,
            })
        }
        Err(e) => {
            let retryable = retryable_code(e.code);
            record(d.id, |d, now| {
                d.create_failed(e.refunded, e.to_string(), retryable, now)
            })?;
            Err(FactoryError::DeploymentFailed {
                deployment_id: d.id,
                step: Step::CreateCanister,
                message: e.to_string(),
                retryable,
            })
        }
    }
}

fn version_of(d: &DeploymentInfo) -> Result<VersionRecord, FactoryError> {
    with_factory(|f| f.versions.get(&d.version)).ok_or(FactoryError::VersionNotFound(d.version))
}

/// Uploads `version` into the chunk store of `canister`.
async fn upload_module(canister: Principal, version: &VersionRecord) -> Result<(), CallError> {
    for index in 0..version.chunk_hashes.len() as u32 {
        let chunk = with_factory(|f| f.versions.chunk(version, index));
        calls::upload_chunk(canister, chunk).await?;
    }
    Ok(())
}

/// Installs `version` on `canister` from its chunk store, then empties the store.
async fn install_from_chunks(
    canister: Principal,
    version: &VersionRecord,
    mode: CanisterInstallMode,
    arg: Vec<u8>,
) -> Result<(), CallError> {
    upload_module(canister, version).await?;
    let hashes = version.chunk_hashes.iter().map(|h| h.0.to_vec()).collect();
    calls::install_chunked(canister, mode, hashes, version.hash.0.to_vec(), arg).await
}

/// Empties the chunk store of `canister`; a failure only costs the vault storage.
async fn clear_store(canister: Principal) {
    if let Err(e) = calls::clear_chunk_store(canister).await {
        ic_cdk::println!("factory: {e} (the chunk store of {canister} keeps the module)");
    }
}

async fn install(
    d: &DeploymentInfo,
    canister: Principal,
    verify: bool,
) -> Result<(), FactoryError> {
    let version = version_of(d)?;
    if verify {
        let status = calls::canister_status(canister)
            .await
            .map_err(|e| fail_call(d.id, Step::InstallCode, &e))?;
        match status.module_hash {
            Some(hash) if hash == version.hash.0 => {
                record(d.id, |d, now| d.advance(Stage::CodeInstalled, now))?;
                clear_store(canister).await;
                return Ok(());
            }
            Some(hash) => {
                return Err(fail(
                    d.id,
                    Step::InstallCode,
                    format!("{canister} runs module {}, not the vault's", hex(&hash)),
                    false,
                ));
            }
            None => {}
        }
    }
    let arg = candid::encode_one(deployment::vault_init(&d.request, d.requester))
        .expect("VaultInit encodes");
    record(d.id, |d, now| d.begin(Step::InstallCode, now))?;
    install_from_chunks(canister, &version, CanisterInstallMode::Install, arg)
        .await
        .map_err(|e| fail_call(d.id, Step::InstallCode, &e))?;
    record(d.id, |d, now| d.advance(Stage::CodeInstalled, now))?;
    clear_store(canister).await;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn same_set(a: &[Principal], b: &[Principal]) -> bool {
    a.len() == b.len() && a.iter().all(|p| b.contains(p))
}

async fn set_controllers(
    d: &DeploymentInfo,
    canister: Principal,
    verify: bool,
) -> Result<(), FactoryError> {
    let factory = canister_self();
    let desired = deployment::final_controllers(d, factory);
    if verify {
        match calls::canister_status(canister).await {
            Ok(s) if same_set(&s.settings.controllers, &desired) => {
                record(d.id, |d, now| d.advance(Stage::ControllersSet, now))?;
                return Ok(());
            }
            Ok(_) => {}
            // Only our own update_settings can have taken the factory out: it went through.
            Err(e) if e.code == 5 && !desired.contains(&factory) => {
                record(d.id, |d, now| d.advance(Stage::ControllersSet, now))?;
                return Ok(());
            }
            Err(e) => return Err(fail_call(d.id, Step::SetControllers, &e)),
        }
    }
    record(d.id, |d, now| d.begin(Step::SetControllers, now))?;
    calls::set_controllers(canister, desired)
        .await
        .map_err(|e| fail_call(d.id, Step::SetControllers, &e))?;
    record(d.id, |d, now| d.advance(Stage::ControllersSet, now))?;
    Ok(())
}

/// `cancel_deployment`: gives the credit of a deployment that has no canister back to
/// its requester (`deposit_cycles`), and closes it.
pub async fn cancel(id: u64) -> Result<DeploymentInfo, FactoryError> {
    let d = with_factory(|f| f.authorize_requester(id, msg_caller()))?;
    let _lock = DeploymentLock::acquire(id)?;
    match (d.stage, d.pending) {
        (Stage::Registered | Stage::Cancelled, _) => {
            return Err(FactoryError::DeploymentFinished { id, stage: d.stage });
        }
        (Stage::Accepted, Some(step @ (Step::CreateCanister | Step::Refund))) => {
            return Err(FactoryError::OutcomeUnknown {
                deployment_id: id,
                step,
            });
        }
        (Stage::Accepted, _) => {}
        (_, _) => {
            return Err(FactoryError::InvalidRequest(format!(
                "deployment {id} created canister {}: resume it instead",
                d.canister_id.map(|c| c.to_text()).unwrap_or_default()
            )));
        }
    }
    if d.credit > 0 {
        record(id, |d, now| d.begin(Step::Refund, now))?;
        if let Err(e) = calls::deposit_cycles(d.requester, d.credit).await {
            let retryable = retryable_code(e.code);
            record(id, |d, now| {
                d.credit = e.refunded;
                d.fail(Step::Refund, e.to_string(), retryable, now);
            })?;
            return Err(FactoryError::DeploymentFailed {
                deployment_id: id,
                step: Step::Refund,
                message: e.to_string(),
                retryable,
            });
        }
    }
    with_factory(|f| f.cancelled(id, time()))
}

/// `recover_deployment`: settles a lost CMC reply with the canister it created, then
/// runs the (vault) deployment on.
pub async fn recover(req: RecoverDeploymentRequest) -> Result<CreateVaultResponse, FactoryError> {
    settle(&req, false).await?;
    resume(req.deployment_id).await
}

/// `recover_fork_target`: as `recover`, for a fork-target deployment.
pub async fn recover_fork_target(
    req: RecoverDeploymentRequest,
) -> Result<ForkTargetResponse, FactoryError> {
    settle(&req, true).await?;
    resume_fork_target(req.deployment_id).await
}

/// Records `req.canister_id` as the canister whose creation reply deployment
/// `req.deployment_id` (a fork target's when `target`) lost, after checking it is an
/// empty canister controlled by the factory alone and no other deployment's.
async fn settle(req: &RecoverDeploymentRequest, target: bool) -> Result<(), FactoryError> {
    let id = req.deployment_id;
    let canister = req.canister_id;
    let _lock = DeploymentLock::acquire(id)?;
    let d = with_factory(|f| f.deployments.get(id))?;
    if (d.stage, d.pending) != (Stage::Accepted, Some(Step::CreateCanister)) {
        return Err(FactoryError::InvalidRequest(format!(
            "deployment {id} has no lost canister creation"
        )));
    }
    if d.fork_target_of.is_some() != target {
        return Err(FactoryError::InvalidRequest(format!(
            "deployment {id}: use {}",
            if target {
                "recover_deployment (it creates a vault)"
            } else {
                "recover_fork_target (it creates a fork target)"
            }
        )));
    }
    // A finished deployment's canister is registered, deleted or handed over (a fork
    // target, whose controllers no longer include the factory): only the open ones need
    // a look.
    let taken = with_factory(|f| {
        f.registry.get(&canister).is_some()
            || f.deployments
                .open()
                .iter()
                .any(|o| o.canister_id == Some(canister))
    });
    if taken {
        return Err(FactoryError::InvalidRequest(format!(
            "{canister} belongs to another deployment"
        )));
    }
    let status = calls::canister_status(canister).await?;
    if status.module_hash.is_some() || status.settings.controllers != vec![canister_self()] {
        return Err(FactoryError::InvalidRequest(format!(
            "{canister} is not an empty canister controlled by the factory alone"
        )));
    }
    record(id, |d, now| d.created(canister, 0, now))?;
    Ok(())
}

/// `top_up_vault`: the factory deposits the attached amount less its fee from its own
/// balance, and accepts the caller's cycles only once the deposit succeeded, so a failed
/// top-up returns everything to the caller.
pub async fn top_up(canister: Principal) -> Result<TopUpResponse, FactoryError> {
    let attached = msg_cycles_available();
    let fee = with_factory(|f| f.settings().config.top_up_fee);
    if attached <= fee {
        return Err(FactoryError::InsufficientCycles {
            attached,
            required: fee + 1,
        });
    }
    if with_factory(|f| f.registry.get(&canister)).is_none() {
        return Err(FactoryError::VaultNotFound(canister));
    }
    let amount = attached - fee;
    let needed = calls::deposit_cost(canister, amount);
    let available = ic_cdk::api::canister_liquid_cycle_balance();
    if available < needed {
        return Err(FactoryError::FactoryLowOnCycles { needed, available });
    }
    calls::deposit_cycles(canister, amount).await?;
    let accepted = msg_cycles_accept(attached);
    assert_eq!(accepted, attached, "nothing else takes the attached cycles");
    Ok(TopUpResponse {
        deposited: amount,
        fee,
    })
}

/// The controllers of `canister` now, from `canister_status`; `None` when the factory is
/// not (or no longer) one of them.
///
/// # Errors
/// Any other failure: the factory cannot tell who controls the vault, so it refuses.
async fn current_controllers(canister: Principal) -> Result<Option<Vec<Principal>>, FactoryError> {
    match calls::canister_status(canister).await {
        Ok(status) => Ok(Some(status.settings.controllers)),
        Err(e) if e.code == 5 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `set_managed_upgrades`: authorised against the vault's current controllers.
pub async fn set_managed_upgrades(
    canister: Principal,
    managed: bool,
) -> Result<VaultInfo, FactoryError> {
    let caller = msg_caller();
    with_factory(|f| f.registry.get(&canister)).ok_or(FactoryError::VaultNotFound(canister))?;
    let controllers = current_controllers(canister).await?;
    with_factory(|f| {
        f.set_managed_upgrades(
            canister,
            managed,
            caller,
            controllers.as_deref(),
            canister_self(),
        )
    })
}

/// `delete_vault`: an owner deletes its vault. The factory reads who controls the vault
/// now; if it is one of them, it stops and deletes the canister for a caller that is
/// one too; otherwise it only forgets the vault (for a registered owner).
pub async fn delete_vault(canister: Principal) -> Result<DeleteVaultResponse, FactoryError> {
    let caller = msg_caller();
    with_factory(|f| f.registry.get(&canister)).ok_or(FactoryError::VaultNotFound(canister))?;
    let controllers = current_controllers(canister).await?;
    with_factory(|f| f.authorize_owner(canister, caller, controllers.as_deref(), canister_self()))?;
    let mut deleted = false;
    if controllers.is_some() {
        match calls::stop(canister).await {
            Ok(()) => {
                if let Err(e) = calls::delete(canister).await {
                    let _ = calls::start(canister).await;
                    return Err(e.into());
                }
                deleted = true;
            }
            // No longer a controller: its controllers delete it.
            Err(e) if e.code == 5 => {}
            Err(e) => return Err(e.into()),
        }
    }
    with_factory(|f| f.unregister(canister));
    Ok(DeleteVaultResponse {
        canister_deleted: deleted,
    })
}

/// `run_fleet_batch`: upgrades up to `max` vaults of the rollout concurrently.
pub async fn run_fleet_batch(max: u32) -> Result<FleetUpgradeStatus, FactoryError> {
    let header = with_factory(|f| f.fleet.header()).ok_or(FactoryError::NoFleetUpgrade)?;
    let _lock = FleetLock::acquire(header.id)?;
    if max == 0 {
        return Err(FactoryError::InvalidRequest(
            "max_vaults must be at least 1".into(),
        ));
    }
    let version = with_factory(|f| f.versions.get(&header.version))
        .ok_or(FactoryError::VersionNotFound(header.version))?;
    let batch = with_factory(|f| f.fleet.next_batch(max as usize));
    let results = futures::future::join_all(batch.iter().map(|v| upgrade_one(*v, &version))).await;
    with_factory(|f| {
        for (vault, state) in batch.iter().zip(results) {
            if matches!(state, VaultUpgradeState::Upgraded { .. }) {
                f.registry.set_version(vault, version.hash);
            }
            f.fleet.set_state(vault, state);
        }
        Ok(f.fleet.status().expect("a rollout exists"))
    })
}

/// Why `vault` must be left alone now, if it must: no longer registered, or its owner
/// opted out of managed upgrades since the rollout planned it.
fn skip_now(vault: Principal) -> Option<VaultUpgradeState> {
    let reason = match with_factory(|f| f.registry.get(&vault)) {
        None => SkipReason::NotRegistered,
        Some(v) if !v.managed_upgrades => SkipReason::OptedOut,
        Some(_) => return None,
    };
    Some(VaultUpgradeState::Skipped { reason })
}

/// Upgrades one vault: checks its module, uploads the new one into its chunk store,
/// stops it, upgrades it (`post_upgrade(null)`: roles and data kept), starts it again.
async fn upgrade_one(vault: Principal, version: &VersionRecord) -> VaultUpgradeState {
    let failed = |reason: String| VaultUpgradeState::Failed { reason };
    if let Some(skip) = skip_now(vault) {
        return skip;
    }
    let status = match calls::canister_status(vault).await {
        Ok(s) => s,
        // Its controllers took the factory out since the rollout started.
        Err(e) if e.code == 5 => {
            return VaultUpgradeState::Skipped {
                reason: SkipReason::NotController,
            };
        }
        Err(e) => return failed(e.to_string()),
    };
    // Checked again after the await: the owner may have opted out meanwhile.
    if let Some(skip) = skip_now(vault) {
        return skip;
    }
    if status.module_hash.as_deref() != Some(&version.hash.0[..]) {
        let arg = candid::encode_one(None::<VaultInit>).expect("encodes");
        if let Err(e) = upload_module(vault, version).await {
            return failed(e.to_string());
        }
        if let Err(e) = calls::stop(vault).await {
            let _ = calls::start(vault).await;
            return failed(e.to_string());
        }
        let hashes = version.chunk_hashes.iter().map(|h| h.0.to_vec()).collect();
        let mode = CanisterInstallMode::Upgrade(None);
        if let Err(e) =
            calls::install_chunked(vault, mode, hashes, version.hash.0.to_vec(), arg).await
        {
            let _ = calls::start(vault).await;
            clear_store(vault).await;
            return failed(e.to_string());
        }
        clear_store(vault).await;
    } else if status.status == CanisterStatusType::Running {
        return VaultUpgradeState::Upgraded { at_ns: time() };
    }
    match calls::start(vault).await {
        Ok(()) => VaultUpgradeState::Upgraded { at_ns: time() },
        // Upgraded but still stopped: the next batch takes it again and starts it.
        Err(_) => VaultUpgradeState::InProgress,
    }
}
