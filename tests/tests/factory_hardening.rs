//! The factory under attack (issue #10), on real wasm: a revoked co-owner asking the
//! factory to delete the vault, an app choosing a personal vault's settings, a vault
//! opted out after a fleet upgrade started, anonymous ingress.
//!
//! Build the wasm first: `scripts/build-wasm.sh`.

mod factory_support;

#[allow(clippy::wildcard_imports)]
use factory_support::*;

use candid::{Encode, Principal};
use canvault_factory_api::{
    CreateVaultRequest, DeleteVaultResponse, FactoryError, FleetUpgradeStatus, Permission,
    RunFleetBatchRequest, SetManagedUpgradesRequest, SkipReason, StartFleetUpgradeRequest,
    VaultInfo, VaultUpgradeState,
};
use canvault_protocol::vault_api::{RetentionPolicy, Role, RoleChange, VaultError};
use canvault_scenarios::vault::VaultClient;
use canvault_scenarios::{principal, wasm};
use ic_harness::RejectCode;
use ic_management_canister_types::CanisterSettings;

/// A managed app vault owned by `owners` (controllers: the owners and the factory).
fn app_vault(s: &mut Setup, owners: Vec<Principal>) -> VaultInfo {
    let req = CreateVaultRequest {
        owners,
        ..s.app_request(principal("ops"), principal("auditor"))
    };
    s.create(&req, REQUIRED).0.expect("create").vault
}

/// `owner` takes `who` out of the vault's owners and out of its controllers: what a
/// revocation must do, since a controller can delete a canister by itself.
fn revoke(s: &mut Setup, vault: Principal, owner: Principal, who: Principal) {
    let revoked: Result<(), VaultError> = VaultClient { id: vault }.call(
        &mut s.ic,
        owner,
        "update_roles",
        (vec![RoleChange {
            principal: who,
            role: Role::Owner,
            grant: false,
        }],),
    );
    revoked.expect("update_roles");
    let controllers: Vec<Principal> = s
        .controllers(vault, owner)
        .into_iter()
        .filter(|c| *c != who)
        .collect();
    s.ic.update_canister_settings(
        vault,
        Some(owner),
        CanisterSettings {
            controllers: Some(controllers),
            ..CanisterSettings::default()
        },
    )
    .expect("update_settings");
}

#[test]
fn should_refuse_delete_vault_to_a_revoked_co_owner() {
    let mut s = Setup::new();
    let (ops, co) = (principal("ops"), principal("co-owner"));
    let vault = app_vault(&mut s, vec![ops, co]).canister_id;
    revoke(&mut s, vault, ops, co);

    let r: Result<DeleteVaultResponse, FactoryError> = s.call_as(co, "delete_vault", (vault,));
    assert_eq!(
        r,
        Err(FactoryError::Unauthorized {
            caller: co,
            needed: Permission::VaultOwner
        })
    );
    assert!(s.ic.canister_exists(vault), "the vault survives");
    let still: Result<VaultInfo, FactoryError> = s.query_as(ops, "get_vault", (vault,));
    assert!(still.is_ok(), "and stays registered");
    // Nor may the revoked co-owner opt the vault in or out of fleet upgrades.
    let r: Result<VaultInfo, FactoryError> = s.call_as(
        co,
        "set_managed_upgrades",
        (SetManagedUpgradesRequest {
            canister_id: vault,
            managed: false,
        },),
    );
    assert!(matches!(r, Err(FactoryError::Unauthorized { .. })), "{r:?}");

    // The remaining owner still can.
    let r: Result<DeleteVaultResponse, FactoryError> = s.call_as(ops, "delete_vault", (vault,));
    assert_eq!(
        r,
        Ok(DeleteVaultResponse {
            canister_deleted: true
        })
    );
    assert!(!s.ic.canister_exists(vault));
}

/// A personal vault for `user` as the app would ask for it, with `change` applied.
fn personal(
    s: &Setup,
    user: Principal,
    change: impl Fn(&mut CreateVaultRequest),
) -> CreateVaultRequest {
    let mut req = s.personal_request(user);
    change(&mut req);
    req
}

#[test]
fn should_refuse_an_app_choosing_the_settings_of_a_personal_vault() {
    let mut s = Setup::new();
    let alice = principal("alice");
    let spy = s.app_admin;
    let cases: Vec<(&str, CreateVaultRequest)> = vec![
        ("readers", personal(&s, alice, |r| r.readers = vec![spy])),
        (
            "retention",
            personal(&s, alice, |r| {
                r.retention = Some(RetentionPolicy {
                    keep_last: 1,
                    keep_daily: 0,
                    keep_weekly: 0,
                })
            }),
        ),
        (
            "managed_upgrades",
            personal(&s, alice, |r| r.managed_upgrades = true),
        ),
    ];
    for (what, req) in cases {
        let (r, refunded) = s.create(&req, REQUIRED);
        assert!(
            matches!(r, Err(FactoryError::InvalidRequest(ref m)) if m.contains("user")),
            "{what}: {r:?}"
        );
        assert_eq!(refunded, REQUIRED, "{what}: nothing taken");
    }
    assert!(s.created_canisters().is_empty());
    // Without settings of its own the app may ask; the user then decides on the vault.
    let vault = s
        .create(&personal(&s, alice, |_| {}), REQUIRED)
        .0
        .expect("personal vault")
        .vault;
    assert_eq!(
        (vault.readers, vault.controllers, vault.managed_upgrades),
        (vec![], vec![alice], false)
    );
}

#[test]
fn should_leave_a_vault_opted_out_after_the_fleet_upgrade_started() {
    let mut s = Setup::new();
    let ops = principal("ops");
    let stays = app_vault(&mut s, vec![ops]).canister_id;
    let goes = app_vault(&mut s, vec![ops]).canister_id;
    let left = app_vault(&mut s, vec![ops]).canister_id;
    let v2 = s.upload(
        "2.0.0",
        &with_custom_section(&wasm(VAULT_WASM), "canvault:release", b"2.0.0"),
        1024 * 1024,
    );
    let started: Result<FleetUpgradeStatus, FactoryError> = s.admin_call(
        "start_fleet_upgrade",
        (StartFleetUpgradeRequest { version: v2.hash },),
    );
    assert_eq!(started.unwrap().pending, 3);
    // The owner opts out after the rollout planned the vault.
    let r: Result<VaultInfo, FactoryError> = s.call_as(
        ops,
        "set_managed_upgrades",
        (SetManagedUpgradesRequest {
            canister_id: stays,
            managed: false,
        },),
    );
    assert!(!r.unwrap().managed_upgrades);
    // Another owner takes the factory out of the controllers, without telling it.
    s.ic.update_canister_settings(
        left,
        Some(ops),
        CanisterSettings {
            controllers: Some(vec![ops]),
            ..CanisterSettings::default()
        },
    )
    .unwrap();
    let st: Result<FleetUpgradeStatus, FactoryError> = s.admin_call(
        "run_fleet_batch",
        (RunFleetBatchRequest { max_vaults: 10 },),
    );
    let st = st.unwrap();
    assert!(st.finished);
    assert_eq!((st.upgraded, st.skipped, st.failed), (1, 2, 0));
    assert_eq!(
        s.module_hash(stays, ops),
        Some(s.v1.hash.0.to_vec()),
        "the opted-out vault keeps its module"
    );
    assert_eq!(s.module_hash(left, ops), Some(s.v1.hash.0.to_vec()));
    assert_eq!(s.module_hash(goes, ops), Some(v2.hash.0.to_vec()));
    let (lines, _) = s.fleet_lines(10);
    let state = |id| {
        lines
            .iter()
            .find(|l| l.canister_id == id)
            .expect("listed")
            .state
            .clone()
    };
    assert_eq!(
        state(stays),
        VaultUpgradeState::Skipped {
            reason: SkipReason::OptedOut
        }
    );
    assert_eq!(
        state(left),
        VaultUpgradeState::Skipped {
            reason: SkipReason::NotController
        }
    );
}

/// The status of a rollout is a few counters; its vaults are read in pages.
#[test]
fn should_page_through_the_vaults_of_a_fleet_upgrade() {
    let mut s = Setup::new();
    let ops = principal("ops");
    let mut vaults = Vec::new();
    for _ in 0..5 {
        vaults.push(app_vault(&mut s, vec![ops]).canister_id);
    }
    let v2 = s.upload(
        "2.0.0",
        &with_custom_section(&wasm(VAULT_WASM), "canvault:release", b"2.0.0"),
        1024 * 1024,
    );
    let started: Result<FleetUpgradeStatus, FactoryError> = s.admin_call(
        "start_fleet_upgrade",
        (StartFleetUpgradeRequest { version: v2.hash },),
    );
    let started = started.unwrap();
    assert_eq!((started.total, started.pending), (5, 5));
    let (lines, pages) = s.fleet_lines(2);
    assert_eq!(pages, 3);
    let mut listed: Vec<Principal> = lines.iter().map(|l| l.canister_id).collect();
    listed.dedup();
    assert_eq!(listed, sorted(vaults));
    assert!(lines.iter().all(|l| l.state == VaultUpgradeState::Pending));
    let st: Result<FleetUpgradeStatus, FactoryError> =
        s.admin_call("run_fleet_batch", (RunFleetBatchRequest { max_vaults: 3 },));
    assert_eq!(st.unwrap().pending, 2);
    let (lines, _) = s.fleet_lines(1_000);
    let upgraded = lines
        .iter()
        .filter(|l| matches!(l.state, VaultUpgradeState::Upgraded { .. }))
        .count();
    assert_eq!(upgraded, 3);
}

#[test]
fn should_refuse_anonymous_ingress_before_the_method_runs() {
    let mut s = Setup::new();
    let req = s.app_request(principal("ops"), principal("ops"));
    let r = s.ic.update_call(
        s.factory,
        Principal::anonymous(),
        "create_vault",
        Encode!(&req).unwrap(),
    );
    let reject = r.expect_err("refused by canister_inspect_message");
    assert_eq!(reject.code, RejectCode::CanisterReject, "{reject:?}");
    assert!(reject.message.contains("IC0406"), "{reject:?}");
}
