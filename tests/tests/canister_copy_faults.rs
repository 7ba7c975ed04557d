//! Whole-canister backups under faults, on real wasm: a reject of the vault's next
//! management call at each step of the job (permanent and transient), and a vault
//! upgrade in the middle of the copy. Whatever fails, the app ends running, with no
//! snapshot left behind, and the job either completes or fails cleanly.

use std::time::Duration;

use candid::Principal;
use canvault_protocol::canister_image::{
    CanisterBackupRequest, CanisterJob, CanisterJobState, Consistency,
};
use canvault_protocol::vault_api::{SnapshotState, VaultInit};
use canvault_scenarios::heap_app;
use canvault_scenarios::vault::{VAULT_WASM, VaultClient};
use canvault_scenarios::{principal, wasm};
use ic_harness::{CanisterId, Harness, RejectCode};
use ic_management_canister_types::CanisterStatusType;

struct Scenario {
    ic: Harness,
    owner: Principal,
    vault: VaultClient,
    app: CanisterId,
}

impl Scenario {
    fn new() -> Self {
        let mut ic = canvault_scenarios::harness(2);
        let owner = principal("owner");
        let init = VaultInit {
            owners: vec![owner],
            ..Default::default()
        };
        let vault = VaultClient::install(&mut ic, 1, &init, owner);
        let app = heap_app::install_controlled(&mut ic, 0, owner, vault.id);
        let () = ic
            .update_candid(app, owner, "fill", (1u64, 40u32, 65_536u32))
            .expect("fill");
        Self {
            ic,
            owner,
            vault,
            app,
        }
    }

    fn start_backup(&mut self) -> u64 {
        let req = CanisterBackupRequest {
            canister: self.app,
            consistency: Consistency::StopTakeStart,
            label: None,
        };
        let job: CanisterJob = self
            .vault
            .call(&mut self.ic, self.owner, "backup_canister", (req,))
            .expect("backup_canister");
        job.id
    }

    fn start_restore(&mut self, snapshot: u64, target: CanisterId) -> u64 {
        let req = canvault_protocol::canister_image::RestoreCanisterRequest {
            snapshot_id: snapshot,
            target,
        };
        let job: CanisterJob = self
            .vault
            .call(&mut self.ic, self.owner, "restore_canister", (req,))
            .expect("restore_canister");
        job.id
    }

    fn restore_job(&mut self, id: u64) -> CanisterJob {
        self.vault
            .read(&mut self.ic, self.owner, "canister_restore_status", (id,))
            .expect("status")
    }

    fn job(&mut self, id: u64) -> CanisterJob {
        self.vault
            .read(&mut self.ic, self.owner, "canister_backup_status", (id,))
            .expect("status")
    }

    /// Ticks until `pred` holds for the job (or it ended).
    fn until(&mut self, id: u64, pred: impl Fn(&CanisterJobState) -> bool) -> CanisterJob {
        for _ in 0..5_000 {
            let job = self.job(id);
            if pred(&job.state) || is_over(&job.state) {
                return job;
            }
            self.ic.tick();
        }
        panic!("job {id} never reached the state");
    }

    /// Ticks (and moves time on for backoffs) until the job ends.
    fn finish(&mut self, id: u64) -> CanisterJob {
        for _ in 0..5_000 {
            let job = self.job(id);
            if is_over(&job.state) {
                return job;
            }
            self.ic.advance_time(Duration::from_secs(2));
            self.ic.tick();
        }
        panic!("job {id} did not end");
    }

    fn assert_app_clean(&mut self, what: &str) {
        let status = self
            .ic
            .canister_status(self.app, Some(self.owner))
            .expect("status")
            .status;
        assert_eq!(
            status,
            CanisterStatusType::Running,
            "{what}: app left stopped"
        );
        let snapshots = self
            .ic
            .list_canister_snapshots(self.app, Some(self.owner))
            .expect("list");
        assert!(snapshots.is_empty(), "{what}: app-side snapshot leaked");
    }
}

/// A named point of a job: true in the state that precedes the call to hit.
type Point = (&'static str, fn(&CanisterJobState) -> bool);

fn is_over(state: &CanisterJobState) -> bool {
    matches!(
        state,
        CanisterJobState::Done | CanisterJobState::Failed { .. }
    )
}

/// Names of the points the faults hit, and the state that precedes each call.
fn points() -> Vec<Point> {
    vec![
        ("stop", |s| matches!(s, CanisterJobState::Stopping)),
        ("take", |s| matches!(s, CanisterJobState::Taking)),
        ("start after take", |s| {
            matches!(s, CanisterJobState::ReadingMetadata)
        }),
        (
            "read data",
            |s| matches!(s, CanisterJobState::Copying { next_index } if *next_index > 0),
        ),
        ("delete the app snapshot", |s| {
            matches!(s, CanisterJobState::CleaningUp)
        }),
    ]
}

#[test]
fn canister_copy_a_refused_call_at_each_step_ends_clean() {
    for (what, at) in points() {
        let mut s = Scenario::new();
        let id = s.start_backup();
        s.until(id, at);
        s.ic.inject_rejects(
            s.vault.id,
            Principal::management_canister(),
            1,
            RejectCode::CanisterReject,
        );
        let job = s.finish(id);
        s.assert_app_clean(what);
        // Starting and deleting are retried whatever the reject: those jobs complete.
        let completes = matches!(what, "start after take" | "delete the app snapshot");
        assert_eq!(
            matches!(job.state, CanisterJobState::Done),
            completes,
            "{what}: {job:?}"
        );
        if let (false, Some(snap)) = (completes, job.snapshot_id) {
            let info = s.vault.snapshot(&mut s.ic, s.owner, snap).expect("info");
            assert!(matches!(info.state, SnapshotState::Failed { .. }), "{what}");
        }
    }
}

#[test]
fn canister_copy_transient_rejects_at_each_step_are_retried() {
    for (what, at) in points() {
        let mut s = Scenario::new();
        let id = s.start_backup();
        s.until(id, at);
        s.ic.inject_rejects(
            s.vault.id,
            Principal::management_canister(),
            3,
            RejectCode::SysTransient,
        );
        let job = s.finish(id);
        assert_eq!(job.state, CanisterJobState::Done, "{what}: {job:?}");
        assert!(job.retries >= 1, "{what}");
        s.assert_app_clean(what);
    }
}

#[test]
fn canister_copy_resumes_after_a_vault_upgrade_mid_copy() {
    let mut s = Scenario::new();
    let id = s.start_backup();
    let job = s.until(
        id,
        |st| matches!(st, CanisterJobState::Copying { next_index } if *next_index > 0),
    );
    assert!(!is_over(&job.state));
    let arg = candid::encode_one(None::<VaultInit>).expect("arg");
    s.ic.upgrade_canister(s.vault.id, wasm(VAULT_WASM), arg, Some(s.owner))
        .expect("upgrade");
    let job = s.finish(id);
    assert_eq!(job.state, CanisterJobState::Done, "{job:?}");
    s.assert_app_clean("upgrade");
    let info = s
        .vault
        .snapshot(&mut s.ic, s.owner, job.snapshot_id.expect("id"))
        .expect("info");
    assert_eq!(info.state, SnapshotState::Complete);
}

/// A complete whole-canister snapshot of the app, and a second heap app on subnet 0
/// with other state, controlled by the vault: the restore target.
fn snapshot_and_target(s: &mut Scenario) -> (u64, CanisterId) {
    let id = s.start_backup();
    let job = s.finish(id);
    assert_eq!(job.state, CanisterJobState::Done, "{job:?}");
    let target = heap_app::install_controlled(&mut s.ic, 0, s.owner, s.vault.id);
    let () =
        s.ic.update_candid(target, s.owner, "fill", (9u64, 3u32, 1_000u32))
            .expect("fill");
    (job.snapshot_id.expect("snapshot"), target)
}

type Digest = (u64, u64, serde_bytes::ByteBuf);

#[test]
fn canister_copy_a_refused_restore_before_the_load_leaves_the_target_unchanged() {
    let points: Vec<Point> = vec![
        ("upload metadata", |st| {
            matches!(st, CanisterJobState::UploadingMetadata)
        }),
        (
            "upload data",
            |st| matches!(st, CanisterJobState::Uploading { next_index } if *next_index > 0),
        ),
        ("stop the target", |st| {
            matches!(st, CanisterJobState::Stopping)
        }),
    ];
    for (what, at) in points {
        let mut s = Scenario::new();
        let (snapshot, target) = snapshot_and_target(&mut s);
        let before: Digest =
            s.ic.query_candid(target, s.owner, "digest", ())
                .expect("digest");
        let job = s.start_restore(snapshot, target);
        let status = |s: &mut Scenario| s.restore_job(job);
        for _ in 0..5_000 {
            let st = status(&mut s).state;
            if at(&st) || is_over(&st) {
                break;
            }
            s.ic.tick();
        }
        s.ic.inject_rejects(
            s.vault.id,
            Principal::management_canister(),
            1,
            RejectCode::CanisterReject,
        );
        let mut end = status(&mut s);
        for _ in 0..5_000 {
            if is_over(&end.state) {
                break;
            }
            s.ic.advance_time(Duration::from_secs(2));
            s.ic.tick();
            end = status(&mut s);
        }
        assert!(
            matches!(end.state, CanisterJobState::Failed { .. }),
            "{what}: {end:?}"
        );
        let after: Digest =
            s.ic.query_candid(target, s.owner, "digest", ())
                .expect("digest");
        assert_eq!(after, before, "{what}: the target changed");
        let status =
            s.ic.canister_status(target, Some(s.owner))
                .expect("status")
                .status;
        assert_eq!(status, CanisterStatusType::Running, "{what}");
        assert!(
            s.ic.list_canister_snapshots(target, Some(s.owner))
                .expect("list")
                .is_empty(),
            "{what}: a snapshot left on the target"
        );
    }
}

#[test]
fn canister_copy_a_restore_resumes_after_a_vault_upgrade_mid_upload() {
    let mut s = Scenario::new();
    let before: Digest =
        s.ic.query_candid(s.app, s.owner, "digest", ())
            .expect("digest");
    let (snapshot, target) = snapshot_and_target(&mut s);
    let job = s.start_restore(snapshot, target);
    let status = |s: &mut Scenario| s.restore_job(job);
    for _ in 0..5_000 {
        if matches!(status(&mut s).state, CanisterJobState::Uploading { next_index } if next_index > 0)
        {
            break;
        }
        s.ic.tick();
    }
    let mid = status(&mut s);
    assert!(
        matches!(mid.state, CanisterJobState::Uploading { .. }),
        "{mid:?}"
    );
    let arg = candid::encode_one(None::<VaultInit>).expect("arg");
    s.ic.upgrade_canister(s.vault.id, wasm(VAULT_WASM), arg, Some(s.owner))
        .expect("upgrade");
    let mut end = status(&mut s);
    for _ in 0..5_000 {
        if is_over(&end.state) {
            break;
        }
        s.ic.tick();
        end = status(&mut s);
    }
    assert_eq!(end.state, CanisterJobState::Done, "{end:?}");
    let after: Digest =
        s.ic.query_candid(target, s.owner, "digest", ())
            .expect("digest");
    assert_eq!(after, before, "the target holds the app's state");
    assert!(
        s.ic.list_canister_snapshots(target, Some(s.owner))
            .expect("list")
            .is_empty()
    );
}

/// The app's controller upgrades it after the vault took its native snapshot and before
/// the copy is read out (the heap app loses its heap on upgrade). A snapshot survives an
/// upgrade, so the copy completes with the image of the take: restored into another
/// canister it holds the state before the upgrade; the app runs its upgraded state, and
/// no app-side snapshot is left.
#[test]
fn canister_copy_the_app_upgraded_between_take_and_read_yields_the_image_of_the_take() {
    let mut s = Scenario::new();
    let before: Digest =
        s.ic.query_candid(s.app, s.owner, "digest", ())
            .expect("digest");
    let id = s.start_backup();
    let job = s.until(
        id,
        |st| matches!(st, CanisterJobState::Copying { next_index } if *next_index > 0),
    );
    assert!(!is_over(&job.state), "{job:?}");
    s.ic.upgrade_canister(
        s.app,
        wasm("heap_app"),
        candid::encode_args(()).expect("arg"),
        Some(s.owner),
    )
    .expect("upgrade the app");
    let upgraded: Digest =
        s.ic.query_candid(s.app, s.owner, "digest", ())
            .expect("digest");
    assert_ne!(upgraded, before, "the upgrade changed the app's state");
    let job = s.finish(id);
    assert_eq!(job.state, CanisterJobState::Done, "{job:?}");
    s.assert_app_clean("app upgraded mid-copy");
    let snapshot = job.snapshot_id.expect("snapshot");
    let target = heap_app::install_controlled(&mut s.ic, 0, s.owner, s.vault.id);
    let restore = s.start_restore(snapshot, target);
    let mut end = s.restore_job(restore);
    for _ in 0..5_000 {
        if is_over(&end.state) {
            break;
        }
        s.ic.tick();
        end = s.restore_job(restore);
    }
    assert_eq!(end.state, CanisterJobState::Done, "{end:?}");
    let restored: Digest =
        s.ic.query_candid(target, s.owner, "digest", ())
            .expect("digest");
    assert_eq!(
        restored, before,
        "the image of the take, not of the upgraded app"
    );
    let now: Digest =
        s.ic.query_candid(s.app, s.owner, "digest", ())
            .expect("digest");
    assert_eq!(now, upgraded, "the app keeps its upgraded state");
}
