//! The canvault factory canister: spawns vaults on other subnets for apps and end users.
//!
//! This file holds the entry points only: each reads the caller, checks its permission,
//! calls one function of a logic module and returns its result. The logic lives in
//! modules that never touch the system API and are generic over the stable memory:
//!
//! - [`state`]: the state (one `MemoryManager`, see [`memory`]): settings, admins;
//! - [`versions`]: chunked, hash-checked uploads of vault modules;
//! - [`registry`]: registered vaults, by owner and by app;
//! - [`deployment`]: the resumable deployment record and its pure `next_step` (vaults,
//!   and fork targets: empty canisters a vault restores a whole-canister snapshot into);
//! - [`quota`]: vaults per principal, creations per day;
//! - [`fleet`]: fleet upgrades, a state per vault.
//!
//! The effects (cycles minting canister, management canister) are in [`calls`], driven
//! step by step by [`driver`]. All state is in stable structures: there is no
//! `pre_upgrade`, and `post_upgrade` only applies its optional argument.

pub mod calls;
pub mod deployment;
pub mod driver;
pub mod fleet;
#[cfg(test)]
mod golden_tests;
pub mod ingress;
pub mod memory;
pub mod quota;
pub mod registry;
pub mod state;
mod storable;
pub mod versions;

use std::cell::RefCell;

use candid::Principal;
use canvault_factory_api::{
    BeginUploadRequest, CreateForkTargetRequest, CreateVaultRequest, CreateVaultResponse,
    DeleteVaultResponse, DeploymentInfo, FactoryConfig, FactoryError, FactoryInit, FactoryStatus,
    FleetUpgradeStatus, FleetVaultsPage, ForkTargetResponse, ListFleetVaultsRequest,
    RecoverDeploymentRequest, RunFleetBatchRequest, SetManagedUpgradesRequest,
    StartFleetUpgradeRequest, TopUpRequest, TopUpResponse, UploadChunkRequest, UploadProgress,
    VaultInfo, VersionInfo,
};
use canvault_protocol::Hash256;
use ic_cdk::api::{canister_cycle_balance, canister_self, msg_caller, time};
use ic_cdk::{init, inspect_message, post_upgrade, query, update};
use ic_stable_structures::DefaultMemoryImpl;

use crate::state::Factory;

thread_local! {
    static FACTORY: RefCell<Factory<DefaultMemoryImpl>> = RefCell::new(Factory::init(DefaultMemoryImpl::default()));
}

/// Runs `f` on the factory state. Never held across an `await`.
pub(crate) fn with_factory<R>(f: impl FnOnce(&mut Factory<DefaultMemoryImpl>) -> R) -> R {
    FACTORY.with_borrow_mut(f)
}

/// Checks that the caller is an admin, then runs `f`.
fn as_admin<R>(
    f: impl FnOnce(&mut Factory<DefaultMemoryImpl>) -> Result<R, FactoryError>,
) -> Result<R, FactoryError> {
    with_factory(|s| {
        s.authorize_admin(msg_caller())?;
        f(s)
    })
}

/// The creation fee forwarded to the cycles minting canister.
pub(crate) fn creation_fee() -> u128 {
    with_factory(|f| f.settings().config.creation_fee)
        .unwrap_or_else(ic_cdk::api::cost_create_canister)
}

/// Refuses early the ingress calls their methods would surely refuse (see
/// [`ingress::inspect`]); the methods keep their own checks.
#[inspect_message]
fn inspect_message() {
    let caller = msg_caller();
    let method = ic_cdk::api::msg_method_name();
    let is_admin = with_factory(|f| f.is_admin(&caller));
    match ingress::inspect(&method, caller, is_admin, ic_cdk::api::msg_arg_data().len()) {
        Ok(()) => ic_cdk::api::accept_message(),
        Err(refusal) => ic_cdk::println!("factory: refused {method} from {caller}: {refusal:?}"),
    }
}

#[init]
fn init(arg: FactoryInit) {
    with_factory(|f| f.configure(&arg, true)).unwrap_or_else(|e| ic_cdk::trap(e.to_string()));
}

#[post_upgrade]
fn post_upgrade(arg: Option<FactoryInit>) {
    // Loads the state now, so that a layout migration runs (and is kept) in the upgrade.
    with_factory(|_| ());
    if let Some(arg) = arg {
        with_factory(|f| f.configure(&arg, false)).unwrap_or_else(|e| ic_cdk::trap(e.to_string()));
    }
}

// ---- Vault versions (admins) ----

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "begin_version_upload")]
fn begin_version_upload(req: BeginUploadRequest) -> Result<UploadProgress, FactoryError> {
    as_admin(|f| {
        let id = f.next_upload_id();
        f.versions.begin(id, &req, msg_caller(), time())
    })
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "upload_version_chunk")]
fn upload_version_chunk(req: UploadChunkRequest) -> Result<UploadProgress, FactoryError> {
    as_admin(|f| f.versions.append(&req))
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "commit_version_upload")]
fn commit_version_upload(upload_id: u64) -> Result<VersionInfo, FactoryError> {
    as_admin(|f| f.versions.commit(upload_id, time()).map(|v| v.info(false)))
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "abort_version_upload")]
fn abort_version_upload(upload_id: u64) -> Result<(), FactoryError> {
    as_admin(|f| f.versions.abort(upload_id))
}

#[query]
fn list_uploads() -> Result<Vec<UploadProgress>, FactoryError> {
    as_admin(|f| Ok(f.versions.uploads()))
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "set_current_version")]
fn set_current_version(hash: Hash256) -> Result<VersionInfo, FactoryError> {
    as_admin(|f| f.set_current_version(hash))
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "delete_version")]
fn delete_version(hash: Hash256) -> Result<(), FactoryError> {
    as_admin(|f| f.delete_version(hash))
}

#[query]
fn list_versions() -> Vec<VersionInfo> {
    with_factory(|f| f.list_versions())
}

// ---- Settings (admins) ----

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "set_config")]
fn set_config(config: FactoryConfig) -> Result<(), FactoryError> {
    as_admin(|f| f.set_config(config))
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "set_admins")]
fn set_admins(admins: Vec<Principal>) -> Result<(), FactoryError> {
    as_admin(|f| f.set_admins(admins))
}

#[query]
fn list_admins() -> Vec<Principal> {
    with_factory(|f| f.settings().admins.clone())
}

#[query]
fn status() -> FactoryStatus {
    let fee = creation_fee();
    with_factory(|f| f.status(fee, canister_cycle_balance()))
}

// ---- Deployments ----

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "create_vault")]
async fn create_vault(req: CreateVaultRequest) -> Result<CreateVaultResponse, FactoryError> {
    driver::create_vault(req).await
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "resume_deployment")]
async fn resume_deployment(id: u64) -> Result<CreateVaultResponse, FactoryError> {
    driver::resume(id).await
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "cancel_deployment")]
async fn cancel_deployment(id: u64) -> Result<DeploymentInfo, FactoryError> {
    driver::cancel(id).await
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "recover_deployment")]
async fn recover_deployment(
    req: RecoverDeploymentRequest,
) -> Result<CreateVaultResponse, FactoryError> {
    with_factory(|f| f.authorize_admin(msg_caller()))?;
    driver::recover(req).await
}

#[query(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(query, rename = "get_deployment")]
fn get_deployment(id: u64) -> Result<DeploymentInfo, FactoryError> {
    with_factory(|f| f.authorize_requester(id, msg_caller()))
}

/// Deployments from `start` on (at most `limit`, up to 100): all of them for admins,
/// the caller's own for anyone else.
#[query(
    decode_with = "canvault_protocol::decode::endpoint_args",
    hidden = true
)]
#[::candid::candid_method(query, rename = "list_deployments")]
fn list_deployments(start: u64, limit: u32) -> Vec<DeploymentInfo> {
    let caller = msg_caller();
    with_factory(|f| {
        let only = (!f.is_admin(&caller)).then_some(caller);
        f.deployments.list(start, limit.min(100) as usize, only)
    })
}

// ---- Fork targets ----

/// An empty canister on the chosen subnet, controlled by the caller (a registered owner
/// of `req.vault`) and the vault, for the vault's `restore_canister` to fork into.
#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "create_fork_target")]
async fn create_fork_target(
    req: CreateForkTargetRequest,
) -> Result<ForkTargetResponse, FactoryError> {
    driver::create_fork_target(req).await
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "resume_fork_target")]
async fn resume_fork_target(id: u64) -> Result<ForkTargetResponse, FactoryError> {
    driver::resume_fork_target(id).await
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "recover_fork_target")]
async fn recover_fork_target(
    req: RecoverDeploymentRequest,
) -> Result<ForkTargetResponse, FactoryError> {
    with_factory(|f| f.authorize_admin(msg_caller()))?;
    driver::recover_fork_target(req).await
}

// ---- Vaults ----

#[query(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(query, rename = "get_vault")]
fn get_vault(canister_id: Principal) -> Result<VaultInfo, FactoryError> {
    with_factory(|f| f.registry.get(&canister_id)).ok_or(FactoryError::VaultNotFound(canister_id))
}

#[query(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(query, rename = "vaults_of_owner")]
fn vaults_of_owner(owner: Principal) -> Vec<VaultInfo> {
    with_factory(|f| f.registry.of_owner(owner))
}

#[query(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(query, rename = "vaults_of_app")]
fn vaults_of_app(app: Principal) -> Vec<VaultInfo> {
    with_factory(|f| f.registry.of_app(app))
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "top_up_vault")]
async fn top_up_vault(req: TopUpRequest) -> Result<TopUpResponse, FactoryError> {
    driver::top_up(req.canister_id).await
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "set_managed_upgrades")]
async fn set_managed_upgrades(req: SetManagedUpgradesRequest) -> Result<VaultInfo, FactoryError> {
    driver::set_managed_upgrades(req.canister_id, req.managed).await
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "delete_vault")]
async fn delete_vault(canister_id: Principal) -> Result<DeleteVaultResponse, FactoryError> {
    driver::delete_vault(canister_id).await
}

// ---- Fleet upgrades (admins) ----

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "start_fleet_upgrade")]
fn start_fleet_upgrade(req: StartFleetUpgradeRequest) -> Result<FleetUpgradeStatus, FactoryError> {
    as_admin(|f| f.start_fleet_upgrade(req.version, canister_self(), time()))
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "run_fleet_batch")]
async fn run_fleet_batch(req: RunFleetBatchRequest) -> Result<FleetUpgradeStatus, FactoryError> {
    with_factory(|f| f.authorize_admin(msg_caller()))?;
    driver::run_fleet_batch(req.max_vaults).await
}

#[update]
fn cancel_fleet_upgrade() -> Result<FleetUpgradeStatus, FactoryError> {
    as_admin(|f| {
        f.fleet.cancel();
        f.fleet.status().ok_or(FactoryError::NoFleetUpgrade)
    })
}

#[query]
fn fleet_upgrade_status() -> Option<FleetUpgradeStatus> {
    with_factory(|f| f.fleet.status())
}

/// The vaults of the current (or last) fleet upgrade, a page at a time.
#[query(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(query, rename = "list_fleet_upgrade_vaults")]
fn list_fleet_upgrade_vaults(req: ListFleetVaultsRequest) -> FleetVaultsPage {
    with_factory(|f| f.fleet.page(req.start, req.limit as usize))
}

/// The candid interface, generated from the endpoints (`factory.did` is its committed
/// copy, checked by the test below).
mod candid_interface {
    #[allow(clippy::wildcard_imports)]
    use super::*;

    ic_cdk::export_candid!();

    #[cfg(test)]
    mod tests {
        #[test]
        fn candid_interface_matches_factory_did() {
            use candid_parser::utils::{CandidSource, service_equal};
            let code = super::__export_service();
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/factory.did");
            if std::env::var_os("CANVAULT_UPDATE_DID").is_some() {
                std::fs::write(path, &code).expect("writes factory.did");
            }
            let committed = std::fs::read_to_string(path).expect("factory.did exists");
            service_equal(CandidSource::Text(&committed), CandidSource::Text(&code)).unwrap_or_else(|e| {
                panic!("factory.did is out of date ({e}); regenerate: CANVAULT_UPDATE_DID=1 cargo test -p canvault-factory")
            });
        }
    }
}
