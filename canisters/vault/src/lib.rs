//! The canvault vault canister: a content-addressed chunk store that keeps verified
//! snapshots of canister images, from several sources, deduplicated.
//!
//! This file holds the entry points only: each reads the caller, checks its role, calls
//! one function of the logic modules and returns its result. The logic lives in
//! modules that never touch the system API and are generic over the stable memory:
//!
//! - [`vault`]: the state (one `MemoryManager`, see [`memory`]), install, roles,
//!   retention passes, deletion, status;
//! - [`backup`]: begin / put chunks / commit / abort;
//! - [`download`]: catalogue reads, manifests, chunks, download leases;
//! - [`restore_job`]: restore jobs and their state machine, driven by timers in
//!   [`restore_driver`];
//! - [`canister_job`]: whole-canister backups and restores through native snapshots,
//!   driven by timers in [`canister_driver`];
//! - [`store`] and [`blocks`]: the chunk store; [`catalogue`]: snapshots and chunk
//!   tables; [`retention`]: the pure retention policy; [`roles`].
//!
//! All state is in stable structures: there is no `pre_upgrade`, and `post_upgrade`
//! only applies its optional argument and re-arms the timers.

pub mod acked_prefix;
pub mod backup;
pub mod blocks;
pub mod canister_driver;
pub mod canister_job;
pub mod catalogue;
pub mod download;
pub mod ingress;
pub mod memory;
pub mod restore_driver;
pub mod restore_job;
pub mod retention;
pub mod roles;
pub mod root;
pub mod schedule;
pub mod slots;
mod storable;
pub mod store;
pub mod vault;

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod model_tests;

use std::cell::RefCell;
use std::time::Duration;

use candid::Principal;
use canvault_protocol::Hash256;
use canvault_protocol::canister_image::{
    CanisterBackupRequest, CanisterJob, CanisterSchedule, CanisterScheduleInfo,
    RestoreCanisterRequest,
};
use canvault_protocol::vault_api::{
    BeginSnapshotRequest, BeginSnapshotResponse, CommitSnapshotRequest, ListSnapshotsRequest,
    ManifestPage, PutChunksRequest, PutChunksResponse, RestoreJob, RetentionPolicy, Role,
    RoleChange, SnapshotId, SnapshotInfo, SnapshotPage, StartRestoreRequest, StoredChunk,
    VaultError, VaultInit, VaultStatus,
};
use ic_cdk::api::{canister_cycle_balance, msg_caller, stable_size, time};
use ic_cdk::{init, inspect_message, post_upgrade, query, update};
use ic_stable_structures::DefaultMemoryImpl;

use crate::roles::Caller;
use crate::vault::{Platform, Vault};

thread_local! {
    static VAULT: RefCell<Vault<DefaultMemoryImpl>> = RefCell::new(Vault::init(DefaultMemoryImpl::default()));
}

/// Runs `f` on the vault state. Never held across an `await`.
pub(crate) fn with_vault<R>(f: impl FnOnce(&mut Vault<DefaultMemoryImpl>) -> R) -> R {
    VAULT.with_borrow_mut(f)
}

/// Instructions a message spends on table work (copies, releases, commit walks) before
/// it leaves the rest to a later message: one DTS slice, a twentieth of the 40B update
/// limit (one table entry costs well under 1M, so the overshoot is small).
const WORK_INSTRUCTIONS: u64 = 2_000_000_000;

/// The budget passed to the logic: true while this message is under [`WORK_INSTRUCTIONS`].
pub(crate) fn within_budget() -> bool {
    ic_cdk::api::instruction_counter() < WORK_INSTRUCTIONS
}

/// Checks that the caller holds `needed`, then runs `f`.
fn as_role<R>(
    needed: Role,
    f: impl FnOnce(&mut Vault<DefaultMemoryImpl>, Caller) -> Result<R, VaultError>,
) -> Result<R, VaultError> {
    with_vault(|v| {
        let caller = v.authorize(msg_caller(), needed)?;
        f(v, caller)
    })
}

/// Refuses ingress from the anonymous principal and from principals without the
/// method's role before the vault pays for executing it (the methods check again).
#[inspect_message]
fn inspect_message() {
    let method = ic_cdk::api::msg_method_name();
    let sender = msg_caller();
    let admitted =
        with_vault(|v| ingress::admits(&method, sender, |role| v.authorize(sender, role).is_ok()));
    if admitted {
        ic_cdk::api::accept_message();
    }
}

#[init]
fn init(arg: VaultInit) {
    with_vault(|v| v.configure(&arg, Some(msg_caller())));
    restore_driver::arm_timers();
}

#[post_upgrade]
fn post_upgrade(arg: Option<VaultInit>) {
    if let Some(arg) = arg {
        with_vault(|v| v.configure(&arg, None));
    }
    restore_driver::arm_timers();
}

/// `dataset`: an optional second argument (callers that predate it send one).
#[update(
    decode_with = "canvault_protocol::decode::endpoint_args",
    hidden = true
)]
#[::candid::candid_method(update, rename = "begin_snapshot")]
fn begin_snapshot(
    req: BeginSnapshotRequest,
    dataset: Option<String>,
) -> Result<BeginSnapshotResponse, VaultError> {
    let begun = as_role(Role::Writer, |v, caller| {
        v.begin_snapshot(caller, req, dataset, time(), &within_budget)
    })?;
    restore_driver::schedule_collect();
    Ok(begun)
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "put_chunks")]
fn put_chunks(req: PutChunksRequest) -> Result<PutChunksResponse, VaultError> {
    // Writer traffic revives timers a trapped global-timer execution left dead.
    restore_driver::revive_timers();
    as_role(Role::Writer, |v, caller| v.put_chunks(caller, &req, time()))
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "commit_snapshot")]
fn commit_snapshot(req: CommitSnapshotRequest) -> Result<SnapshotInfo, VaultError> {
    let committed = as_role(Role::Writer, |v, caller| {
        v.commit_snapshot(caller, &req, time(), &within_budget)
    });
    if matches!(committed, Err(VaultError::InUse(_))) {
        // The table-work chain walks on meanwhile, so retries find it further along.
        restore_driver::schedule_collect();
    }
    let info = committed?;
    restore_driver::schedule_retention();
    Ok(info)
}

#[update(
    decode_with = "canvault_protocol::decode::endpoint_args",
    hidden = true
)]
#[::candid::candid_method(update, rename = "abort_snapshot")]
fn abort_snapshot(id: SnapshotId, reason: String) -> Result<(), VaultError> {
    as_role(Role::Writer, |v, caller| {
        v.abort_snapshot(caller, id, reason, time())
    })
}

#[query(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(query, rename = "list_snapshots")]
fn list_snapshots(source: Option<Principal>) -> Result<Vec<SnapshotInfo>, VaultError> {
    as_role(Role::Reader, |v, _| Ok(v.list_snapshots(source)))
}

#[query(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(query, rename = "list_snapshot_page")]
fn list_snapshot_page(req: ListSnapshotsRequest) -> Result<SnapshotPage, VaultError> {
    as_role(Role::Reader, |v, _| Ok(v.list_snapshot_page(&req)))
}

#[query(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(query, rename = "get_snapshot")]
fn get_snapshot(id: SnapshotId) -> Result<SnapshotInfo, VaultError> {
    as_role(Role::Reader, |v, _| v.get_snapshot(id))
}

#[query(
    decode_with = "canvault_protocol::decode::endpoint_args",
    hidden = true
)]
#[::candid::candid_method(query, rename = "get_manifest")]
fn get_manifest(id: SnapshotId, start: u32, limit: u32) -> Result<ManifestPage, VaultError> {
    as_role(Role::Reader, |v, _| v.get_manifest(id, start, limit))
}

#[query(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(query, rename = "get_chunk")]
fn get_chunk(hash: Hash256) -> Result<StoredChunk, VaultError> {
    as_role(Role::Reader, |v, _| v.get_chunk(&hash))
}

#[update(
    decode_with = "canvault_protocol::decode::endpoint_args",
    hidden = true
)]
#[::candid::candid_method(update, rename = "open_download")]
fn open_download(id: SnapshotId, seconds: u64) -> Result<u64, VaultError> {
    as_role(Role::Reader, |v, _| v.open_download(id, seconds, time()))
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "delete_snapshot")]
fn delete_snapshot(id: SnapshotId) -> Result<(), VaultError> {
    if as_role(Role::Owner, |v, _| v.delete_snapshot(id, &within_budget))? {
        restore_driver::schedule_collect();
    }
    Ok(())
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "set_retention")]
fn set_retention(policy: RetentionPolicy) -> Result<(), VaultError> {
    as_role(Role::Owner, |v, _| {
        v.set_retention(policy);
        Ok(())
    })
}

#[update]
fn apply_retention() -> Result<Vec<SnapshotId>, VaultError> {
    let pass = as_role(Role::Owner, |v, _| {
        Ok(v.apply_retention(time(), &within_budget))
    })?;
    if pass.more {
        restore_driver::schedule_collect();
    }
    Ok(pass.deleted)
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "update_roles")]
fn update_roles(changes: Vec<RoleChange>) -> Result<(), VaultError> {
    as_role(Role::Owner, |v, _| v.update_roles(&changes))
}

#[query]
fn list_roles() -> Result<Vec<(Principal, Role)>, VaultError> {
    as_role(Role::Owner, |v, _| Ok(v.list_roles()))
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "start_restore")]
fn start_restore(req: StartRestoreRequest) -> Result<RestoreJob, VaultError> {
    let job = as_role(Role::Owner, |v, _| v.start_restore(&req, time()))?;
    restore_driver::schedule(job.id, Duration::ZERO);
    Ok(job)
}

#[query(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(query, rename = "restore_status")]
fn restore_status(id: u64) -> Result<RestoreJob, VaultError> {
    as_role(Role::Owner, |v, _| v.restore_status(id))
}

#[query]
fn list_restores() -> Result<Vec<RestoreJob>, VaultError> {
    as_role(Role::Owner, |v, _| Ok(v.list_restores()))
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "backup_canister")]
fn backup_canister(req: CanisterBackupRequest) -> Result<CanisterJob, VaultError> {
    let self_id = ic_cdk::api::canister_self();
    let job = as_role(Role::Owner, |v, _| v.backup_canister(req, self_id, time()))?;
    canister_driver::schedule(job.id, Duration::ZERO);
    Ok(job)
}

#[query(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(query, rename = "canister_backup_status")]
fn canister_backup_status(id: u64) -> Result<CanisterJob, VaultError> {
    as_role(Role::Owner, |v, _| v.canister_job(id, true))
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "restore_canister")]
fn restore_canister(req: RestoreCanisterRequest) -> Result<CanisterJob, VaultError> {
    let self_id = ic_cdk::api::canister_self();
    let job = as_role(Role::Owner, |v, _| v.restore_canister(req, self_id, time()))?;
    canister_driver::schedule(job.id, Duration::ZERO);
    Ok(job)
}

#[query(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(query, rename = "canister_restore_status")]
fn canister_restore_status(id: u64) -> Result<CanisterJob, VaultError> {
    as_role(Role::Owner, |v, _| v.canister_job(id, false))
}

#[query]
fn list_canister_jobs() -> Result<Vec<CanisterJob>, VaultError> {
    as_role(Role::Owner, |v, _| Ok(v.list_canister_jobs()))
}

/// Backs `s.canister` up whole every `s.interval_secs` (replaces its schedule).
#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "set_canister_schedule")]
fn set_canister_schedule(s: CanisterSchedule) -> Result<CanisterScheduleInfo, VaultError> {
    let info = as_role(Role::Owner, |v, _| v.set_canister_schedule(s, time()))?;
    canister_driver::arm_schedules();
    Ok(info)
}

#[update(decode_with = "canvault_protocol::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "clear_canister_schedule")]
fn clear_canister_schedule(canister: Principal) -> Result<(), VaultError> {
    as_role(Role::Owner, |v, _| v.clear_canister_schedule(canister))?;
    canister_driver::arm_schedules();
    Ok(())
}

#[query]
fn list_canister_schedules() -> Result<Vec<CanisterScheduleInfo>, VaultError> {
    as_role(Role::Owner, |v, _| Ok(v.list_canister_schedules()))
}

#[query]
fn status() -> Result<VaultStatus, VaultError> {
    // Readers and owners only: the store gauges would tell a writer whether chunks it
    // sends were already stored by another source.
    as_role(Role::Reader, |v, _| {
        Ok(v.status(Platform {
            stable_memory_bytes: stable_size() * 65_536,
            cycles: canister_cycle_balance(),
        }))
    })
}

/// The candid interface, from the endpoints above (the macro's function is undocumented).
#[allow(missing_docs)]
mod candid_export {
    use super::*;

    ic_cdk::export_candid!();

    #[cfg(test)]
    mod tests {
        use candid_parser::utils::{CandidSource, service_equal};

        use super::__export_service;

        /// `vault.did` is the interface the code exports (regenerate it with
        /// `cargo test -p canvault-vault print_candid -- --ignored --nocapture`).
        #[test]
        fn candid_interface_matches_vault_did() {
            let exported = __export_service();
            service_equal(
                CandidSource::Text(include_str!("../vault.did")),
                CandidSource::Text(&exported),
            )
            .unwrap_or_else(|e| {
                panic!("vault.did differs from the code: {e}\n\nexported:\n{exported}")
            });
        }

        #[test]
        #[ignore = "prints the exported interface"]
        fn print_candid() {
            println!("{}", __export_service());
        }
    }
}
