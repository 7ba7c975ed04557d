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
//! only persistent progress, so a lost timer (upgrade, trap) is re-armed by
//! `post_upgrade` or the hourly housekeeping and the job resumes where it was.
//!
//! The push step is a pipeline: it keeps as many `canvault_restore_chunks` calls in
//! flight as the job's flow controller (`canvault_protocol::flow`) allows, plans the next
//! batch whenever a reply comes back, and records the contiguous acknowledged prefix
//! (`acked_prefix`) as it grows. After a failed call it sends nothing new, drains the
//! calls in flight, and records the failure (the job retries from its prefix).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use candid::{CandidType, Principal};
use canvault_protocol::flow::{self, FlowControl};
use canvault_protocol::kit_api::KitError;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ic_cdk::api::time;
use ic_cdk::call::{Call, CallFailed};
use serde::de::DeserializeOwned;

use crate::acked_prefix::AckedPrefix;
use crate::restore_job::{Batch, Failure, Outcome, Step};
use crate::slots::Slots;
use crate::{with_vault, within_budget};
/// How often retention runs and stalled jobs are re-armed.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3_600);

thread_local! {
    /// Jobs with a timer armed or a step running: at most one of either per job.
    static BUSY: RefCell<Slots> = RefCell::new(Slots::default());
    /// True while a table-work timer is armed (reset hourly, in case one trapped).
    static COLLECT_ARMED: Cell<bool> = const { Cell::new(false) };
    /// Each pushing job's in-flight limit, kept across its push steps.
    static FLOWS: RefCell<BTreeMap<u64, FlowControl>> = const { RefCell::new(BTreeMap::new()) };
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
    let Some((target, step)) = with_vault(|v| v.restore_step(id, 1)) else {
        FLOWS.with_borrow_mut(|f| f.remove(&id));
        return;
    };
    let next = match step {
        Step::Begin(req) => {
            let outcome = acked(call::<_, ()>(target, "canvault_restore_begin", req).await);
            with_vault(|v| v.restore_record(id, outcome, time()))
        }
        Step::Finish(snapshot) => {
            let outcome = acked(call::<_, ()>(target, "canvault_restore_finish", snapshot).await);
            with_vault(|v| v.restore_record(id, outcome, time()))
        }
        Step::Push(first) => push_pipelined(id, target, first).await,
    };
    drop(busy);
    match next {
        Some(delay) => schedule(id, delay),
        None => FLOWS.with_borrow_mut(|f| {
            f.remove(&id);
        }),
    }
}

/// The push step of job `id` as a pipeline (see the module documentation), starting
/// with `first` (planned from the job's acknowledged prefix). Returns the delay before
/// the job's next step, or `None` once the job is over.
async fn push_pipelined(id: u64, target: Principal, first: Vec<Batch>) -> Option<Duration> {
    let from = first.first().map_or(0, |b| b.request.chunks[0].index);
    let mut prefix = AckedPrefix::new(from);
    let mut cursor = first.last().map_or(from, |b| b.end);
    let mut planned: VecDeque<Batch> = first.into();
    let mut pipe = FuturesUnordered::new();
    let mut failure: Option<Failure> = None;
    let mut sent_any = false;
    loop {
        if failure.is_none() {
            let limit = FLOWS.with_borrow_mut(|f| f.entry(id).or_insert_with(new_flow).limit());
            while pipe.len() < limit as usize && within_budget() {
                if planned.is_empty() {
                    planned.extend(with_vault(|v| v.restore_batches_from(id, cursor, 1)));
                }
                let Some(batch) = planned.pop_front() else {
                    break;
                };
                cursor = batch.end;
                sent_any = true;
                pipe.push(push_batch(target, batch));
            }
        }
        let Some((start, end, bytes, sent_at_ns, result)) = pipe.next().await else {
            break;
        };
        match result {
            Ok(_) => {
                FLOWS.with_borrow_mut(|f| {
                    f.entry(id)
                        .or_insert_with(new_flow)
                        .on_ack(time().saturating_sub(sent_at_ns));
                });
                if let Some((next_index, bytes)) = prefix.acknowledge(start, end, bytes) {
                    let outcome = Outcome::Pushed {
                        next_index,
                        bytes,
                        error: None,
                    };
                    with_vault(|v| v.restore_record(id, outcome, time()))?;
                }
            }
            Err(CallFailure {
                failure: f,
                congestion,
            }) => {
                if congestion {
                    FLOWS.with_borrow_mut(|flows| {
                        flows.entry(id).or_insert_with(new_flow).on_congestion();
                    });
                }
                failure.get_or_insert(f);
            }
        }
    }
    let outcome = match failure {
        Some(f) => Outcome::Failed(f),
        // Nothing to send while pushing: the job record fails it as an internal error
        // (no progress) rather than arming an empty step forever.
        None if !sent_any => Outcome::Pushed {
            next_index: from,
            bytes: 0,
            error: None,
        },
        None => return Some(Duration::ZERO),
    };
    with_vault(|v| v.restore_record(id, outcome, time()))
}

fn new_flow() -> FlowControl {
    FlowControl::new(flow::DEFAULT_MAX_IN_FLIGHT)
}

/// One `canvault_restore_chunks` call: resolves to the batch's index range, its encoded
/// bytes, when it was sent, and the outcome.
async fn push_batch(
    target: Principal,
    batch: Batch,
) -> (u32, u32, u64, u64, Result<u32, CallFailure>) {
    let start = batch.request.chunks.first().map_or(batch.end, |c| c.index);
    let sent_at_ns = time();
    let call = Call::bounded_wait(target, "canvault_restore_chunks").with_arg(&batch.request);
    let (end, bytes) = (batch.end, batch.bytes);
    drop(batch);
    let result = decode_reply("canvault_restore_chunks", call.await);
    (start, end, bytes, sent_at_ns, result)
}

fn acked(result: Result<(), CallFailure>) -> Outcome {
    match result {
        Ok(()) => Outcome::Acked,
        Err(f) => Outcome::Failed(f.failure),
    }
}

/// A call that did not succeed, and whether it says the path is congested.
struct CallFailure {
    failure: Failure,
    congestion: bool,
}

impl From<Failure> for CallFailure {
    fn from(failure: Failure) -> Self {
        Self {
            failure,
            congestion: false,
        }
    }
}

/// Calls a kit restore endpoint, which answers `Result<T, KitError>`.
async fn call<A: CandidType, T: CandidType + DeserializeOwned>(
    target: Principal,
    method: &str,
    arg: A,
) -> Result<T, CallFailure> {
    decode_reply(
        method,
        Call::bounded_wait(target, method).with_arg(arg).await,
    )
}

/// Classifies a kit restore endpoint's answer.
fn decode_reply<T: CandidType + DeserializeOwned>(
    method: &str,
    response: Result<ic_cdk::call::Response, CallFailed>,
) -> Result<T, CallFailure> {
    let response = response.map_err(|e| match e {
        CallFailed::CallRejected(r) => CallFailure {
            failure: Failure::from_reject(r.raw_reject_code(), r.reject_message()),
            congestion: flow::is_congestion(r.raw_reject_code()),
        },
        CallFailed::CallPerformFailed(e) => CallFailure {
            failure: Failure::Retry(format!("{method} not sent: {e}")),
            congestion: true,
        },
        CallFailed::InsufficientLiquidCycleBalance(e) => {
            Failure::Retry(format!("{method} not sent: {e}")).into()
        }
    })?;
    let reply: Result<T, KitError> = canvault_protocol::decode::decode_one(&response)
        .map_err(|e| Failure::Permanent(format!("{method}: unexpected reply: {e}")))?;
    Ok(reply.map_err(|e| Failure::Permanent(format!("{method}: the target refused: {e}")))?)
}
