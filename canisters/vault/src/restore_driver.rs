//! Timers: the restore push and the hourly housekeeping. The only module besides
//! `lib.rs` that uses the system API.
//!
//! Each restore step runs in its own timer execution: read the next step from the job
//! record (sync), make the calls (async, bounded wait), record the outcome (sync), and
//! arm the next timer. No state is borrowed across an `await`; the job record is the
//! only progress, so a lost timer (upgrade, trap) is re-armed by `post_upgrade` or the
//! hourly housekeeping and the job resumes where it was.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Duration;

use candid::{CandidType, Principal};
use canvault_protocol::kit_api::KitError;
use ic_cdk::api::time;
use ic_cdk::call::{Call, CallFailed};
use serde::de::DeserializeOwned;

use crate::restore_job::{Failure, Outcome, Step};
use crate::with_vault;

/// Push calls in flight per job.
const IN_FLIGHT: usize = 4;
/// How often retention runs and stalled jobs are re-armed.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3_600);

thread_local! {
    /// Jobs with a timer armed or a step running: at most one of either per job.
    static BUSY: RefCell<BTreeSet<u64>> = const { RefCell::new(BTreeSet::new()) };
}

/// Removes a job from `BUSY` when its step ends, even if the step traps.
struct Busy(u64);

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.with_borrow_mut(|b| b.remove(&self.0));
    }
}

/// Arms the housekeeping interval and every active restore job (install, upgrade).
pub fn arm_timers() {
    ic_cdk_timers::set_timer_interval(HOUSEKEEPING_EVERY, || async {
        retention_pass();
        resume_jobs();
    });
    resume_jobs();
}

/// Runs a retention pass in its own message (after a commit, or to continue one).
pub fn schedule_retention() {
    ic_cdk_timers::set_timer(Duration::ZERO, async { retention_pass() });
}

/// One budgeted retention pass; continues in a new message while work is left.
fn retention_pass() {
    if with_vault(|v| v.apply_retention(time())).more {
        schedule_retention();
    }
}

/// Arms the next step of job `id` after `delay`, unless one is armed or running.
pub fn schedule(id: u64, delay: Duration) {
    if BUSY.with_borrow_mut(|b| b.insert(id)) {
        ic_cdk_timers::set_timer(delay, run_step(id));
    }
}

fn resume_jobs() {
    for id in with_vault(|v| v.active_restores()) {
        schedule(id, Duration::ZERO);
    }
}

async fn run_step(id: u64) {
    let busy = Busy(id);
    let Some((target, step)) = with_vault(|v| v.restore_step(id, IN_FLIGHT)) else {
        return;
    };
    let outcome = match step {
        Step::Begin(req) => acked(call::<_, ()>(target, "canvault_restore_begin", req).await),
        Step::Finish(snapshot) => {
            acked(call::<_, ()>(target, "canvault_restore_finish", snapshot).await)
        }
        Step::Push(batches) => {
            let from = batches.first().map_or(0, |b| b.request.chunks[0].index);
            let calls = batches
                .iter()
                .map(|b| call::<_, u32>(target, "canvault_restore_chunks", &b.request));
            let results = futures::future::join_all(calls).await;
            let (mut next_index, mut bytes, mut error) = (from, 0, None);
            for (batch, result) in batches.iter().zip(results) {
                match result {
                    Ok(_) => (next_index, bytes) = (batch.end, bytes + batch.bytes),
                    Err(failure) => {
                        error = Some(failure);
                        break;
                    }
                }
            }
            Outcome::Pushed {
                next_index,
                bytes,
                error,
            }
        }
    };
    let next = with_vault(|v| v.restore_record(id, outcome, time()));
    drop(busy);
    if let Some(delay) = next {
        schedule(id, delay);
    }
}

fn acked(result: Result<(), Failure>) -> Outcome {
    match result {
        Ok(()) => Outcome::Acked,
        Err(failure) => Outcome::Failed(failure),
    }
}

/// Calls a kit restore endpoint, which answers `Result<T, KitError>`.
async fn call<A: CandidType, T: CandidType + DeserializeOwned>(
    target: Principal,
    method: &str,
    arg: A,
) -> Result<T, Failure> {
    let response = Call::bounded_wait(target, method)
        .with_arg(arg)
        .await
        .map_err(|e| match e {
            CallFailed::CallRejected(r) => {
                Failure::from_reject(r.raw_reject_code(), r.reject_message())
            }
            CallFailed::CallPerformFailed(e) => Failure::Retry(format!("{method} not sent: {e}")),
            CallFailed::InsufficientLiquidCycleBalance(e) => {
                Failure::Retry(format!("{method} not sent: {e}"))
            }
        })?;
    let reply: Result<T, KitError> = response
        .candid()
        .map_err(|e| Failure::Permanent(format!("{method}: unexpected reply: {e}")))?;
    reply.map_err(|e| Failure::Permanent(format!("{method}: the target refused: {e}")))
}
