//! Whole-canister copies, measured (a program that prints figures, not a timed test).
//!
//! ```text
//! scripts/build-wasm.sh
//! cargo run --release -p canvault-scenarios --bin canister_copy_bench -- [SIZE_MIB]   (default 256)
//! ```
//!
//! A heap-only canister (tests/heap-app: SIZE_MIB of values in a `RefCell<BTreeMap>`, no
//! stable memory, no kit) on subnet A, in the same run:
//! - **vault**: a vault on subnet B copies it through a native snapshot (stop, take,
//!   start, read), then forks the copy onto an empty canister on subnet C (upload,
//!   load, read back and compare with the root, start); a second backup of the
//!   unchanged canister shows what the vault stores again (dedup);
//! - **manual**: what a developer does today with `icp`/`dfx canister snapshot download`
//!   and `upload`: every step an ingress message from the developer's machine (stop,
//!   take, start; read the snapshot in 2,000,000-byte slices; upload metadata and data in
//!   2,000,000-byte slices to the target, 2,000 cycles per ingress byte; load; start);
//! - **kit**: for scale, the example app (which embeds the kit) with an image of the same
//!   size: a full backup and a restore.
//!
//! Cycles are those every canister involved burned (the harness's 13-node fee model);
//! the developer's own machine pays nothing. Downtime is the number of rounds the app
//! was not running (a round is about a second on a real subnet). Writes
//! tests/bench-results/canister_copy_bench.json (docs/benchmarks.md's table).

use candid::{Encode, Principal};
use canvault_cli::demo::alternatives;
use canvault_protocol::canister_image::{
    CanisterBackupRequest, CanisterJob, Consistency, RestoreCanisterRequest,
};
use canvault_protocol::vault_api::VaultInit;
use canvault_scenarios::app::AppScenario;
use canvault_scenarios::bench_results::{BenchResults, Format, Table, column, row};
use canvault_scenarios::heap_app;
use canvault_scenarios::vault::VaultClient;
use canvault_scenarios::whole_canister;
use canvault_scenarios::{harness, install, principal};
use ic_harness::{CanisterId, Harness};
use ic_management_canister_types::CanisterSettings;
use serde_json::Value;

const MIB: u64 = 1024 * 1024;

/// What one path cost.
#[derive(Default)]
struct Cost {
    cycles: u128,
    rounds: u64,
    downtime_rounds: u64,
    bytes: u64,
}

fn cycles_of(ic: &Harness, canisters: &[CanisterId]) -> u128 {
    canisters
        .iter()
        .map(|c| ic.metrics(*c).cycles_burned.total())
        .sum()
}

/// Runs a vault canister job and measures it: the cycles of the vault and `canister`
/// (the app, or the restore's target), the rounds, and the rounds `canister` was not
/// running.
fn vault_job<A: candid::CandidType>(
    ic: &mut Harness,
    vault: VaultClient,
    owner: Principal,
    call: (&str, A),
    status: &str,
    canister: CanisterId,
) -> (CanisterJob, Cost) {
    let (rounds, cycles) = (ic.rounds(), cycles_of(ic, &[canister, vault.id]));
    let (job, down) = whole_canister::vault_job(ic, vault, owner, call, status, canister);
    let cost = Cost {
        cycles: cycles_of(ic, &[canister, vault.id]) - cycles,
        rounds: ic.rounds() - rounds,
        downtime_rounds: down,
        bytes: job.bytes,
    };
    (job, cost)
}

fn digest(ic: &mut Harness, canister: CanisterId, owner: Principal) -> heap_app::Digest {
    heap_app::digest(ic, canister, owner)
}

fn per_gib(value: u128, bytes: u64) -> f64 {
    value as f64 * (1u64 << 30) as f64 / bytes.max(1) as f64
}

fn json_row(label: &str, data: u64, c: &Cost) -> serde_json::Map<String, Value> {
    row(vec![
        ("path", Value::from(label)),
        ("bytes_moved", Value::from(c.bytes)),
        (
            "cycles",
            Value::from(u64::try_from(c.cycles).unwrap_or(u64::MAX)),
        ),
        (
            "cycles_per_gib_of_data",
            Value::from(per_gib(c.cycles, data)),
        ),
        ("rounds", Value::from(c.rounds)),
        ("downtime_rounds", Value::from(c.downtime_rounds)),
    ])
}

fn line(label: &str, data: u64, c: &Cost) {
    println!(
        "| {label} | {:.1} | {:.3} | {:.3} | {} | {} |",
        c.bytes as f64 / MIB as f64,
        c.cycles as f64 / 1e12,
        per_gib(c.cycles, data) / 1e12,
        c.rounds,
        c.downtime_rounds,
    );
}

fn main() {
    let size_mib: u64 = std::env::args()
        .nth(1)
        .map_or(256, |s| s.parse().expect("SIZE_MIB"));
    let data = size_mib * MIB;
    let mut ic = harness(3);
    let owner = principal("owner");
    let subnets = ic.topology().app_subnets;
    let vault = VaultClient::install(
        &mut ic,
        1,
        &VaultInit {
            owners: vec![owner],
            ..Default::default()
        },
        owner,
    );
    let controlled = || CanisterSettings {
        controllers: Some(vec![owner, vault.id]),
        ..Default::default()
    };
    let app = ic.create_canister_on_subnet(Some(owner), Some(controlled()), subnets[0]);
    ic.install_canister(
        app,
        canvault_scenarios::wasm(heap_app::HEAP_APP),
        Encode!().unwrap(),
        Some(owner),
    );
    let mib = u32::try_from(size_mib).expect("SIZE_MIB fits in u32");
    heap_app::fill_mib(&mut ic, app, owner, 0, mib);
    let original = digest(&mut ic, app, owner);

    // The vault: backup (stop, take, start, read), fork, backup again.
    let req = |consistency| CanisterBackupRequest {
        canister: app,
        consistency,
        label: None,
    };
    let (job, backup) = vault_job(
        &mut ic,
        vault,
        owner,
        ("backup_canister", req(Consistency::StopTakeStart)),
        "canister_backup_status",
        app,
    );
    let snapshot = job.snapshot_id.expect("a snapshot");
    let stored_once: u64 = vault.status(&mut ic, owner).chunk_bytes;

    let fork = ic.create_canister_on_subnet(Some(owner), Some(controlled()), subnets[2]);
    let restore_req = RestoreCanisterRequest {
        snapshot_id: snapshot,
        target: fork,
    };
    let (_, restore) = vault_job(
        &mut ic,
        vault,
        owner,
        ("restore_canister", restore_req),
        "canister_restore_status",
        fork,
    );
    assert!(
        digest(&mut ic, fork, owner) == original,
        "the fork answers as the app"
    );

    let (_, again) = vault_job(
        &mut ic,
        vault,
        owner,
        ("backup_canister", req(Consistency::Running)),
        "canister_backup_status",
        app,
    );
    let stored_twice: u64 = vault.status(&mut ic, owner).chunk_bytes;

    // The manual path, into another empty canister on subnet C.
    let target = ic.create_canister_on_subnet(Some(owner), Some(controlled()), subnets[2]);
    let manual = alternatives::manual_snapshots(&mut ic, owner, app, target)
        .unwrap_or_else(|e| panic!("manual path: {e}"));
    let by_hand = Cost {
        cycles: manual.total_cycles,
        rounds: manual.rounds,
        downtime_rounds: manual.downtime_rounds,
        bytes: manual.bytes_moved / 2,
    };
    assert!(
        digest(&mut ic, target, owner) == original,
        "the manual copy answers as the app"
    );

    // The kit, for scale: an example-app image of the same size.
    let mut kit = AppScenario::new();
    let kit_app = kit.app;
    kit.fill(kit_app, data, 1);
    let involved = [kit.app, kit.vault];
    let (rounds, cycles) = (kit.ic.rounds(), cycles_of(&kit.ic, &involved));
    let status = kit.backup();
    let kit_backup = Cost {
        cycles: cycles_of(&kit.ic, &involved) - cycles,
        rounds: kit.ic.rounds() - rounds,
        downtime_rounds: 0,
        bytes: status.last_backup.as_ref().map_or(0, |b| b.bytes_sent),
    };
    let snapshot = status.last_backup.as_ref().expect("a backup").snapshot_id;
    let kit_target = install(
        &mut kit.ic,
        2,
        "canvault_example_app",
        Encode!().unwrap(),
        kit.admin,
    );
    let involved = [kit_target, kit.vault];
    let (rounds, cycles) = (kit.ic.rounds(), cycles_of(&kit.ic, &involved));
    let job = kit.restore_into(kit_target, snapshot);
    let kit_restore = Cost {
        cycles: cycles_of(&kit.ic, &involved) - cycles,
        rounds: kit.ic.rounds() - rounds,
        downtime_rounds: 0,
        bytes: job.bytes_sent,
    };

    println!(
        "heap app with {size_mib} MiB of heap data (the vault stores its copy in {:.1} MiB, compressed); kit app with a {size_mib} MiB image",
        stored_once as f64 / MIB as f64
    );
    println!(
        "| path | MiB moved | cycles (T) | T cycles per GiB of data | rounds | downtime rounds |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let paths = [
        (
            "vault: whole-canister backup (stop, take, start, read)",
            &backup,
        ),
        (
            "vault: fork onto subnet C (upload, load, verify, start)",
            &restore,
        ),
        ("vault: backup again, unchanged, while running", &again),
        (
            "manual icp/dfx: download + upload by ingress + load",
            &by_hand,
        ),
        ("kit: full backup (example app)", &kit_backup),
        ("kit: restore into a fresh canister", &kit_restore),
    ];
    for (label, cost) in paths {
        line(label, data, cost);
    }
    println!(
        "vault chunk store: {:.1} MiB after the first backup, +{:.1} MiB for the second (dedup)",
        stored_once as f64 / MIB as f64,
        (stored_twice - stored_once) as f64 / MIB as f64
    );
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut results = BenchResults::new(
        "canister_copy_bench",
        &args,
        vec![
            ("size_mib", Value::from(size_mib)),
            ("vault_stored_bytes_first", Value::from(stored_once)),
            (
                "vault_stored_bytes_added_second",
                Value::from(stored_twice - stored_once),
            ),
        ],
    );
    results.tables.push(Table {
        name: "paths".into(),
        columns: vec![
            column("path", "path", Format::Text),
            column("bytes_moved", "MiB moved", Format::Mib1),
            column("cycles", "cycles (T)", Format::TCycles3),
            column(
                "cycles_per_gib_of_data",
                "T cycles per GiB of data",
                Format::TCycles3,
            ),
            column("rounds", "rounds", Format::Int),
            column("downtime_rounds", "downtime rounds", Format::Int),
        ],
        rows: paths.iter().map(|(l, c)| json_row(l, data, c)).collect(),
    });
    results.write();
}
