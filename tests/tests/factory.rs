//! The factory canister on the in-process IC: vault creation across subnets through the
//! cycles minting canister, exact cycle accounting, a failure injected at each
//! deployment step then `resume_deployment`, quotas, fleet upgrades over vaults holding
//! snapshots, admin-only endpoints, personal vaults, top-ups and cancellation.
//!
//! Topology: subnet 0 hosts the app (a `factory-test-wallet` canister: ingress cannot
//! carry cycles, so the app pays through it), subnet 2 the factory; vaults go wherever
//! the factory puts them. Build the wasm first: `scripts/build-wasm.sh`.

mod factory_support;

#[allow(clippy::wildcard_imports)]
use factory_support::*;

use candid::{Encode, Principal};
use canvault_factory_api::{
    BeginUploadRequest, CreateVaultRequest, CreateVaultResponse, DeleteVaultResponse,
    DeploymentInfo, FactoryConfig, FactoryError, FactoryStatus, FleetUpgradeStatus, Permission,
    QuotaKind, Quotas, RecoverDeploymentRequest, RunFleetBatchRequest, SetManagedUpgradesRequest,
    SkipReason, Stage, StartFleetUpgradeRequest, Step, SubnetChoice, TopUpRequest, TopUpResponse,
    UploadChunkRequest, VaultInfo, VaultKind, VaultUpgradeState, VersionInfo,
};
use canvault_protocol::Hash256;
use canvault_protocol::vault_api::{Role, RoleChange, SnapshotInfo, SnapshotState, VaultError};
use canvault_scenarios::vault::{VaultClient, noise_image};
use canvault_scenarios::{install, principal, wasm};
use ic_harness::cmc_types::{BAD_REQUEST_CYCLES_PENALTY, CMC_PRINCIPAL};
use ic_harness::{RejectCode, SubnetId};
use ic_management_canister_types::CanisterStatusType;
use serde_bytes::ByteBuf;

#[test]
fn should_create_a_vault_on_another_subnet_with_exactly_the_requested_roles_and_controllers() {
    let mut s = Setup::new();
    let (ops, auditor) = (principal("ops"), principal("auditor"));
    let req = s.app_request(ops, auditor);
    let status: FactoryStatus = s.query_as(s.admin, "status", ());
    assert_eq!(
        (status.creation_fee, status.fixed_cost),
        (CREATION_FEE, CREATION_FEE + SERVICE_FEE)
    );
    let (wallet0, factory0) = (s.books(s.app), s.books(s.factory));
    let (factory_burned0, factory_sent0) = (
        s.ic.metrics(s.factory).cycles_burned,
        s.ic.metrics(s.factory).bytes_sent,
    );
    let rounds0 = s.ic.rounds();
    let extra = 123_456_789;
    let (r, refunded) = s.create(&req, REQUIRED + extra);
    let created = r.expect("create_vault");
    let vault = created.vault.canister_id;

    // Placement: a default subnet other than the app's, chosen in rotation (deployment 0
    // takes the first of the others in principal order).
    let mut others: Vec<SubnetId> = s.subnets[1..].to_vec();
    others.sort();
    assert_eq!(created.vault.subnet, Some(others[0]));
    assert_eq!(s.ic.get_subnet(vault), Some(others[0]));
    assert_ne!(s.ic.get_subnet(vault), s.ic.get_subnet(s.app));

    // Roles and controllers exactly as requested (the factory stays controller for
    // managed upgrades; the app is only a writer).
    let expected = VaultInfo {
        canister_id: vault,
        kind: VaultKind::App { app: s.app },
        owners: vec![ops],
        writers: vec![s.app],
        readers: vec![auditor],
        controllers: vec![ops, s.factory],
        subnet: Some(others[0]),
        version: s.v1.hash,
        managed_upgrades: true,
        created_at_ns: created.vault.created_at_ns,
        deployment_id: 0,
    };
    assert_eq!(created.vault, expected);
    assert_eq!(s.controllers(vault, ops), sorted(vec![ops, s.factory]));
    assert_eq!(
        s.vault_roles(vault, ops),
        sorted_roles(vec![
            (ops, Role::Owner),
            (s.app, Role::Writer),
            (auditor, Role::Reader)
        ])
    );
    assert_eq!(s.module_hash(vault, ops), Some(s.v1.hash.0.to_vec()));
    let registered: Result<VaultInfo, FactoryError> = s.query_as(ops, "get_vault", (vault,));
    assert_eq!(registered, Ok(expected.clone()));
    let of_owner: Vec<VaultInfo> = s.query_as(ops, "vaults_of_owner", (ops,));
    let of_app: Vec<VaultInfo> = s.query_as(ops, "vaults_of_app", (s.app,));
    assert_eq!((of_owner, of_app), (vec![expected.clone()], vec![expected]));

    // The deployment record, and every cycle accounted for.
    let d = s.deployment(0).unwrap();
    assert_eq!(
        (d.stage, d.pending, d.last_error.clone()),
        (Stage::Registered, None, None)
    );
    assert_eq!(
        (d.accepted, d.service_fee, d.funded, d.credit),
        (REQUIRED, SERVICE_FEE, CREATION_FEE + INITIAL, 0)
    );
    assert_eq!(refunded, extra, "only the cost is taken");
    assert_eq!(wallet0.sent_since(s.books(s.app)), REQUIRED as i128);
    let v = s.books(vault);
    assert_eq!(
        v.balance + v.burned,
        INITIAL,
        "the vault starts with exactly the initial balance"
    );
    let f = s.books(s.factory);
    let factory_cost = f.burned - factory0.burned;
    assert_eq!(
        f.balance as i128 - factory0.balance as i128,
        (SERVICE_FEE - factory_cost) as i128
    );
    assert_eq!(s.created_canisters(), vec![vault]);
    for c in [s.app, s.factory, vault] {
        assert_eq!(s.ic.metrics(c).cycles_burned.lost, 0);
    }
    let fm = s.ic.metrics(s.factory).cycles_burned;
    let vm = s.ic.metrics(vault);
    println!(
        "vault creation: {} rounds; the factory paid {factory_cost} cycles in all (calls {}, \
         bytes {}, executions {}, instructions {}) and sent \
         {} bytes; the vault paid {} cycles for its install ({} instructions, {} executions); \
         module {} bytes",
        s.ic.rounds() - rounds0,
        fm.calls - factory_burned0.calls,
        fm.bytes - factory_burned0.bytes,
        fm.execution - factory_burned0.execution,
        fm.instructions - factory_burned0.instructions,
        s.ic.metrics(s.factory).bytes_sent - factory_sent0,
        v.burned,
        vm.instructions,
        vm.executions,
        s.v1.size,
    );
    assert!(
        factory_cost < SERVICE_FEE,
        "the service fee covers the factory's costs"
    );

    // The app (a writer) can push a snapshot right away.
    let image = noise_image(8, CS, 1);
    let snap = VaultClient { id: vault }.backup(&mut s.ic, s.app, &image, CS, 1);
    assert_eq!(snap.state, SnapshotState::Complete);
}

#[test]
fn should_refuse_too_few_cycles_and_take_nothing() {
    let mut s = Setup::new();
    let req = s.app_request(principal("ops"), principal("auditor"));
    let (wallet0, factory0) = (s.books(s.app), s.books(s.factory));
    let (r, refunded) = s.create(&req, REQUIRED - 1);
    assert_eq!(
        r,
        Err(FactoryError::InsufficientCycles {
            attached: REQUIRED - 1,
            required: REQUIRED
        })
    );
    assert_eq!(refunded, REQUIRED - 1);
    assert_eq!(
        wallet0.sent_since(s.books(s.app)),
        0,
        "the app paid only its own call"
    );
    assert_eq!(
        factory0.sent_since(s.books(s.factory)),
        0,
        "the factory took nothing"
    );
    assert!(s.created_canisters().is_empty());
    assert_eq!(s.deployment(0), Err(FactoryError::DeploymentNotFound(0)));
    let status: FactoryStatus = s.query_as(s.admin, "status", ());
    assert_eq!((status.vaults, status.open_deployments), (0, 0));
    // A request below the minimum initial balance is refused the same way.
    let small = CreateVaultRequest {
        initial_cycles: status.config.min_initial_cycles - 1,
        ..req
    };
    let (r, refunded) = s.create(&small, REQUIRED);
    assert!(matches!(r, Err(FactoryError::InvalidRequest(_))), "{r:?}");
    assert_eq!(refunded, REQUIRED);
    assert!(s.created_canisters().is_empty());
}

/// Where a fault hits a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The system rejects the call of `step`: nothing happened.
    RejectBefore(Step),
    /// The callback of `step` traps after the effect: its result is lost.
    TrapAfter(Step),
}

/// Runs a deployment of a vault for `user` (personal, unmanaged: the factory leaves the
/// controllers) or the app's own vault, with `fault` injected; checks the record it
/// leaves; resumes (or recovers) it; checks the vault is complete and alone and that no
/// cycle was lost beyond the fees.
fn fail_then_resume(fault: Fault) {
    let mut s = Setup::new();
    let (ops, user) = (principal("ops"), principal("user"));
    // A personal vault without managed upgrades ends with the factory out of the
    // controllers, which makes a lost `update_settings` result uncheckable by status.
    let req = match fault {
        Fault::TrapAfter(Step::SetControllers) => CreateVaultRequest {
            kind: VaultKind::Personal { user, app: s.app },
            owners: vec![],
            writers: vec![],
            readers: vec![],
            managed_upgrades: false,
            ..s.app_request(ops, ops)
        },
        _ => s.app_request(ops, ops),
    };
    let owner = if req.managed_upgrades { ops } else { user };
    let req = CreateVaultRequest {
        subnet: SubnetChoice::Subnet {
            subnet: s.subnets[1],
        },
        ..req
    };
    let (wallet0, factory0) = (s.books(s.app), s.books(s.factory));
    let mgmt = Principal::management_canister();
    match fault {
        Fault::RejectBefore(Step::CreateCanister) => {
            s.ic.inject_rejects(s.factory, CMC_PRINCIPAL, 1, RejectCode::SysTransient)
        }
        Fault::RejectBefore(Step::InstallCode) => {
            s.ic.inject_rejects(s.factory, mgmt, 1, RejectCode::SysTransient)
        }
        _ => {}
    }
    let msg = s.submit("create_vault", &req, REQUIRED);
    match fault {
        Fault::RejectBefore(Step::SetControllers) => {
            s.tick_until(msg, "installed", |s| {
                s.deployment(0)
                    .is_ok_and(|d| d.stage == Stage::CodeInstalled)
            });
            s.ic.inject_rejects(s.factory, mgmt, 1, RejectCode::SysTransient);
        }
        Fault::TrapAfter(Step::InstallCode) => {
            s.tick_until(msg, "install executed", |s| {
                s.deployment(0)
                    .ok()
                    .and_then(|d| d.canister_id)
                    .is_some_and(|v| s.ic.metrics(v).executions > 0)
            });
            s.ic.trap_next_execution(s.factory);
        }
        Fault::TrapAfter(step) => {
            s.tick_until(msg, "call sent", |s| {
                s.deployment(0).is_ok_and(|d| d.pending == Some(step))
            });
            s.ic.trap_next_execution(s.factory);
        }
        Fault::RejectBefore(_) => {}
    }
    let (r, refunded) = s.finish::<Result<CreateVaultResponse, FactoryError>>(msg);
    assert_eq!(refunded, 0);
    let d = s.deployment(0).unwrap();
    let created = s.created_canisters();
    match fault {
        Fault::RejectBefore(step) => {
            let message = d.last_error.clone().expect("recorded").message;
            assert_eq!(
                r,
                Ok(Err(FactoryError::DeploymentFailed {
                    deployment_id: 0,
                    step,
                    message,
                    retryable: true
                }))
            );
            assert_eq!(d.pending, None);
            assert_eq!(
                d.last_error.map(|e| (e.step, e.retryable)),
                Some((step, true))
            );
        }
        Fault::TrapAfter(step) => {
            let rejected = r.expect_err("the callback trapped: no reply");
            assert_eq!(
                rejected.code,
                RejectCode::CanisterError as u32,
                "{rejected:?}"
            );
            assert_eq!(d.pending, Some(step), "the lost result stays visible");
        }
    }
    // What each fault leaves: exactly what the record says.
    match fault {
        Fault::RejectBefore(Step::CreateCanister) => {
            assert_eq!(
                (d.stage, d.canister_id, d.credit),
                (Stage::Accepted, None, CREATION_FEE + INITIAL)
            );
            assert!(created.is_empty());
        }
        Fault::TrapAfter(Step::CreateCanister) => {
            assert_eq!((d.stage, d.canister_id), (Stage::Accepted, None));
            assert_eq!(
                created.len(),
                1,
                "the CMC created it, the factory never learnt its id"
            );
        }
        Fault::RejectBefore(Step::InstallCode) | Fault::TrapAfter(Step::InstallCode) => {
            assert_eq!(d.stage, Stage::CanisterCreated);
            assert_eq!(d.canister_id, Some(created[0]));
        }
        _ => {
            assert_eq!(d.stage, Stage::CodeInstalled);
            assert_eq!(d.canister_id, Some(created[0]));
        }
    }
    assert_eq!(d.accepted, REQUIRED);

    // Resume (the requester, no cycles attached). A lost CMC reply needs the canister id.
    let (resumed, _) =
        s.app_call::<_, Result<CreateVaultResponse, FactoryError>>("resume_deployment", &0u64, 0);
    let done = if fault == Fault::TrapAfter(Step::CreateCanister) {
        assert_eq!(
            resumed,
            Err(FactoryError::OutcomeUnknown {
                deployment_id: 0,
                step: Step::CreateCanister
            })
        );
        let req = RecoverDeploymentRequest {
            deployment_id: 0,
            canister_id: created[0],
        };
        let recovered: Result<CreateVaultResponse, FactoryError> =
            s.admin_call("recover_deployment", (req,));
        recovered.expect("recovered")
    } else {
        resumed.expect("resumed")
    };
    let vault = done.vault.canister_id;
    assert_eq!(s.created_canisters(), vec![vault], "exactly one canister");
    let d = s.deployment(0).unwrap();
    assert_eq!(
        (d.stage, d.pending, d.credit, d.funded),
        (Stage::Registered, None, 0, CREATION_FEE + INITIAL)
    );
    let runs = if fault == Fault::TrapAfter(Step::CreateCanister) {
        3
    } else {
        2
    };
    assert_eq!(d.attempts, runs, "create_vault, then each resume");
    assert_eq!(s.module_hash(vault, owner), Some(s.v1.hash.0.to_vec()));
    let expected_controllers = if req.managed_upgrades {
        sorted(vec![ops, s.factory])
    } else {
        vec![user]
    };
    assert_eq!(s.controllers(vault, owner), expected_controllers);
    assert_eq!(sorted(done.vault.controllers.clone()), expected_controllers);
    let registered: Result<VaultInfo, FactoryError> = s.query_as(owner, "get_vault", (vault,));
    assert_eq!(registered, Ok(done.vault));
    // Cycles: the app paid the cost once; the vault got exactly its initial balance; the
    // factory kept the service fee less its own fees; nothing was lost anywhere.
    assert_eq!(wallet0.sent_since(s.books(s.app)), REQUIRED as i128);
    let v = s.books(vault);
    assert_eq!(v.balance + v.burned, INITIAL);
    let f = s.books(s.factory);
    assert_eq!(
        f.balance as i128 - factory0.balance as i128,
        SERVICE_FEE as i128 - (f.burned - factory0.burned) as i128
    );
    for c in [s.app, s.factory, vault] {
        assert_eq!(s.ic.metrics(c).cycles_burned.lost, 0);
    }
    let status: FactoryStatus = s.query_as(s.admin, "status", ());
    assert_eq!((status.vaults, status.open_deployments), (1, 0));
}

#[test]
fn should_resume_after_the_create_call_is_rejected() {
    fail_then_resume(Fault::RejectBefore(Step::CreateCanister));
}

#[test]
fn should_recover_after_the_create_reply_is_lost() {
    fail_then_resume(Fault::TrapAfter(Step::CreateCanister));
}

#[test]
fn should_resume_after_the_install_is_rejected() {
    fail_then_resume(Fault::RejectBefore(Step::InstallCode));
}

#[test]
fn should_resume_after_the_install_reply_is_lost() {
    fail_then_resume(Fault::TrapAfter(Step::InstallCode));
}

#[test]
fn should_resume_after_the_controllers_call_is_rejected() {
    fail_then_resume(Fault::RejectBefore(Step::SetControllers));
}

#[test]
fn should_resume_and_register_after_the_controllers_reply_is_lost() {
    fail_then_resume(Fault::TrapAfter(Step::SetControllers));
}

#[test]
fn should_cancel_a_refused_creation_and_give_back_all_but_the_fees() {
    let mut s = Setup::new();
    let wallet0 = s.books(s.app);
    let nowhere = Principal::from_slice(&[9; 29]);
    let req = CreateVaultRequest {
        subnet: SubnetChoice::Subnet { subnet: nowhere },
        ..s.app_request(principal("ops"), principal("ops"))
    };
    let (r, _) = s.create(&req, REQUIRED);
    let Err(FactoryError::DeploymentFailed {
        deployment_id: 0,
        step: Step::CreateCanister,
        retryable: false,
        message,
    }) = r
    else {
        panic!("{r:?}")
    };
    assert!(message.contains("does not exist"), "{message}");
    let d = s.deployment(0).unwrap();
    let credit = CREATION_FEE + INITIAL - BAD_REQUEST_CYCLES_PENALTY;
    assert_eq!(
        (d.stage, d.credit, d.canister_id),
        (Stage::Accepted, credit, None)
    );
    assert!(s.created_canisters().is_empty());
    let (cancelled, _) =
        s.app_call::<_, Result<DeploymentInfo, FactoryError>>("cancel_deployment", &0u64, 0);
    let cancelled = cancelled.expect("cancelled");
    assert_eq!(
        (cancelled.stage, cancelled.refunded, cancelled.credit),
        (Stage::Cancelled, credit, 0)
    );
    assert_eq!(
        wallet0.sent_since(s.books(s.app)),
        (SERVICE_FEE + BAD_REQUEST_CYCLES_PENALTY) as i128,
        "the app paid the service fee and the CMC's penalty, nothing else"
    );
    let (again, _) =
        s.app_call::<_, Result<DeploymentInfo, FactoryError>>("cancel_deployment", &0u64, 0);
    assert_eq!(
        again,
        Err(FactoryError::DeploymentFinished {
            id: 0,
            stage: Stage::Cancelled
        })
    );
    let (resumed, _) =
        s.app_call::<_, Result<CreateVaultResponse, FactoryError>>("resume_deployment", &0u64, 0);
    assert_eq!(
        resumed,
        Err(FactoryError::DeploymentFinished {
            id: 0,
            stage: Stage::Cancelled
        })
    );
}

#[test]
fn should_refuse_creations_beyond_the_quotas() {
    let mut s = Setup::new();
    let set = |s: &mut Setup, vaults, per_day| {
        let config = FactoryConfig {
            quotas: Quotas {
                max_vaults_per_principal: vaults,
                max_creations_per_day: per_day,
            },
            ..FactoryConfig::default()
        };
        let r: Result<(), FactoryError> = s.admin_call("set_config", (config,));
        r.unwrap();
    };
    set(&mut s, 1, 10);
    let req = s.app_request(principal("ops"), principal("ops"));
    s.create(&req, REQUIRED).0.expect("first vault");
    let (r, refunded) = s.create(&req, REQUIRED);
    assert_eq!(
        r,
        Err(FactoryError::QuotaExceeded {
            quota: QuotaKind::VaultsPerPrincipal,
            limit: 1,
            used: 1
        })
    );
    assert_eq!(refunded, REQUIRED, "nothing taken");
    assert_eq!(s.created_canisters().len(), 1);
    set(&mut s, 10, 2);
    s.create(&req, REQUIRED).0.expect("second vault today");
    let (r, refunded) = s.create(&req, REQUIRED);
    assert_eq!(
        r,
        Err(FactoryError::QuotaExceeded {
            quota: QuotaKind::CreationsPerDay,
            limit: 2,
            used: 2
        })
    );
    assert_eq!(refunded, REQUIRED);
    assert_eq!(s.created_canisters().len(), 2);
    s.ic.advance_time(std::time::Duration::from_secs(86_400));
    s.create(&req, REQUIRED).0.expect("a new day");
    assert_eq!(s.created_canisters().len(), 3);
}

#[test]
fn should_upgrade_a_fleet_from_v1_to_v2_keeping_every_snapshot_complete_and_restorable() {
    let mut s = Setup::new();
    let ops = principal("ops");
    let mut vaults = Vec::new();
    for i in 0..4u64 {
        let req = s.app_request(ops, ops);
        let vault = s
            .create(&req, REQUIRED)
            .0
            .expect("create")
            .vault
            .canister_id;
        // Two snapshots each: the image, then the image with its first chunk changed.
        let client = VaultClient { id: vault };
        let image = noise_image(12, CS, i);
        let first = client.backup(&mut s.ic, s.app, &image, CS, 1);
        let mut changed = image.clone();
        changed[..CS as usize].fill(7);
        let second = client.backup(&mut s.ic, s.app, &changed, CS, 2);
        vaults.push((vault, vec![(first, image), (second, changed)]));
    }
    // The last vault's owner opts out of managed upgrades.
    let opted_out = vaults[3].0;
    let r: Result<VaultInfo, FactoryError> = s.call_as(
        ops,
        "set_managed_upgrades",
        (SetManagedUpgradesRequest {
            canister_id: opted_out,
            managed: false,
        },),
    );
    assert!(!r.unwrap().managed_upgrades);

    let v2_module = with_custom_section(&wasm(VAULT_WASM), "canvault:release", b"2.0.0");
    let v2 = s.upload("2.0.0", &v2_module, 1024 * 1024);
    let started: Result<FleetUpgradeStatus, FactoryError> = s.admin_call(
        "start_fleet_upgrade",
        (StartFleetUpgradeRequest { version: v2.hash },),
    );
    let started = started.unwrap();
    assert_eq!(
        (started.pending, started.skipped, started.finished),
        (3, 1, false)
    );
    let again: Result<FleetUpgradeStatus, FactoryError> = s.admin_call(
        "start_fleet_upgrade",
        (StartFleetUpgradeRequest { version: v2.hash },),
    );
    assert_eq!(again, Err(FactoryError::FleetUpgradeRunning(started.id)));
    let factory0 = s.books(s.factory);
    let mut batches = 0;
    let status = loop {
        let st: Result<FleetUpgradeStatus, FactoryError> =
            s.admin_call("run_fleet_batch", (RunFleetBatchRequest { max_vaults: 2 },));
        let st = st.unwrap();
        batches += 1;
        if st.finished {
            break st;
        }
    };
    assert_eq!(batches, 2);
    println!(
        "fleet upgrade of 3 vaults: the factory paid {} cycles",
        s.books(s.factory).burned - factory0.burned
    );
    assert_eq!(
        (status.upgraded, status.skipped, status.failed, status.total),
        (3, 1, 0, 4)
    );
    let (lines, pages) = s.fleet_lines(3);
    assert_eq!((lines.len(), pages), (4, 2));
    for line in &lines {
        assert_eq!(line.from_version, s.v1.hash);
        if line.canister_id == opted_out {
            assert_eq!(
                line.state,
                VaultUpgradeState::Skipped {
                    reason: SkipReason::OptedOut
                }
            );
        } else {
            assert!(
                matches!(line.state, VaultUpgradeState::Upgraded { .. }),
                "{line:?}"
            );
        }
    }
    for (vault, snapshots) in &vaults {
        let expected = if *vault == opted_out {
            s.v1.hash
        } else {
            v2.hash
        };
        assert_eq!(s.module_hash(*vault, ops), Some(expected.0.to_vec()));
        let info: Result<VaultInfo, FactoryError> = s.query_as(ops, "get_vault", (*vault,));
        assert_eq!(info.unwrap().version, expected);
        assert_eq!(
            s.ic.canister_status(*vault, Some(ops)).unwrap().status,
            CanisterStatusType::Running
        );
        let client = VaultClient { id: *vault };
        assert_eq!(
            s.vault_roles(*vault, ops),
            sorted_roles(vec![
                (ops, Role::Owner),
                (ops, Role::Reader),
                (s.app, Role::Writer)
            ]),
            "roles survive the upgrade"
        );
        for (snap, image) in snapshots {
            let now: SnapshotInfo = client
                .snapshot(&mut s.ic, ops, snap.id)
                .expect("snapshot kept");
            assert_eq!(now.state, SnapshotState::Complete);
            assert_eq!(now.root, snap.root);
            assert_eq!(
                client.download(&mut s.ic, ops, snap.id, 5),
                *image,
                "every chunk verified"
            );
        }
        // Still accepting backups after the upgrade.
        let next = client.backup(&mut s.ic, s.app, &noise_image(4, CS, 99), CS, 3);
        assert_eq!(next.state, SnapshotState::Complete);
    }
    // The upgraded fleet restores: one snapshot pushed into a fresh target.
    let (vault, snapshots) = &vaults[0];
    let (snap, _) = &snapshots[1];
    let target = install(&mut s.ic, 0, "vault_test_target", Encode!().unwrap(), ops);
    s.ic.update_call(target, ops, "arm", Encode!(vault, &snap.id).unwrap())
        .expect("arm");
    let client = VaultClient { id: *vault };
    let job: canvault_protocol::vault_api::RestoreJob = client
        .call(
            &mut s.ic,
            ops,
            "start_restore",
            (canvault_protocol::vault_api::StartRestoreRequest {
                snapshot_id: snap.id,
                target,
            },),
        )
        .expect("start_restore");
    for _ in 0..300 {
        if client.restore_job(&mut s.ic, ops, job.id).state
            == canvault_protocol::vault_api::RestoreJobState::Done
        {
            break;
        }
        s.ic.tick();
    }
    let restored: Option<(u64, Hash256, u64)> = candid::decode_one(
        &s.ic
            .query_call(target, ops, "restored", Encode!().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        restored,
        Some((snap.id, snap.root.unwrap(), snap.image_size))
    );
}

#[test]
fn should_reject_unauthorized_calls_to_every_admin_endpoint() {
    let mut s = Setup::new();
    let stranger = principal("stranger");
    let before: (FactoryStatus, Vec<VersionInfo>, Vec<Principal>) = (
        s.query_as(s.admin, "status", ()),
        s.query_as(s.admin, "list_versions", ()),
        s.query_as(s.admin, "list_admins", ()),
    );
    let upload = BeginUploadRequest {
        label: "evil".into(),
        sha256: Hash256::of(b"evil"),
        size: 4,
    };
    let chunk = UploadChunkRequest {
        upload_id: 1,
        offset: 0,
        bytes: ByteBuf::from(b"evil".to_vec()),
    };
    let recover = RecoverDeploymentRequest {
        deployment_id: 0,
        canister_id: stranger,
    };
    let calls: Vec<(&str, Vec<u8>, bool)> = vec![
        ("begin_version_upload", Encode!(&upload).unwrap(), false),
        ("upload_version_chunk", Encode!(&chunk).unwrap(), false),
        ("commit_version_upload", Encode!(&1u64).unwrap(), false),
        ("abort_version_upload", Encode!(&1u64).unwrap(), false),
        ("list_uploads", Encode!().unwrap(), true),
        ("set_current_version", Encode!(&s.v1.hash).unwrap(), false),
        ("delete_version", Encode!(&s.v1.hash).unwrap(), false),
        (
            "set_config",
            Encode!(&FactoryConfig::default()).unwrap(),
            false,
        ),
        ("set_admins", Encode!(&vec![stranger]).unwrap(), false),
        ("recover_deployment", Encode!(&recover).unwrap(), false),
        (
            "start_fleet_upgrade",
            Encode!(&StartFleetUpgradeRequest { version: s.v1.hash }).unwrap(),
            false,
        ),
        (
            "run_fleet_batch",
            Encode!(&RunFleetBatchRequest { max_vaults: 1 }).unwrap(),
            false,
        ),
        ("cancel_fleet_upgrade", Encode!().unwrap(), false),
    ];
    let denied = FactoryError::Unauthorized {
        caller: stranger,
        needed: Permission::Admin,
    };
    for (method, arg, query) in calls {
        // From a user: a query answers with the typed error; an update is refused by
        // `canister_inspect_message` before it runs. From a canister (the app), which
        // inspection does not see: the typed error.
        if query {
            let reply =
                s.ic.query_call(s.factory, stranger, method, arg.clone())
                    .unwrap_or_else(|e| panic!("{method} trapped instead of answering: {e:?}"));
            let decoded: Result<candid::Reserved, FactoryError> =
                candid::decode_one(&reply).expect(method);
            assert_eq!(decoded.err(), Some(denied.clone()), "{method}");
        } else {
            let reject =
                s.ic.update_call(s.factory, stranger, method, arg.clone())
                    .expect_err(method);
            assert_eq!(
                reject.code,
                RejectCode::CanisterReject,
                "{method}: {reject:?}"
            );
            assert!(reject.message.contains("IC0406"), "{method}: {reject:?}");
        }
        if !query {
            let req = ForwardRequest {
                target: s.factory,
                method: method.into(),
                arg: ByteBuf::from(arg),
                cycles: 0,
            };
            let reply =
                s.ic.update_call(s.app, stranger, "forward", Encode!(&req).unwrap())
                    .unwrap();
            let r: ForwardResponse = candid::decode_one(&reply).unwrap();
            let decoded: Result<candid::Reserved, FactoryError> =
                candid::decode_one(&r.result.expect("answered")).expect(method);
            assert_eq!(
                decoded.err(),
                Some(FactoryError::Unauthorized {
                    caller: s.app,
                    needed: Permission::Admin
                }),
                "{method} from a canister"
            );
        }
    }
    let after: (FactoryStatus, Vec<VersionInfo>, Vec<Principal>) = (
        s.query_as(s.admin, "status", ()),
        s.query_as(s.admin, "list_versions", ()),
        s.query_as(s.admin, "list_admins", ()),
    );
    assert_eq!(
        (
            before.0.config,
            before.0.current_version.clone(),
            before.1.clone(),
            before.2.clone()
        ),
        (after.0.config, after.0.current_version, after.1, after.2),
        "nothing changed"
    );
    // Deployments are the requester's (or an admin's) business.
    let req = s.app_request(principal("ops"), principal("ops"));
    s.create(&req, REQUIRED).0.expect("create");
    for method in ["resume_deployment", "cancel_deployment"] {
        let r: Result<candid::Reserved, FactoryError> = s.call_as(stranger, method, (0u64,));
        assert_eq!(
            r.err(),
            Some(FactoryError::Unauthorized {
                caller: stranger,
                needed: Permission::Requester
            })
        );
    }
    let r: Result<DeploymentInfo, FactoryError> = s.query_as(stranger, "get_deployment", (0u64,));
    assert!(matches!(r, Err(FactoryError::Unauthorized { .. })));
}

#[test]
fn should_make_the_user_the_owner_of_a_personal_vault_and_the_app_only_a_writer() {
    let mut s = Setup::new();
    let (alice, bob) = (principal("alice"), principal("bob"));
    let personal = |s: &Setup, user, managed| CreateVaultRequest {
        managed_upgrades: managed,
        ..s.personal_request(user)
    };
    // The app asks on Alice's behalf; she is the only owner and the only controller.
    let req = personal(&s, alice, false);
    let vault = s.create(&req, REQUIRED).0.expect("personal vault").vault;
    assert_eq!(
        (
            vault.owners.clone(),
            vault.writers.clone(),
            vault.controllers.clone()
        ),
        (vec![alice], vec![s.app], vec![alice])
    );
    let id = vault.canister_id;
    assert_eq!(s.controllers(id, alice), vec![alice]);
    assert_eq!(
        s.vault_roles(id, alice),
        sorted_roles(vec![(alice, Role::Owner), (s.app, Role::Writer)])
    );
    let (again, refunded) = s.create(&req, REQUIRED);
    assert_eq!(again, Err(FactoryError::PersonalVaultExists(id)));
    assert_eq!(refunded, REQUIRED);

    // The app pushes Alice's data set; she lists, downloads and deletes it.
    let client = VaultClient { id };
    let data = noise_image(6, CS, 42);
    let snap = client.backup(&mut s.ic, s.app, &data, CS, 1);
    assert_eq!(client.list(&mut s.ic, alice, None), vec![snap.clone()]);
    assert_eq!(client.download(&mut s.ic, alice, snap.id, 3), data);

    // Neither the app nor its admin can read, delete or take the vault.
    for who in [s.app, s.app_admin] {
        let listed: Result<Vec<SnapshotInfo>, VaultError> =
            client.read(&mut s.ic, who, "list_snapshots", (None::<Principal>,));
        assert!(
            matches!(
                listed,
                Err(VaultError::Unauthorized {
                    needed: Role::Reader,
                    ..
                })
            ),
            "{listed:?}"
        );
        // The vault's inspect_message drops the ingress (IC0406) before the method
        // would answer Unauthorized.
        let deleted = s.ic.update_candid::<_, (Result<(), VaultError>,)>(
            client.id,
            who,
            "delete_snapshot",
            (snap.id,),
        );
        assert!(
            matches!(&deleted, Err(e) if format!("{e:?}").contains("IC0406"))
                || matches!(
                    deleted,
                    Ok((Err(VaultError::Unauthorized {
                        needed: Role::Owner,
                        ..
                    }),))
                ),
            "{deleted:?}"
        );
        let r =
            s.ic.stop_canister(id, Some(who))
                .expect_err("not a controller");
        assert_eq!(r.code, RejectCode::CanisterError);
        assert!(s.ic.delete_canister(id, Some(who)).is_err());
        let by_factory: Result<DeleteVaultResponse, FactoryError> =
            s.call_as(who, "delete_vault", (id,));
        assert_eq!(
            by_factory,
            Err(FactoryError::Unauthorized {
                caller: who,
                needed: Permission::VaultOwner
            })
        );
    }
    let (by_app, _) =
        s.app_call::<_, Result<DeleteVaultResponse, FactoryError>>("delete_vault", &id, 0);
    assert!(matches!(by_app, Err(FactoryError::Unauthorized { .. })));
    assert!(s.ic.canister_exists(id));

    // Alice may grant the app read access, and delete her snapshot.
    let grant: Result<(), VaultError> = client.call(
        &mut s.ic,
        alice,
        "update_roles",
        (vec![RoleChange {
            principal: s.app,
            role: Role::Reader,
            grant: true,
        }],),
    );
    grant.unwrap();
    assert_eq!(client.list(&mut s.ic, s.app, None).len(), 1);
    let deleted: Result<(), VaultError> =
        client.call(&mut s.ic, alice, "delete_snapshot", (snap.id,));
    deleted.unwrap();
    assert!(client.list(&mut s.ic, alice, None).is_empty());

    // Alice leaves: the factory forgets the vault (it is not a controller), she deletes it.
    let left: Result<DeleteVaultResponse, FactoryError> = s.call_as(alice, "delete_vault", (id,));
    assert_eq!(
        left,
        Ok(DeleteVaultResponse {
            canister_deleted: false
        })
    );
    let gone: Result<VaultInfo, FactoryError> = s.query_as(alice, "get_vault", (id,));
    assert_eq!(gone, Err(FactoryError::VaultNotFound(id)));
    s.ic.stop_canister(id, Some(alice)).unwrap();
    s.ic.delete_canister(id, Some(alice)).unwrap();

    // The app cannot choose managed upgrades for Bob.
    let (r, refunded) = s.create(&personal(&s, bob, true), REQUIRED);
    assert!(matches!(r, Err(FactoryError::InvalidRequest(_))), "{r:?}");
    assert_eq!(refunded, REQUIRED);
    // Bob opts in himself: he adds the factory as a controller, then tells the factory;
    // it then deletes on his word.
    let bobs = s
        .create(&personal(&s, bob, false), REQUIRED)
        .0
        .expect("bob's vault")
        .vault;
    s.ic.update_canister_settings(
        bobs.canister_id,
        Some(bob),
        ic_management_canister_types::CanisterSettings {
            controllers: Some(vec![bob, s.factory]),
            ..Default::default()
        },
    )
    .unwrap();
    let opted: Result<VaultInfo, FactoryError> = s.call_as(
        bob,
        "set_managed_upgrades",
        (SetManagedUpgradesRequest {
            canister_id: bobs.canister_id,
            managed: true,
        },),
    );
    let opted = opted.unwrap();
    assert!(opted.managed_upgrades);
    assert_eq!(sorted(opted.controllers), sorted(vec![bob, s.factory]));
    let r: Result<DeleteVaultResponse, FactoryError> =
        s.call_as(bob, "delete_vault", (bobs.canister_id,));
    assert_eq!(
        r,
        Ok(DeleteVaultResponse {
            canister_deleted: true
        })
    );
    assert!(!s.ic.canister_exists(bobs.canister_id));
    let mine: Vec<VaultInfo> = s.query_as(bob, "vaults_of_owner", (bob,));
    assert!(mine.is_empty());
}

#[test]
fn should_top_up_a_registered_vault_and_return_a_failed_top_up() {
    let mut s = Setup::new();
    let req = s.app_request(principal("ops"), principal("ops"));
    let vault = s
        .create(&req, REQUIRED)
        .0
        .expect("create")
        .vault
        .canister_id;
    let (wallet0, factory0, vault0) = (s.books(s.app), s.books(s.factory), s.books(vault));
    let amount = 2 * T;
    let fee = FactoryConfig::default().top_up_fee;
    let (r, refunded) = s.app_call::<_, Result<TopUpResponse, FactoryError>>(
        "top_up_vault",
        &TopUpRequest { canister_id: vault },
        amount,
    );
    assert_eq!(
        r,
        Ok(TopUpResponse {
            deposited: amount - fee,
            fee
        })
    );
    assert_eq!(refunded, 0);
    assert_eq!(wallet0.sent_since(s.books(s.app)), amount as i128);
    assert_eq!(
        vault0.sent_since(s.books(vault)),
        -((amount - fee) as i128),
        "the vault got all but the fee"
    );
    let f = s.books(s.factory);
    let cost = f.burned - factory0.burned;
    assert_eq!(
        f.balance as i128 - factory0.balance as i128,
        fee as i128 - cost as i128
    );
    assert!(cost < fee, "the fee covers the factory's call");
    println!("top-up: the factory paid {cost} cycles, kept a fee of {fee}");
    // Anyone may top up, but only registered vaults.
    let stranger = s.app;
    let (r, refunded) = s.app_call::<_, Result<TopUpResponse, FactoryError>>(
        "top_up_vault",
        &TopUpRequest {
            canister_id: stranger,
        },
        amount,
    );
    assert_eq!(r, Err(FactoryError::VaultNotFound(stranger)));
    assert_eq!(refunded, amount);
    let (r, refunded) = s.app_call::<_, Result<TopUpResponse, FactoryError>>(
        "top_up_vault",
        &TopUpRequest { canister_id: vault },
        fee,
    );
    assert_eq!(
        r,
        Err(FactoryError::InsufficientCycles {
            attached: fee,
            required: fee + 1
        })
    );
    assert_eq!(refunded, fee);
}

#[test]
fn should_install_a_gzipped_vault_module_for_a_fraction_of_the_cost() {
    use std::io::Write;
    let mut s = Setup::new();
    let ops = principal("ops");
    let cost_of_one = |s: &mut Setup| {
        let before = s.books(s.factory);
        let req = s.app_request(ops, ops);
        let vault = s.create(&req, REQUIRED).0.expect("create").vault;
        (s.books(s.factory).burned - before.burned, vault)
    };
    let (raw_cost, _) = cost_of_one(&mut s);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&wasm(VAULT_WASM)).unwrap();
    let gz = gz.finish().unwrap();
    let v = s.upload("1.0.0+gzip", &gz, 1024 * 1024);
    assert_eq!(v.chunks, 1);
    let r: Result<VersionInfo, FactoryError> = s.admin_call("set_current_version", (v.hash,));
    r.unwrap();
    let (gz_cost, vault) = cost_of_one(&mut s);
    assert_eq!(vault.version, v.hash);
    assert_eq!(
        s.module_hash(vault.canister_id, ops),
        Some(v.hash.0.to_vec())
    );
    let snap = VaultClient {
        id: vault.canister_id,
    }
    .backup(&mut s.ic, s.app, &noise_image(4, CS, 5), CS, 1);
    assert_eq!(snap.state, SnapshotState::Complete);
    println!(
        "factory cost per vault creation: {raw_cost} cycles with the raw module ({} bytes), \
         {gz_cost} with it gzipped ({} bytes)",
        s.v1.size, v.size
    );
    assert!(gz_cost * 2 < raw_cost);
}
