//! The endpoint × role matrix of every canister: each method of its `.did`, called as
//! each role on real wasm, against the permission table beside its code
//! (`canisters/<name>/permissions.md`), which docs/security.md repeats. A new endpoint
//! without a row, a role let through where the table says deny (or refused where it
//! says allow), and a refused call that changed stable memory all fail here.
//! Build the wasm first: `scripts/build-wasm.sh`.

mod factory_support;

use std::collections::BTreeMap;

use candid::{Encode, Principal};
use canvault_factory_api::{
    CreateForkTargetRequest, CreateVaultRequest, SetManagedUpgradesRequest, SubnetChoice,
    TopUpRequest,
};
use canvault_kit::{ArmRestoreRequest, KitError};
use canvault_protocol::vault_api::VaultInit;
use canvault_scenarios::matrix::{PermissionTable, Subject, check_matrix};
use canvault_scenarios::{harness, install, principal};
use factory_support::{REQUIRED, Setup};

const SECURITY_MD: &str = include_str!("../../docs/security.md");

/// Checks the matrix and that docs/security.md carries the same table.
fn assert_matrix(
    name: &str,
    did: &str,
    permissions_md: &str,
    refusals: &[&str],
    setup: impl Fn() -> Subject,
) {
    let table = PermissionTable::parse(permissions_md);
    let rendered = table.render();
    assert!(
        SECURITY_MD.contains(&rendered),
        "docs/security.md must carry the {name} permission table exactly as:\n{rendered}"
    );
    let failures = check_matrix(did, &table, refusals, setup);
    assert!(
        failures.is_empty(),
        "{name}: {} cell(s) disagree with the permission table:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn actors(pairs: &[(&str, Principal)]) -> BTreeMap<String, Principal> {
    pairs.iter().map(|(r, p)| ((*r).to_string(), *p)).collect()
}

#[test]
fn every_vault_endpoint_answers_each_role_as_its_table_says() {
    assert_matrix(
        "vault",
        include_str!("../../canisters/vault/vault.did"),
        include_str!("../../canisters/vault/permissions.md"),
        &[],
        || {
            let mut ic = harness(1);
            let (owner, writer, reader) =
                (principal("owner"), principal("writer"), principal("reader"));
            let init = VaultInit {
                owners: vec![owner],
                writers: vec![writer],
                readers: vec![reader],
                retention: None,
            };
            let vault = install(&mut ic, 0, "canvault_vault", Encode!(&init).unwrap(), owner);
            Subject {
                ic,
                canister: vault,
                actors: actors(&[
                    ("anonymous", Principal::anonymous()),
                    ("stranger", principal("stranger")),
                    ("reader", reader),
                    ("writer", writer),
                    ("owner", owner),
                ]),
                args: BTreeMap::new(),
            }
        },
    );
}

#[test]
fn every_example_app_endpoint_answers_each_role_as_its_table_says() {
    assert_matrix(
        "example app",
        include_str!("../../canisters/example-app/example-app.did"),
        include_str!("../../canisters/example-app/permissions.md"),
        &["NotAMember"],
        || {
            let mut ic = harness(1);
            let (admin, member, vault) =
                (principal("admin"), principal("member"), principal("vault"));
            let app = install(
                &mut ic,
                0,
                "canvault_example_app",
                Encode!().unwrap(),
                admin,
            );
            let (joined,): (Result<u64, candid::Reserved>,) = ic
                .update_candid(app, member, "join", ("member".to_string(),))
                .unwrap();
            joined.expect("a principal may join");
            // The armed vault: every restore endpoint's argument names snapshot 0.
            let arm = ArmRestoreRequest {
                vault,
                snapshot_id: 0,
                expected_root: None,
            };
            let (armed,): (Result<(), KitError>,) = ic
                .update_candid(app, admin, "canvault_arm_restore", (arm,))
                .unwrap();
            armed.expect("the admin arms a restore");
            Subject {
                ic,
                canister: app,
                actors: actors(&[
                    ("anonymous", Principal::anonymous()),
                    ("stranger", principal("stranger")),
                    ("member", member),
                    ("admin", admin),
                    ("vault", vault),
                ]),
                args: BTreeMap::new(),
            }
        },
    );
}

#[test]
fn every_factory_endpoint_answers_each_role_as_its_table_says() {
    assert_matrix(
        "factory",
        include_str!("../../canisters/factory/factory.did"),
        include_str!("../../canisters/factory/permissions.md"),
        &[],
        || {
            let mut s = Setup::new();
            let (owner, co_owner, user) =
                (principal("owner"), principal("co-owner"), principal("user"));
            // The app pays for an app vault owned by two people, managed by the factory...
            let shared = CreateVaultRequest {
                owners: vec![owner, co_owner],
                readers: vec![],
                ..s.app_request(owner, owner)
            };
            let shared = s.create(&shared, REQUIRED).0.expect("an app vault").vault;
            // ... and for a personal vault of its user, which the user alone controls.
            let personal = s.personal_request(user);
            let deployment = s
                .create(&personal, REQUIRED)
                .0
                .expect("a personal vault")
                .deployment_id;
            let vault = shared.canister_id;
            let args = [
                ("create_vault", Encode!(&personal).unwrap()),
                ("cancel_deployment", Encode!(&deployment).unwrap()),
                ("get_deployment", Encode!(&deployment).unwrap()),
                ("resume_deployment", Encode!(&deployment).unwrap()),
                ("resume_fork_target", Encode!(&deployment).unwrap()),
                (
                    "create_fork_target",
                    Encode!(&CreateForkTargetRequest {
                        vault,
                        subnet: SubnetChoice::Default { avoid: None },
                        initial_cycles: factory_support::INITIAL,
                    })
                    .unwrap(),
                ),
                ("delete_vault", Encode!(&vault).unwrap()),
                ("get_vault", Encode!(&vault).unwrap()),
                (
                    "set_managed_upgrades",
                    Encode!(&SetManagedUpgradesRequest {
                        canister_id: vault,
                        managed: false,
                    })
                    .unwrap(),
                ),
                (
                    "top_up_vault",
                    Encode!(&TopUpRequest { canister_id: vault }).unwrap(),
                ),
                ("vaults_of_owner", Encode!(&owner).unwrap()),
                ("vaults_of_app", Encode!(&s.app).unwrap()),
            ];
            Subject {
                actors: actors(&[
                    ("anonymous", Principal::anonymous()),
                    ("stranger", principal("stranger")),
                    ("owner", owner),
                    ("co-owner", co_owner),
                    ("user", user),
                    ("app", s.app),
                    ("admin", s.admin),
                ]),
                args: args.into_iter().map(|(m, a)| (m.to_string(), a)).collect(),
                canister: s.factory,
                ic: s.ic,
            }
        },
    );
}
