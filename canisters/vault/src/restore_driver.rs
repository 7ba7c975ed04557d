//! Timers: the restore push, retention, table work, and the hourly housekeeping. The
//! only module besides `lib.rs` that uses the system API.
//!
//! Housekeeping arms three independent things, each in its own message, so a failure of
//! one never stops the others: a retention pass, the table-work chain (`collect`), and a
//! timer for every active restore job whose step is not running.
//!
//! Each restore step runs in its own timer execution: read the next step from the job
//! record (sync), make the calls (async, bounded wait), record the outcome (sync), and
//! arm the next timer. No state is borrowed across an `await`; the job record is the
//! only progress, so a lost timer (upgrade, trap) is re-armed by `post_upgrade` or the
//! hourly housekeeping and the job resumes where it was.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use candid::{CandidType, Principal};
use canvault_protocol::kit_api::KitError;
use ic_cdk::api::time;
use ic_cdk::call::{Call, CallFailed};
use serde::de::DeserializeOwned;

use crate::restore_job::{Failure, Outcome, Step};
use crate::slots::Slots;
use crate::{with_vault, within_budget};

/// Push calls in flight per job.
const IN_FLIGHT: usize = 4;
/// How often retention runs and stalled jobs are re-armed.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3_600);

thread_local! {
    /// Jobs with a timer armed or a step running: at most one of either per job.
    static BUSY: RefCell<Slots> = RefCell::new(Slots::default());
    /// True while a table-work timer is armed (reset hourly, in case one trapped).
    static COLLECT_ARMED: Cell<bool> = const { Cell::new(false) };
}

/// Frees a job's slot when its step ends. A trap after an `await` drops it (ic-cdk
/// cleans the future up); a trap before the first `await` rolls the step back, which
/// [`Slots`] recognises as a lost timer.
struct Busy(u64);

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.with_borrow_mut(|b| b.finish(self.0));
    }
}

/// Arms the housekeeping interval, the table work, every active restore and canister
/// job, and the schedule timer (install, upgrade).
pub fn arm_timers() {
    ic_cdk_timers::set_timer_interval(HOUSEKEEPING_EVERY, || async {
        schedule_retention();
        COLLECT_ARMED.set(false);
        schedule_collect();
        resume_jobs();
        crate::canister_driver::resume_jobs();
        crate::canister_driver::arm_schedules();
    });
    schedule_collect();
    resume_jobs();
    crate::canister_driver::resume_jobs();
    crate::canister_driver::arm_schedules();
}

/// Re-activates the canister's global timer if it is off. The IC deactivates it when
/// it schedules `canister_global_timer`; if that execution traps, the rollback
/// restores ic-cdk-timers' record of the timer it had set but not the deactivation,
/// so ic-cdk-timers never sets it again and every timer of the vault (restore steps,
/// table work, the hourly housekeeping) is dead. Setting it to now lets ic-cdk-timers
/// run and re-arm from its own list. The vault always has the hourly timer, so the
/// global timer is off only in that case. Update context only (it traps in a query).
pub fn revive_timers() {
    let previous = ic_cdk::api::global_timer_set(time());
    if previous != 0 {
        ic_cdk::api::global_timer_set(previous);
    }
}

/// Runs a retention pass in its own message (after a commit, or hourly).
pub fn schedule_retention() {
    ic_cdk_timers::set_timer(Duration::ZERO, async { retention_pass() });
    revive_timers();
}

/// Arms one table-work step unless one is armed.
pub fn schedule_collect() {
    if !COLLECT_ARMED.replace(true) {
        ic_cdk_timers::set_timer(Duration::ZERO, async { collect_step() });
    }
    revive_timers();
}

/// One retention pass; its table work continues in the table-work chain.
fn retention_pass() {
    if with_vault(|v| v.apply_retention(time(), &within_budget)).more {
        schedule_collect();
    }
}

/// One budgeted step of table work; arms the next while work is left.
fn collect_step() {
    COLLECT_ARMED.set(false);
    if !with_vault(|v| v.collect(&within_budget)) {
        schedule_collect();
    }
}

/// Arms the next step of job `id` after `delay`, unless one is armed or running (an
/// armed one long overdue lost its timer and is armed again).
pub fn schedule(id: u64, delay: Duration) {
    let delay_ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
    if BUSY.with_borrow_mut(|b| b.arm(id, time(), delay_ns)) {
        ic_cdk_timers::set_timer(delay, run_step(id));
    }
    revive_timers();
}

fn resume_jobs() {
    for id in with_vault(|v| v.active_restores()) {
        schedule(id, Duration::ZERO);
    }
}

async fn run_step(id: u64) {
    if !BUSY.with_borrow_mut(|b| b.start(id)) {
        return; // a re-armed duplicate of a step that is running after all
    }
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
    let reply: Result<T, KitError> = canvault_protocol::decode::decode_one(&response)
        .map_err(|e| Failure::Permanent(format!("{method}: unexpected reply: {e}")))?;
    reply.map_err(|e| Failure::Permanent(format!("{method}: the target refused: {e}")))
}
