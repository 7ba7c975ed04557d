//! Whole-canister backup and fork of a canister that knows nothing of canvault: the
//! heap-only app (tests/heap-app: a `RefCell<BTreeMap>`, no stable memory, no kit) on
//! subnet A is copied by a vault on subnet B through native snapshots, deleted, and
//! forked onto a fresh canister on subnet C; its heap state and answers are identical.
//!
//! The 1 GiB variant is ignored in CI; run it with
//! `cargo test -p canvault-scenarios --test canister_copy_heap_app -- --ignored`.

use candid::Principal;
use canvault_protocol::canister_image::{
    CanisterBackupRequest, CanisterJob, CanisterJobState, Consistency, RestoreCanisterRequest,
};
use canvault_protocol::vault_api::{SnapshotKind, SnapshotState, VaultInit};
use canvault_scenarios::heap_app::{self, Digest};
use canvault_scenarios::principal;
use canvault_scenarios::vault::VaultClient;
use ic_harness::{CanisterId, Harness};
use ic_management_canister_types::{CanisterSettings, CanisterStatusType};
use serde_bytes::ByteBuf;

/// Subnet A (app), B (vault), C (fork).
struct Scenario {
    ic: Harness,
    owner: Principal,
    vault: VaultClient,
    app: CanisterId,
}

impl Scenario {
    fn new() -> Self {
        let mut ic = canvault_scenarios::harness(3);
        let owner = principal("owner");
        let vault = VaultClient::install(
            &mut ic,
            1,
            &VaultInit {
                owners: vec![owner],
                ..Default::default()
            },
            owner,
        );
        let app = heap_app::install_controlled(&mut ic, 0, owner, vault.id);
        Self {
            ic,
            owner,
            vault,
            app,
        }
    }

    /// Fills the app's heap with `mib` MiB in updates of at most 16 MiB.
    fn fill(&mut self, canister: CanisterId, mib: u32) {
        heap_app::fill_mib(&mut self.ic, canister, self.owner, 0, mib);
    }

    /// Entries, value bytes and the digest of every page of 64 entries (each query
    /// stays under the query instruction limit, whatever the heap's size).
    fn digest(&mut self, canister: CanisterId) -> Digest {
        heap_app::digest(&mut self.ic, canister, self.owner)
    }

    fn get(&mut self, canister: CanisterId, key: u64) -> Option<ByteBuf> {
        heap_app::get(&mut self.ic, canister, self.owner, key)
    }

    fn backup(&mut self, consistency: Consistency) -> CanisterJob {
        let req = CanisterBackupRequest {
            canister: self.app,
            consistency,
            label: Some("whole".into()),
        };
        self.vault
            .call(&mut self.ic, self.owner, "backup_canister", (req,))
            .expect("backup_canister")
    }

    fn restore(&mut self, snapshot_id: u64, target: CanisterId) -> CanisterJob {
        let req = RestoreCanisterRequest {
            snapshot_id,
            target,
        };
        self.vault
            .call(&mut self.ic, self.owner, "restore_canister", (req,))
            .expect("restore_canister")
    }

    /// Ticks until job `id` is done or failed.
    fn wait(&mut self, id: u64, status: &str) -> CanisterJob {
        self.vault
            .wait_canister_job(&mut self.ic, self.owner, id, status)
    }

    fn status(&mut self, canister: CanisterId) -> CanisterStatusType {
        self.ic
            .canister_status(canister, Some(self.owner))
            .expect("status")
            .status
    }
}

fn backup_and_fork(mib: u32) {
    let mut s = Scenario::new();
    s.fill(s.app, mib);
    let before = s.digest(s.app);
    assert_eq!(before.1, u64::from(mib) << 20);
    let sample = s.get(s.app, 5);
    assert!(sample.is_some());

    let job = s.backup(Consistency::StopTakeStart);
    let job = s.wait(job.id, "canister_backup_status");
    assert_eq!(job.state, CanisterJobState::Done, "{job:?}");
    assert_eq!(s.status(s.app), CanisterStatusType::Running);
    assert!(
        s.ic.list_canister_snapshots(s.app, Some(s.owner))
            .expect("list")
            .is_empty(),
        "the app keeps its snapshot budget"
    );
    let snapshot = job.snapshot_id.expect("a catalogue snapshot");
    let info = s
        .vault
        .snapshot(&mut s.ic, s.owner, snapshot)
        .expect("info");
    assert_eq!(info.state, SnapshotState::Complete);
    assert_eq!(info.source, s.app);
    let Some(SnapshotKind::WholeCanister(layout)) = info.kind else {
        panic!("kind {:?}", info.kind)
    };
    assert_eq!(layout.stable_memory_bytes, 0, "a heap-only app");
    assert!(layout.wasm_memory_bytes >= u64::from(mib) << 20);

    // The app is gone; a fresh canister on subnet C, controlled by the vault, gets the fork.
    let app = s.app;
    s.ic.stop_canister(app, Some(s.owner)).expect("stop");
    s.ic.delete_canister(app, Some(s.owner)).expect("delete");
    let subnet_c = s.ic.topology().app_subnets[2];
    let fork = s.ic.create_canister_on_subnet(
        Some(s.owner),
        Some(CanisterSettings {
            controllers: Some(vec![s.owner, s.vault.id]),
            ..Default::default()
        }),
        subnet_c,
    );
    let job = s.restore(snapshot, fork);
    let job = s.wait(job.id, "canister_restore_status");
    assert_eq!(job.state, CanisterJobState::Done, "{job:?}");
    assert_eq!(s.status(fork), CanisterStatusType::Running);
    assert_eq!(s.digest(fork), before, "heap state identical");
    assert_eq!(s.get(fork, 5), sample, "query answers identical");
    assert!(
        s.ic.list_canister_snapshots(fork, Some(s.owner))
            .expect("list")
            .is_empty(),
        "the restore leaves no snapshot on the target"
    );
    // The fork runs on: it takes updates like the original did.
    let () =
        s.ic.update_candid(fork, s.owner, "put", (7u64, ByteBuf::from(vec![1, 2, 3])))
            .expect("put");
    assert_eq!(s.get(fork, 7), Some(ByteBuf::from(vec![1, 2, 3])));
}

#[test]
fn canister_copy_heap_app_backed_up_deleted_and_forked_onto_another_subnet() {
    backup_and_fork(4);
}

#[test]
#[ignore = "1 GiB of heap: about 10 minutes (574 s on 2 shared cores); run with -- --ignored"]
fn canister_copy_heap_app_one_gib() {
    backup_and_fork(1024);
}

#[test]
fn canister_copy_a_second_backup_of_the_same_heap_stores_almost_nothing() {
    let mut s = Scenario::new();
    s.fill(s.app, 3);
    let first = s.backup(Consistency::Running);
    let first = s.wait(first.id, "canister_backup_status");
    assert_eq!(first.state, CanisterJobState::Done, "{first:?}");
    let second = s.backup(Consistency::Running);
    let second = s.wait(second.id, "canister_backup_status");
    assert_eq!(second.state, CanisterJobState::Done, "{second:?}");
    let info = s
        .vault
        .snapshot(&mut s.ic, s.owner, second.snapshot_id.expect("id"))
        .expect("info");
    assert!(
        info.new_bytes < 200_000,
        "unchanged heap pages dedup: {} new bytes",
        info.new_bytes
    );
}

/// A `StopTakeStart` backup reads the app's status first and leaves a stopped app
/// stopped; a restore into a stopped target loads and verifies it and leaves it stopped
/// (into a running one, running: the tests above).
#[test]
fn canister_copy_a_stopped_app_and_a_stopped_target_are_left_stopped() {
    let mut s = Scenario::new();
    s.fill(s.app, 1);
    let before = s.digest(s.app);
    s.ic.stop_canister(s.app, Some(s.owner)).expect("stop");
    let job = s.backup(Consistency::StopTakeStart);
    let job = s.wait(job.id, "canister_backup_status");
    assert_eq!(job.state, CanisterJobState::Done, "{job:?}");
    assert_eq!(
        s.status(s.app),
        CanisterStatusType::Stopped,
        "left as found"
    );
    assert!(
        s.ic.list_canister_snapshots(s.app, Some(s.owner))
            .expect("list")
            .is_empty()
    );
    let snapshot = job.snapshot_id.expect("a catalogue snapshot");

    let fork = s.ic.create_canister_on_subnet(
        Some(s.owner),
        Some(CanisterSettings {
            controllers: Some(vec![s.owner, s.vault.id]),
            ..Default::default()
        }),
        s.ic.topology().app_subnets[2],
    );
    s.ic.stop_canister(fork, Some(s.owner))
        .expect("stop the target");
    let job = s.restore(snapshot, fork);
    let job = s.wait(job.id, "canister_restore_status");
    assert_eq!(job.state, CanisterJobState::Done, "{job:?}");
    assert_eq!(s.status(fork), CanisterStatusType::Stopped, "left as found");
    s.ic.start_canister(fork, Some(s.owner)).expect("start");
    s.ic.start_canister(s.app, Some(s.owner)).expect("start");
    assert_eq!(s.digest(fork), before, "the stopped app's state, forked");
    assert_eq!(s.digest(s.app), before);
}
