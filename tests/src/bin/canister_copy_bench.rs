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
//! was not running (a round is about a second on a real subnet).

use candid::{Encode, Principal};
use canvault_protocol::canister_image::{
    CanisterBackupRequest, CanisterJob, CanisterJobState, Consistency, RestoreCanisterRequest,
};
use canvault_protocol::vault_api::VaultInit;
use canvault_scenarios::app::AppScenario;
use canvault_scenarios::heap_app;
use canvault_scenarios::vault::VaultClient;
use canvault_scenarios::{harness, install, principal};
use ic_harness::{CanisterId, Harness};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterSettings, CanisterStatusType, LoadCanisterSnapshotArgs,
    ReadCanisterSnapshotDataArgs, ReadCanisterSnapshotDataResult, ReadCanisterSnapshotMetadataArgs,
    ReadCanisterSnapshotMetadataResult, SnapshotDataKind, SnapshotDataOffset,
    TakeCanisterSnapshotArgs, UploadCanisterSnapshotDataArgs, UploadCanisterSnapshotMetadataArgs,
    UploadCanisterSnapshotMetadataResult,
};

const MIB: u64 = 1024 * 1024;
/// The platform's largest snapshot data slice.
const SLICE: u64 = 2_000_000;

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

fn running(ic: &mut Harness, app: CanisterId, owner: Principal) -> bool {
    ic.canister_status(app, Some(owner))
        .is_ok_and(|s| s.status == CanisterStatusType::Running)
}

/// Starts a vault canister job (`method(arg)`), ticks until it ends and measures it:
/// the cycles of the vault and `canister` (the app, or the restore's target), and the
/// rounds `canister` was not running.
fn vault_job<A: candid::CandidType>(
    ic: &mut Harness,
    vault: VaultClient,
    owner: Principal,
    (method, arg): (&str, A),
    status: &str,
    canister: CanisterId,
) -> (CanisterJob, Cost) {
    let (rounds, cycles) = (ic.rounds(), cycles_of(ic, &[canister, vault.id]));
    let job: CanisterJob = vault.call(ic, owner, method, (arg,)).expect(method);
    let mut down = 0;
    let job = loop {
        let job: CanisterJob = vault.read(ic, owner, status, (job.id,)).expect("status");
        match job.state {
            CanisterJobState::Done => break job,
            CanisterJobState::Failed { reason } => panic!("{method} failed: {reason}"),
            _ => {}
        }
        ic.tick();
        if !running(ic, canister, owner) {
            down += 1;
        }
    };
    let cost = Cost {
        cycles: cycles_of(ic, &[canister, vault.id]) - cycles,
        rounds: ic.rounds() - rounds,
        downtime_rounds: down,
        bytes: job.bytes,
    };
    (job, cost)
}

fn management<A: candid::CandidType, R: for<'de> candid::Deserialize<'de> + candid::CandidType>(
    ic: &mut Harness,
    owner: Principal,
    method: &str,
    arg: A,
) -> R {
    let (r,): (R,) = ic
        .update_candid(Principal::management_canister(), owner, method, (arg,))
        .unwrap_or_else(|e| panic!("{method}: {e}"));
    r
}

fn unit<A: candid::CandidType>(ic: &mut Harness, owner: Principal, method: &str, arg: A) {
    let () = ic
        .update_candid(Principal::management_canister(), owner, method, (arg,))
        .unwrap_or_else(|e| panic!("{method}: {e}"));
}

/// The manual path: developer ingress for every step, from `app` to `target`.
fn manual(ic: &mut Harness, owner: Principal, app: CanisterId, target: CanisterId) -> Cost {
    let (rounds, cycles) = (ic.rounds(), cycles_of(ic, &[app, target]));
    let id = CanisterIdRecord { canister_id: app };
    let before_stop = ic.rounds();
    unit(ic, owner, "stop_canister", id.clone());
    let snapshot: ic_management_canister_types::Snapshot = management(
        ic,
        owner,
        "take_canister_snapshot",
        TakeCanisterSnapshotArgs {
            canister_id: app,
            replace_snapshot: None,
            uninstall_code: None,
            sender_canister_version: None,
        },
    );
    unit(ic, owner, "start_canister", id);
    let downtime_rounds = ic.rounds() - before_stop;
    let meta: ReadCanisterSnapshotMetadataResult = management(
        ic,
        owner,
        "read_canister_snapshot_metadata",
        ReadCanisterSnapshotMetadataArgs {
            canister_id: app,
            snapshot_id: snapshot.id.clone(),
        },
    );
    let mut parts: Vec<(u64, Vec<u8>)> = Vec::new();
    for (which, size) in [
        (0, meta.wasm_module_size),
        (1, meta.wasm_memory_size),
        (2, meta.stable_memory_size),
    ] {
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        let mut offset = 0;
        while offset < size {
            let len = SLICE.min(size - offset);
            let kind = match which {
                0 => SnapshotDataKind::WasmModule { offset, size: len },
                1 => SnapshotDataKind::WasmMemory { offset, size: len },
                _ => SnapshotDataKind::StableMemory { offset, size: len },
            };
            let r: ReadCanisterSnapshotDataResult = management(
                ic,
                owner,
                "read_canister_snapshot_data",
                ReadCanisterSnapshotDataArgs {
                    canister_id: app,
                    snapshot_id: snapshot.id.clone(),
                    kind,
                },
            );
            bytes.extend_from_slice(&r.chunk);
            offset += len;
        }
        parts.push((which, bytes));
    }
    assert!(
        meta.wasm_chunk_store.is_empty(),
        "the heap app has no chunk store"
    );
    unit(
        ic,
        owner,
        "delete_canister_snapshot",
        ic_management_canister_types::DeleteCanisterSnapshotArgs {
            canister_id: app,
            snapshot_id: snapshot.id,
        },
    );
    let uploaded: UploadCanisterSnapshotMetadataResult = management(
        ic,
        owner,
        "upload_canister_snapshot_metadata",
        UploadCanisterSnapshotMetadataArgs {
            canister_id: target,
            replace_snapshot: None,
            wasm_module_size: meta.wasm_module_size,
            globals: meta.globals.iter().flatten().cloned().collect(),
            wasm_memory_size: meta.wasm_memory_size,
            stable_memory_size: meta.stable_memory_size,
            certified_data: meta.certified_data.clone(),
            global_timer: meta.global_timer.clone(),
            on_low_wasm_memory_hook_status: meta.on_low_wasm_memory_hook_status.clone(),
        },
    );
    let mut bytes = 0;
    for (which, data) in &parts {
        for (i, slice) in data.chunks(SLICE as usize).enumerate() {
            let offset = i as u64 * SLICE;
            let kind = match which {
                0 => SnapshotDataOffset::WasmModule { offset },
                1 => SnapshotDataOffset::WasmMemory { offset },
                _ => SnapshotDataOffset::StableMemory { offset },
            };
            unit(
                ic,
                owner,
                "upload_canister_snapshot_data",
                UploadCanisterSnapshotDataArgs {
                    canister_id: target,
                    snapshot_id: uploaded.snapshot_id.clone(),
                    kind,
                    chunk: slice.to_vec(),
                },
            );
            bytes += slice.len() as u64;
        }
    }
    unit(
        ic,
        owner,
        "load_canister_snapshot",
        LoadCanisterSnapshotArgs {
            canister_id: target,
            snapshot_id: uploaded.snapshot_id,
            sender_canister_version: None,
        },
    );
    unit(
        ic,
        owner,
        "start_canister",
        CanisterIdRecord {
            canister_id: target,
        },
    );
    Cost {
        cycles: cycles_of(ic, &[app, target]) - cycles,
        rounds: ic.rounds() - rounds,
        downtime_rounds,
        bytes,
    }
}

fn digest(ic: &mut Harness, canister: CanisterId, owner: Principal) -> heap_app::Digest {
    heap_app::digest(ic, canister, owner)
}

fn per_gib(value: u128, bytes: u64) -> f64 {
    value as f64 * (1u64 << 30) as f64 / bytes.max(1) as f64
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
    let by_hand = manual(&mut ic, owner, app, target);
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
    line(
        "vault: whole-canister backup (stop, take, start, read)",
        data,
        &backup,
    );
    line(
        "vault: fork onto subnet C (upload, load, verify, start)",
        data,
        &restore,
    );
    line(
        "vault: backup again, unchanged, while running",
        data,
        &again,
    );
    line(
        "manual icp/dfx: download + upload by ingress + load",
        data,
        &by_hand,
    );
    line("kit: full backup (example app)", data, &kit_backup);
    line("kit: restore into a fresh canister", data, &kit_restore);
    println!(
        "vault chunk store: {:.1} MiB after the first backup, +{:.1} MiB for the second (dedup)",
        stored_once as f64 / MIB as f64,
        (stored_twice - stored_once) as f64 / MIB as f64
    );
}
