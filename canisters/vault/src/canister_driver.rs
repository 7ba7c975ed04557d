//! Timers of canister jobs (whole-canister backups and restores): the calls to the
//! management canister. Like `restore_driver`, each step runs in its own timer
//! execution: plan (sync, commits the record), call (async, bounded wait), record the
//! outcome (sync), arm the next timer. The job record is the only progress, so a lost
//! timer is re-armed by `post_upgrade` or the hourly housekeeping and the job resumes.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use candid::{CandidType, Principal};
use ic_cdk::api::time;
use ic_cdk::call::{Call, CallFailed};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterStatusResult, DeleteCanisterSnapshotArgs, LoadCanisterSnapshotArgs,
    ReadCanisterSnapshotDataArgs, ReadCanisterSnapshotDataResult, ReadCanisterSnapshotMetadataArgs,
    Snapshot, TakeCanisterSnapshotArgs, UploadCanisterSnapshotMetadataResult,
};
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

use crate::canister_job::{Outcome, Plan, Step};
use crate::restore_job::Failure;
use crate::slots::Slots;
use crate::{with_vault, within_budget};

/// Reads or uploads in flight per step: 4 MiB, well under a message's work budget.
const IN_FLIGHT: usize = 4;
/// Reject code of an unknown snapshot or canister (`DESTINATION_INVALID`).
const DESTINATION_INVALID: u32 = 3;

thread_local! {
    /// Jobs with a timer armed or a step running.
    static BUSY: RefCell<Slots> = RefCell::new(Slots::default());
    /// The timer armed for the earliest due schedule.
    static SCHEDULE_TIMER: Cell<Option<ic_cdk_timers::TimerId>> = const { Cell::new(None) };
}

struct Busy(u64);

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.with_borrow_mut(|b| b.finish(self.0));
    }
}

/// Arms the next step of job `id` after `delay`, unless one is armed or running.
pub fn schedule(id: u64, delay: Duration) {
    let delay_ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
    if BUSY.with_borrow_mut(|b| b.arm(id, time(), delay_ns)) {
        ic_cdk_timers::set_timer(delay, run_step(id));
    }
    crate::restore_driver::revive_timers();
}

/// Arms the schedule timer for the earliest due schedule (replacing the one armed), or
/// none when there is no schedule. Called at install, upgrade, hourly, and whenever a
/// schedule changes or runs.
pub fn arm_schedules() {
    if let Some(old) = SCHEDULE_TIMER.take() {
        ic_cdk_timers::clear_timer(old);
    }
    if let Some(due) = with_vault(|v| v.next_schedule_due()) {
        let delay = Duration::from_nanos(due.saturating_sub(time()));
        let id = ic_cdk_timers::set_timer(delay, async {
            SCHEDULE_TIMER.set(None);
            run_schedules();
        });
        SCHEDULE_TIMER.set(Some(id));
    }
    crate::restore_driver::revive_timers();
}

/// Starts the due scheduled backups, then re-arms for the next one.
fn run_schedules() {
    let started = with_vault(|v| v.run_due_schedules(ic_cdk::api::canister_self(), time()));
    for id in started {
        schedule(id, Duration::ZERO);
    }
    arm_schedules();
}

/// Arms every active canister job (install, upgrade, housekeeping).
pub fn resume_jobs() {
    for id in with_vault(|v| v.active_canister_jobs()) {
        schedule(id, Duration::ZERO);
    }
}

async fn run_step(id: u64) {
    if !BUSY.with_borrow_mut(|b| b.start(id)) {
        return;
    }
    let busy = Busy(id);
    let plan = with_vault(|v| v.canister_step(id, IN_FLIGHT, time(), &within_budget));
    let step = match plan {
        // The job ended (now or earlier): what it committed falls under retention.
        Plan::Over => {
            crate::restore_driver::schedule_retention();
            return;
        }
        Plan::Later(delay) => {
            drop(busy);
            schedule(id, delay);
            return;
        }
        Plan::Call(step) => step,
    };
    let outcome = call_step(step).await;
    let next = with_vault(|v| v.canister_record(id, outcome, time()));
    drop(busy);
    if let Some(delay) = next {
        schedule(id, delay);
    }
}

async fn call_step(step: Step) -> Outcome {
    let acked = |r: Result<(), Failure>| r.map_or_else(Outcome::Failed, |()| Outcome::Acked);
    match step {
        Step::Status(canister) => {
            match management::<_, CanisterStatusResult>("canister_status", record(canister)).await {
                Ok(status) => Outcome::Status(status.status),
                Err(f) => Outcome::Failed(f),
            }
        }
        Step::Stop(canister) => acked(unit("stop_canister", record(canister)).await),
        Step::Start(canister) => acked(unit("start_canister", record(canister)).await),
        Step::Take { canister, known } => {
            let take = TakeCanisterSnapshotArgs {
                canister_id: canister,
                replace_snapshot: None,
                uninstall_code: None,
                sender_canister_version: None,
            };
            create(canister, known, async move {
                management::<_, Snapshot>("take_canister_snapshot", take)
                    .await
                    .map(|s| s.id)
            })
            .await
        }
        Step::UploadMetadata { known, args } => {
            let canister = args.canister_id;
            create(canister, known, async move {
                management::<_, UploadCanisterSnapshotMetadataResult>(
                    "upload_canister_snapshot_metadata",
                    args,
                )
                .await
                .map(|r| r.snapshot_id)
            })
            .await
        }
        Step::ReadMetadata { canister, snapshot } => {
            let args = ReadCanisterSnapshotMetadataArgs {
                canister_id: canister,
                snapshot_id: snapshot.into_vec(),
            };
            match raw_management("read_canister_snapshot_metadata", args).await {
                Ok(bytes) => Outcome::Metadata(ByteBuf::from(bytes)),
                Err(f) => Outcome::Failed(f),
            }
        }
        Step::Read {
            canister,
            snapshot,
            kinds,
        } => {
            let calls = kinds.into_iter().map(|kind| {
                let args = ReadCanisterSnapshotDataArgs {
                    canister_id: canister,
                    snapshot_id: snapshot.to_vec(),
                    kind,
                };
                async move {
                    management::<_, ReadCanisterSnapshotDataResult>(
                        "read_canister_snapshot_data",
                        args,
                    )
                    .await
                    .map(|r| ByteBuf::from(r.chunk))
                }
            });
            Outcome::Read(futures::future::join_all(calls).await)
        }
        Step::Upload(uploads) => {
            let calls = uploads.into_iter().map(|args| async move {
                match args {
                    Some(args) => unit("upload_canister_snapshot_data", args).await,
                    None => Ok(()),
                }
            });
            Outcome::Uploaded(futures::future::join_all(calls).await)
        }
        Step::Load { canister, snapshot } => {
            let args = LoadCanisterSnapshotArgs {
                canister_id: canister,
                snapshot_id: snapshot.into_vec(),
                sender_canister_version: None,
            };
            acked(unit("load_canister_snapshot", args).await)
        }
        Step::Delete { canister, snapshot } => {
            let args = DeleteCanisterSnapshotArgs {
                canister_id: canister,
                snapshot_id: snapshot.into_vec(),
            };
            match raw_management("delete_canister_snapshot", args).await {
                Ok(_) => Outcome::Acked,
                // Already gone (deleted by an earlier attempt whose reply was lost).
                Err(Failure::Permanent(m))
                    if m.contains(&format!("code {DESTINATION_INVALID})")) =>
                {
                    Outcome::Acked
                }
                Err(f) => Outcome::Failed(f),
            }
        }
    }
}

/// Creates a snapshot of `canister` with `make`, unless a previous attempt's lost reply
/// already created one: lists the snapshots first, and adopts one not in `known`.
async fn create(
    canister: Principal,
    known: Option<Vec<ByteBuf>>,
    make: impl Future<Output = Result<Vec<u8>, Failure>>,
) -> Outcome {
    let listed =
        match management::<_, Vec<Snapshot>>("list_canister_snapshots", record(canister)).await {
            Ok(list) => list,
            Err(f) => return Outcome::Failed(f),
        };
    let listed: Vec<ByteBuf> = listed.into_iter().map(|s| ByteBuf::from(s.id)).collect();
    if let Some(known) = &known
        && let Some(new) = listed.iter().find(|id| !known.contains(id))
    {
        return Outcome::Created(new.clone());
    }
    match make.await {
        Ok(id) => Outcome::Created(ByteBuf::from(id)),
        Err(failure) => Outcome::NotCreated {
            known: known.unwrap_or(listed),
            failure,
        },
    }
}

fn record(canister: Principal) -> CanisterIdRecord {
    CanisterIdRecord {
        canister_id: canister,
    }
}

/// A management call with a candid reply.
async fn management<A: CandidType, T: CandidType + DeserializeOwned>(
    method: &str,
    arg: A,
) -> Result<T, Failure> {
    let bytes = raw_management(method, arg).await?;
    canvault_protocol::decode::decode_one(&bytes)
        .map_err(|e| Failure::Permanent(format!("{method}: unexpected reply: {e}")))
}

/// A management call whose reply carries nothing.
async fn unit<A: CandidType>(method: &str, arg: A) -> Result<(), Failure> {
    raw_management(method, arg).await.map(drop)
}

/// A management call; the raw candid reply.
async fn raw_management<A: CandidType>(method: &str, arg: A) -> Result<Vec<u8>, Failure> {
    Call::bounded_wait(Principal::management_canister(), method)
        .with_arg(arg)
        .await
        .map(|r| r.into_bytes())
        .map_err(|e| match e {
            CallFailed::CallRejected(r) => Failure::from_reject(
                r.raw_reject_code(),
                &format!("{method}: {}", r.reject_message()),
            ),
            CallFailed::CallPerformFailed(e) => Failure::Retry(format!("{method} not sent: {e}")),
            CallFailed::InsufficientLiquidCycleBalance(e) => {
                Failure::Retry(format!("{method} not sent: {e}"))
            }
        })
}
