//! Upgrades from the previous release's modules (`tests/fixtures/previous/`, built from
//! d973571) to the modules of this tree: every snapshot made before the upgrade still
//! downloads byte for byte and restores into a fresh app, and the upgraded kit and
//! vault keep backing up; the upgraded factory reads back its versions, registry,
//! deployments, settings and fleet upgrade as they were and keeps working. A persistent
//! layout change without its migration fails here.
//! Build the wasm first: `scripts/build-wasm.sh`.

mod factory_support;

use std::io::Read;

use candid::{CandidType, Encode, Principal};
use canvault_factory_api::{
    CreateVaultRequest, DeleteVaultResponse, DeploymentInfo, FactoryConfig, FactoryError,
    FactoryInit, FactoryStatus, FleetUpgradeStatus, Quotas, RunFleetBatchRequest, SkipReason,
    Stage, StartFleetUpgradeRequest, SubnetChoice, VaultInfo, VaultUpgrade, VaultUpgradeState,
    VersionInfo,
};
use canvault_protocol::vault_api::{RestoreJobState, SnapshotState, VaultInit};
use canvault_scenarios::app::AppScenario;
use canvault_scenarios::{principal, wasm};
use factory_support::{FACTORY_WASM, REQUIRED, Setup, VAULT_WASM, with_custom_section};
use flate2::read::GzDecoder;
use ic_harness::RejectCode;
use ic_harness::cmc_types::CMC_PRINCIPAL;
use serde::Deserialize;

const MIB: u64 = 1 << 20;

/// The previous release's module `name` (e.g. `canvault_vault`).
fn previous(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/fixtures/previous/{name}.wasm.gz",
        env!("CARGO_MANIFEST_DIR")
    );
    let gz = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut wasm = Vec::new();
    GzDecoder::new(gz.as_slice())
        .read_to_end(&mut wasm)
        .expect("a gzip file");
    wasm
}

/// A snapshot made by the previous modules: its id, its image as downloaded then, and
/// the app's content digest when it was taken.
struct Made {
    id: u64,
    image: Vec<u8>,
    content: Vec<Vec<u8>>,
}

#[test]
fn snapshots_made_by_the_previous_release_restore_after_upgrading_vault_and_app() {
    let mut s =
        AppScenario::with_modules(previous("canvault_vault"), previous("canvault_example_app"));
    let mut made = Vec::new();
    for (round, bytes) in [(1u64, 3 * MIB), (2, 4 * MIB)] {
        s.fill(s.app, bytes, round);
        let status = s.backup();
        let id = status.last_backup.expect("a backup completed").snapshot_id;
        let content = s.content_digest(s.app);
        let image = s.download(id);
        made.push(Made { id, image, content });
    }

    // Upgrade both the IC way: stop, upgrade to this tree's module, start.
    for (canister, module, arg) in [
        (
            s.vault,
            "canvault_vault",
            Encode!(&None::<VaultInit>).unwrap(),
        ),
        (s.app, "canvault_example_app", Encode!().unwrap()),
    ] {
        s.ic.stop_canister(canister, Some(s.admin)).unwrap();
        s.ic.upgrade_canister(canister, wasm(module), arg, Some(s.admin))
            .unwrap_or_else(|e| panic!("upgrading {module} from the previous release: {e:?}"));
        s.ic.start_canister(canister, Some(s.admin)).unwrap();
    }

    // Every snapshot is still listed as complete, downloads as it did, and restores.
    let listed = s.snapshots();
    for m in &made {
        let info = listed
            .iter()
            .find(|i| i.id == m.id)
            .unwrap_or_else(|| panic!("snapshot {} lost in the upgrade", m.id));
        assert_eq!(info.state, SnapshotState::Complete, "{info:?}");
        assert_eq!(s.download(m.id), m.image, "snapshot {} changed", m.id);

        let subnet = s.ic.topology().app_subnets[2];
        let fresh = s.ic.create_canister_on_subnet(Some(s.admin), None, subnet);
        s.ic.install_canister(
            fresh,
            wasm("canvault_example_app"),
            Encode!().unwrap(),
            Some(s.admin),
        );
        let job = s.restore_into(fresh, m.id);
        assert_eq!(job.state, RestoreJobState::Done, "{job:?}");
        assert_eq!(
            s.content_digest(fresh),
            m.content,
            "snapshot {} restored",
            m.id
        );
    }

    // The upgraded kit continues incrementally from the last snapshot of the old one.
    s.fill(s.app, 5 * MIB, 3);
    let status = s.backup();
    let last = status.last_backup.expect("a backup after the upgrade");
    assert!(last.snapshot_id > made[1].id);
    assert!(
        last.bytes_sent < 3 * MIB,
        "an incremental backup after the upgrade sent {} bytes",
        last.bytes_sent
    );
    let image = s.download(last.snapshot_id);
    assert_eq!(image, s.app_image(s.app));
}

/// The previous release's `FleetUpgradeStatus`: every vault in the reply (the current
/// one has counters, `total`, and pages of vaults through `list_fleet_upgrade_vaults`).
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
struct PreviousFleetStatus {
    id: u64,
    version: canvault_protocol::Hash256,
    started_at_ns: u64,
    pending: u32,
    upgraded: u32,
    skipped: u32,
    failed: u32,
    finished: bool,
    vaults: Vec<VaultUpgrade>,
}

/// Everything the factory answers about its state, read through its interface by its
/// admin: versions, admins, status (less its cycle balance), deployments, the registry
/// by vault, owner and app.
#[derive(Debug, PartialEq)]
struct FactoryState {
    versions: Vec<VersionInfo>,
    admins: Vec<Principal>,
    status: FactoryStatus,
    deployments: Vec<DeploymentInfo>,
    vaults: Vec<Result<VaultInfo, FactoryError>>,
    of_owner: Vec<VaultInfo>,
    of_app: Vec<VaultInfo>,
}

fn factory_state(s: &mut Setup, vaults: &[Principal], owner: Principal) -> FactoryState {
    let admin = s.admin;
    let mut status: FactoryStatus = s.query_as(admin, "status", ());
    status.cycles = 0;
    FactoryState {
        versions: s.query_as(admin, "list_versions", ()),
        admins: s.query_as(admin, "list_admins", ()),
        status,
        deployments: s.query_as(admin, "list_deployments", (0u64, 100u32)),
        vaults: vaults
            .iter()
            .map(|v| s.query_as(admin, "get_vault", (*v,)))
            .collect(),
        of_owner: s.query_as(admin, "vaults_of_owner", (owner,)),
        of_app: s.query_as(admin, "vaults_of_app", (s.app,)),
    }
}

#[test]
fn a_factory_of_the_previous_release_keeps_its_state_and_keeps_working_after_the_upgrade() {
    let mut s = Setup::with_factory_module(previous("canvault_factory"));
    let (owner, co_owner, user) = (principal("owner"), principal("co-owner"), principal("user"));
    let admin2 = principal("second admin");

    // With the previous module: settings, two app vaults and a personal one...
    let config = FactoryConfig {
        quotas: Quotas {
            max_vaults_per_principal: 8,
            max_creations_per_day: 12,
        },
        top_up_fee: 30_000_000,
        ..FactoryConfig::default()
    };
    let set: Result<(), FactoryError> = s.admin_call("set_config", (config,));
    set.unwrap();
    let set: Result<(), FactoryError> = s.admin_call("set_admins", (vec![s.admin, admin2],));
    set.unwrap();
    let shared_request = CreateVaultRequest {
        owners: vec![owner, co_owner],
        ..s.app_request(owner, principal("reader"))
    };
    let first = s
        .create(&shared_request, REQUIRED)
        .0
        .expect("an app vault")
        .vault;
    let second = s
        .create(&shared_request, REQUIRED)
        .0
        .expect("an app vault")
        .vault;
    let personal_request = s.personal_request(user);
    let personal = s
        .create(&personal_request, REQUIRED)
        .0
        .expect("a personal vault")
        .vault;
    // ... a deployment left open (the CMC refused its creation: it holds the credit) ...
    s.ic.inject_rejects(s.factory, CMC_PRINCIPAL, 1, RejectCode::SysTransient);
    let stuck_request = CreateVaultRequest {
        subnet: SubnetChoice::Subnet {
            subnet: s.subnets[1],
        },
        ..shared_request.clone()
    };
    let stuck = match s.create(&stuck_request, REQUIRED).0 {
        Err(FactoryError::DeploymentFailed { deployment_id, .. }) => deployment_id,
        other => panic!("the CMC's reject fails the deployment: {other:?}"),
    };
    // ... and a fleet upgrade half way: one vault upgraded, one pending, one opted out.
    let v2_module = with_custom_section(&wasm(VAULT_WASM), "canvault:release", b"2.0.0");
    let v2 = s.upload("2.0.0", &v2_module, 1024 * 1024);
    let started: Result<PreviousFleetStatus, FactoryError> = s.admin_call(
        "start_fleet_upgrade",
        (StartFleetUpgradeRequest { version: v2.hash },),
    );
    started.expect("a rollout");
    let batch: Result<PreviousFleetStatus, FactoryError> =
        s.admin_call("run_fleet_batch", (RunFleetBatchRequest { max_vaults: 1 },));
    let fleet = batch.expect("a batch");
    assert_eq!(
        (fleet.upgraded, fleet.pending, fleet.skipped, fleet.finished),
        (1, 1, 1, false),
        "{fleet:?}"
    );
    let vaults = [first.canister_id, second.canister_id, personal.canister_id];
    let before = factory_state(&mut s, &vaults, owner);
    assert_eq!(before.status.open_deployments, 1);
    assert_eq!(before.deployments.len(), 4);

    // Upgrade the IC way: stop, upgrade to this tree's module, start.
    let arg = Encode!(&None::<FactoryInit>).unwrap();
    s.ic.stop_canister(s.factory, Some(s.admin)).unwrap();
    s.ic.upgrade_canister(s.factory, wasm(FACTORY_WASM), arg, Some(s.admin))
        .unwrap_or_else(|e| panic!("upgrading the factory from the previous release: {e:?}"));
    s.ic.start_canister(s.factory, Some(s.admin)).unwrap();

    // Everything reads back as it was; the rollout's counts and lines are the same.
    assert_eq!(factory_state(&mut s, &vaults, owner), before);
    let now: Option<FleetUpgradeStatus> = s.query_as(s.admin, "fleet_upgrade_status", ());
    let now = now.expect("the rollout survives the upgrade");
    assert_eq!(
        (
            now.id,
            now.version,
            now.started_at_ns,
            now.upgraded,
            now.pending,
            now.skipped,
            now.failed,
            now.finished,
            now.total as usize
        ),
        (
            fleet.id,
            fleet.version,
            fleet.started_at_ns,
            fleet.upgraded,
            fleet.pending,
            fleet.skipped,
            fleet.failed,
            fleet.finished,
            fleet.vaults.len()
        )
    );
    let (lines, _) = s.fleet_lines(2);
    assert_eq!(lines, fleet.vaults);

    // It keeps working: the open deployment resumes to a vault, a new vault is created,
    // an owner deletes one, and the rollout finishes around the deleted vault.
    let (resumed, _) = s
        .app_call::<_, Result<canvault_factory_api::CreateVaultResponse, FactoryError>>(
            "resume_deployment",
            &stuck,
            0,
        );
    let resumed = resumed.expect("the open deployment resumes").vault;
    let third = s
        .create(&shared_request, REQUIRED)
        .0
        .expect("a new vault")
        .vault;
    let pending = lines
        .iter()
        .find(|l| l.state == VaultUpgradeState::Pending)
        .expect("a vault pending")
        .canister_id;
    let deleted: Result<DeleteVaultResponse, FactoryError> =
        s.call_as(co_owner, "delete_vault", (pending,));
    assert!(
        deleted
            .expect("an owner deletes its vault")
            .canister_deleted
    );
    let done: Result<FleetUpgradeStatus, FactoryError> =
        s.admin_call("run_fleet_batch", (RunFleetBatchRequest { max_vaults: 5 },));
    let done = done.expect("a batch");
    assert_eq!(
        (
            done.finished,
            done.upgraded,
            done.skipped,
            done.pending,
            done.total
        ),
        (true, 1, 2, 0, 3),
        "{done:?}"
    );
    let (lines, _) = s.fleet_lines(10);
    assert!(lines.iter().any(|l| l.canister_id == pending
        && l.state
            == VaultUpgradeState::Skipped {
                reason: SkipReason::NotRegistered
            }));
    let status: FactoryStatus = s.query_as(s.admin, "status", ());
    assert_eq!((status.vaults, status.open_deployments), (4, 0));
    let deployments: Vec<DeploymentInfo> = s.query_as(s.admin, "list_deployments", (0u64, 100u32));
    assert!(
        deployments
            .iter()
            .filter(|d| [stuck, third.deployment_id].contains(&d.id))
            .all(|d| d.stage == Stage::Registered),
        "{deployments:?}"
    );
    for v in [resumed.canister_id, third.canister_id] {
        let got: Result<VaultInfo, FactoryError> = s.query_as(s.admin, "get_vault", (v,));
        assert_eq!(got.expect("registered").version, s.v1.hash);
    }
}
