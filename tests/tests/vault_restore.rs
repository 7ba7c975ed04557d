//! Restore push: the vault streams a snapshot into a target on another subnet, timer
//! by timer, and survives a target that traps, is stopped, or refuses.
//!
//! The target is `canisters/vault/test-target`, a naive implementation of the kit's
//! three restore endpoints that verifies every chunk and the root from the staged
//! bytes. Build the wasm first: `scripts/build-wasm.sh`.

use std::time::Duration;

use candid::{Encode, Principal};
use canvault_protocol::Hash256;
use canvault_protocol::vault_api::{
    RestoreJob, RestoreJobState, SnapshotInfo, StartRestoreRequest, VaultError, VaultInit,
};
use canvault_scenarios::vault::{VaultClient, noise_image};
use canvault_scenarios::{harness, install, principal};
use ic_harness::{CanisterId, Harness, RejectCode};

const CS: u32 = 64 * 1024;
const TARGET_WASM: &str = "vault_test_target";

struct Setup {
    ic: Harness,
    vault: VaultClient,
    target: CanisterId,
    owner: Principal,
    snapshot: SnapshotInfo,
}

impl Setup {
    /// A vault on subnet 1 holding one snapshot of 48 incompressible chunks (about
    /// 2.3 MiB of data, so several batches), and an unarmed target on subnet 0.
    fn new() -> Self {
        let mut ic = harness(2);
        let (owner, writer) = (principal("owner"), principal("writer"));
        let init = VaultInit {
            owners: vec![owner],
            writers: vec![writer],
            ..VaultInit::default()
        };
        let vault = VaultClient::install(&mut ic, 1, &init, owner);
        let snapshot = vault.backup(&mut ic, writer, &noise_image(48, CS, 1), CS, 1);
        let target = install(&mut ic, 0, TARGET_WASM, Encode!().expect("encode"), owner);
        Self {
            ic,
            vault,
            target,
            owner,
            snapshot,
        }
    }

    fn arm(&mut self) {
        let arg = Encode!(&self.vault.id, &self.snapshot.id).expect("encode");
        self.ic
            .update_call(self.target, self.owner, "arm", arg)
            .expect("arm");
    }

    fn start(&mut self) -> RestoreJob {
        let req = StartRestoreRequest {
            snapshot_id: self.snapshot.id,
            target: self.target,
        };
        self.vault
            .call(&mut self.ic, self.owner, "start_restore", (req,))
            .expect("start_restore")
    }

    fn job(&mut self, id: u64) -> RestoreJob {
        self.vault.restore_job(&mut self.ic, self.owner, id)
    }

    /// Ticks until the job is done or failed.
    fn wait(&mut self, id: u64, max_rounds: u64) -> RestoreJob {
        for _ in 0..max_rounds {
            let job = self.job(id);
            if matches!(
                job.state,
                RestoreJobState::Done | RestoreJobState::Failed { .. }
            ) {
                return job;
            }
            self.ic.tick();
        }
        panic!(
            "restore job {id} still running after {max_rounds} rounds: {:?}",
            self.job(id)
        );
    }

    /// What the target applied: (snapshot, root of the staged bytes, size).
    fn restored(&mut self) -> Option<(u64, Hash256, u64)> {
        let reply = self
            .ic
            .query_call(
                self.target,
                self.owner,
                "restored",
                Encode!().expect("encode"),
            )
            .expect("restored");
        candid::decode_one(&reply).expect("decode")
    }

    fn assert_restored(&mut self) {
        let expected = (
            self.snapshot.id,
            self.snapshot.root.expect("root"),
            self.snapshot.image_size,
        );
        assert_eq!(self.restored(), Some(expected));
    }
}

#[test]
fn should_restore_a_snapshot_into_a_target() {
    let mut s = Setup::new();
    s.arm();
    let job = s.start();
    assert_eq!(job.state, RestoreJobState::Starting);
    let done = s.wait(job.id, 200);
    assert_eq!(done.state, RestoreJobState::Done);
    assert_eq!(done.retries, 0);
    let data_chunks = 36; // every fourth chunk is zero
    assert_eq!(done.bytes_sent, data_chunks * u64::from(CS));
    s.assert_restored();
    let metrics = s.ic.metrics(s.vault.id);
    println!(
        "restore of {} chunks: largest vault execution {} instructions, {} bytes sent",
        s.snapshot.chunk_count, metrics.max_instructions_per_execution, metrics.bytes_sent
    );
    assert!(
        metrics.max_instructions_per_execution < 2_000_000_000,
        "each step fits one DTS slice"
    );
    assert_eq!(s.vault.status(&mut s.ic, s.owner).active_restores, 0);
}

#[test]
fn should_retry_while_the_target_traps() {
    let mut s = Setup::new();
    s.arm();
    let until = s.ic.time_nanos() + Duration::from_secs(20).as_nanos() as u64;
    let arg = Encode!(&until).expect("encode");
    s.ic.update_call(s.target, s.owner, "trap_chunk_calls_until", arg)
        .expect("set trap");
    let job = s.start();
    let done = s.wait(job.id, 400);
    assert_eq!(done.state, RestoreJobState::Done);
    assert!(done.retries >= 2, "retried with backoff: {done:?}");
    s.assert_restored();
}

#[test]
fn should_resume_after_the_target_was_stopped_and_pin_the_snapshot_meanwhile() {
    let mut s = Setup::new();
    s.arm();
    s.ic.stop_canister(s.target, Some(s.owner)).expect("stop");
    let job = s.start();
    for _ in 0..40 {
        s.ic.tick();
    }
    let waiting = s.job(job.id);
    assert_eq!(waiting.state, RestoreJobState::Starting);
    assert!(waiting.retries >= 4, "{waiting:?}");
    let id = s.snapshot.id;
    let refused: Result<(), VaultError> =
        s.vault.call(&mut s.ic, s.owner, "delete_snapshot", (id,));
    assert_eq!(refused, Err(VaultError::InUse(id)));

    s.ic.start_canister(s.target, Some(s.owner)).expect("start");
    let done = s.wait(job.id, 400);
    assert_eq!(done.state, RestoreJobState::Done);
    s.assert_restored();
    let deleted: Result<(), VaultError> =
        s.vault.call(&mut s.ic, s.owner, "delete_snapshot", (id,));
    assert_eq!(deleted, Ok(()), "unpinned once done");
}

#[test]
fn should_fail_a_restore_the_target_refuses() {
    let mut s = Setup::new();
    let job = s.start(); // not armed
    let failed = s.wait(job.id, 100);
    match &failed.state {
        RestoreJobState::Failed { reason } => {
            assert!(reason.contains("no restore is armed"), "{reason}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(s.restored(), None);
    let id = s.snapshot.id;
    let deleted: Result<(), VaultError> =
        s.vault.call(&mut s.ic, s.owner, "delete_snapshot", (id,));
    assert_eq!(deleted, Ok(()), "a failed job no longer pins");
}

#[test]
fn should_resume_a_restore_after_a_vault_upgrade() {
    let mut s = Setup::new();
    s.arm();
    let until = s.ic.time_nanos() + Duration::from_secs(10).as_nanos() as u64;
    let arg = Encode!(&until).expect("encode");
    s.ic.update_call(s.target, s.owner, "trap_chunk_calls_until", arg)
        .expect("set trap");
    let job = s.start();
    for _ in 0..8 {
        s.ic.tick();
    }
    assert!(matches!(
        s.job(job.id).state,
        RestoreJobState::Pushing { .. } | RestoreJobState::Starting
    ));
    s.ic.stop_canister(s.vault.id, Some(s.owner))
        .expect("stop the vault");
    let arg = Encode!().expect("encode");
    s.ic.upgrade_canister(
        s.vault.id,
        canvault_scenarios::wasm("canvault_vault"),
        arg,
        Some(s.owner),
    )
    .expect("upgrade");
    s.ic.start_canister(s.vault.id, Some(s.owner))
        .expect("start the vault");
    let done = s.wait(job.id, 400);
    assert_eq!(done.state, RestoreJobState::Done);
    s.assert_restored();
}

/// L4 (#10.15): a restore step whose execution traps before its first `await` (the
/// trap rolls back everything the execution did, and no `Drop` runs) must not leave
/// the job marked busy forever: the hourly housekeeping resumes it.
///
/// A step runs in ic-cdk-timers' `timer_executor`, a self-call the global timer makes.
/// When that execution traps, the IC rolls it back and the global timer's callback gets
/// CANISTER_ERROR, on which ic-cdk-timers deletes the one-shot task. A self-call
/// rejected with CANISTER_ERROR in transit leaves exactly that state (the step's
/// execution never happened, the task is gone), and the harness's reject fault targets
/// it by callee, unlike `trap_next_execution`, which lands on the next execution of the
/// vault whatever it is (the global timer task itself).
#[test]
fn should_resume_a_job_whose_step_trapped_before_its_first_await() {
    let mut s = Setup::new();
    s.arm();
    // Let the vault finish its own work (not `run_until_idle`: the vault's hourly
    // housekeeping interval keeps a timer armed, so the harness is never idle), so the
    // next self-call is the restore step's.
    let executions = |s: &Setup| s.ic.metrics(s.vault.id).executions;
    let mut quiet = 0;
    for _ in 0..100 {
        let before = executions(&s);
        s.ic.tick();
        quiet = if executions(&s) == before {
            quiet + 1
        } else {
            0
        };
        if quiet == 3 {
            break;
        }
    }
    assert_eq!(quiet, 3, "the vault settles");
    s.ic.inject_rejects(s.vault.id, s.vault.id, 1, RejectCode::CanisterError);
    let job = s.start();
    for _ in 0..30 {
        s.ic.tick();
    }
    let vault = s.vault.id.to_text();
    assert!(
        s.ic.fault_log()
            .iter()
            .any(|l| l.contains("fault fired") && l.matches(vault.as_str()).count() >= 2),
        "the step's self-call was lost: {:?}",
        s.ic.fault_log()
    );
    // The lost call was the step's: the job has not moved, and nothing will move it
    // until the housekeeping looks at it.
    assert_eq!(s.job(job.id).state, RestoreJobState::Starting);
    assert_eq!(s.restored(), None);
    s.ic.advance_time(Duration::from_secs(3_600));
    let done = s.wait(job.id, 400);
    assert_eq!(done.state, RestoreJobState::Done);
    s.assert_restored();
}
