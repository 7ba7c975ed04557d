//! The effectful side of backups: timers and inter-canister calls to the vault.
//!
//! One pump task at a time walks the backup state machine (`backup.rs`): begin, send
//! windows of batches concurrently, commit. Every call is bounded-wait and idempotent
//! (keyed by snapshot id, index and hash), so a timeout or a lost reply is handled by
//! sending the same thing again. Progress lives in stable memory, so an upgrade in the
//! middle only loses the in-flight calls; `post_upgrade` re-arms the pump.
//!
//! Retry policy: transient rejects (SYS_TRANSIENT 2, SYS_UNKNOWN 6, and CANISTER_ERROR 5,
//! which a stopped or upgrading vault returns) are retried after an exponential backoff
//! (1 s doubling to 60 s); after [`MAX_FAILURES_IN_A_ROW`] the backup ends as failed.
//! A typed refusal from the vault (`VaultError`) ends it at once, with its reason.
//! Except `InUse` from `commit_snapshot` (the vault's table work for the snapshot is not
//! done): asked again every 2 s, not counted. The root walk and the merge into the
//! known table run under the preparation budget and resume in a fresh execution.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Duration;

use candid::utils::ArgumentEncoder;
use candid::{CandidType, Principal};
use canvault_protocol::vault_api::{
    BeginSnapshotResponse, CommitSnapshotRequest, PutChunksRequest, PutChunksResponse, SnapshotId,
    SnapshotInfo, VaultError,
};
use ic_cdk::call::{Call, CallFailed};
use serde::de::DeserializeOwned;

use crate::backup::Batch;
use crate::{now, with_kit};

/// Consecutive failed calls after which a backup is given up.
pub const MAX_FAILURES_IN_A_ROW: u32 = 20;
/// Instructions one pump execution may spend preparing batches (one DTS slice is 2B).
const PREPARE_INSTRUCTION_BUDGET: u64 = 1_000_000_000;
/// A pump that has not made progress for this long is presumed dead (its task was
/// cancelled by a trap) and may be replaced.
const STALE_PUMP_NS: u64 = 15 * 60 * 1_000_000_000;

#[derive(Default)]
struct Pump {
    /// When the running pump last made progress (0: none running).
    alive_at_ns: u64,
    in_flight: BTreeSet<u32>,
    force_data: BTreeSet<u32>,
}

thread_local! {
    static PUMP: RefCell<Pump> = RefCell::new(Pump::default());
    /// Set by a step that spent this execution's budget on table work (the root walk,
    /// the merge into the known table) and scheduled the pump again: the running pump
    /// stops, and the next one goes on in a fresh execution.
    static YIELDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What the pump does next.
enum Step {
    Idle,
    /// An image backup was asked for while a data-set backup ran: freeze it now.
    FreezeImage(Principal),
    /// The data-set backup in progress ran out of time: give it up.
    Expire(String),
    Begin(Principal),
    Send(Principal, u64),
    Commit(Principal, u64),
}

/// Why a call did not produce a usable answer.
enum CallError {
    /// Try again later.
    Retry(String),
    /// Give the backup up.
    Fatal(String),
}

/// Starts the pump after `delay` unless one is running.
pub fn schedule(delay: Duration) {
    ic_cdk_timers::set_timer(delay, async { pump().await });
    revive_timers();
}

/// Re-activates the app's global timer if it is off while the kit has work. The IC
/// deactivates it when it schedules `canister_global_timer`; if that execution traps,
/// the rollback restores ic-cdk-timers' record of the timer it had set but not the
/// deactivation, so ic-cdk-timers never sets it again and every timer of the app (the
/// backup interval, the pump) is dead. Setting it to now lets ic-cdk-timers run and
/// re-arm from its own list. Update context only (it traps in a query).
pub fn revive_timers() {
    let previous = ic_cdk::api::global_timer_set(now());
    if previous != 0 {
        ic_cdk::api::global_timer_set(previous);
    }
}

fn take_pump() -> bool {
    PUMP.with(|p| {
        let mut p = p.borrow_mut();
        let t = now();
        if p.alive_at_ns != 0 && t.saturating_sub(p.alive_at_ns) < STALE_PUMP_NS {
            return false;
        }
        *p = Pump {
            alive_at_ns: t,
            ..Pump::default()
        };
        true
    })
}

fn heartbeat() {
    PUMP.with(|p| p.borrow_mut().alive_at_ns = now());
}

fn release_pump() {
    PUMP.with(|p| p.borrow_mut().alive_at_ns = 0);
}

/// Held by the running pump. Dropped without [`Running::finish`] — the pump's task was
/// cancelled because a callback trapped after an await (ic-cdk drops the task in the
/// call's cleanup) — it releases the pump and schedules a fresh one, which resumes
/// from the progress in stable memory.
struct Running {
    finished: bool,
}

impl Running {
    fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        release_pump();
        if !self.finished {
            schedule(RESUME_AFTER_TRAP);
        }
    }
}

/// Delay before a pump whose task was cancelled by a trap is replaced.
const RESUME_AFTER_TRAP: Duration = Duration::from_secs(5);

/// Watchdog: starts a pump if none is alive (none running, or the running one made no
/// progress for [`STALE_PUMP_NS`], i.e. its task died without cleanup). Called by every
/// schedule tick and `backup_now` that finds a backup in progress, so a backup in
/// progress is never left without a pump.
pub fn kick() {
    schedule(Duration::ZERO);
}

fn next_step() -> Step {
    if YIELDED.replace(false) {
        return Step::Idle;
    }
    with_kit(|k| {
        if k.completing()
            && let Some(b) = k.state().backup.as_ref()
        {
            return Step::Commit(b.vault, b.snapshot_id.unwrap_or_default());
        }
        if let Some(reason) = k.dataset_backup_expired(now()) {
            return Step::Expire(reason);
        }
        if k.state().backup.is_none()
            && k.state().restore.is_none()
            && k.state().image_backup_requested_at_ns.is_some()
            && let Some(vault) = k.state().config.vault
        {
            return Step::FreezeImage(vault);
        }
        if k.state().backup.is_none() && !k.start_next_dataset(now()) {
            return Step::Idle;
        }
        let Some(b) = k.state().backup.as_ref() else {
            return Step::Idle;
        };
        match b.snapshot_id {
            None => Step::Begin(b.vault),
            Some(id) if k.ready_to_commit() => Step::Commit(b.vault, id),
            Some(id) => Step::Send(b.vault, id),
        }
    })
}

async fn pump() {
    if !take_pump() {
        return;
    }
    let running = Running { finished: false };
    loop {
        heartbeat();
        let outcome = match next_step() {
            Step::Idle => break,
            Step::FreezeImage(vault) => {
                if let Some(hook) = crate::hooks().before_snapshot {
                    hook();
                }
                with_kit(|k| {
                    k.freeze(vault, now()).map_err(|e| {
                        // Not reached (next_step checked there is no backup or restore);
                        // dropping the request keeps the loop from spinning on it.
                        k.update_state(|s| s.image_backup_requested_at_ns = None);
                        CallError::Fatal(e.to_string())
                    })
                })
            }
            Step::Expire(reason) => Err(CallError::Fatal(reason)),
            Step::Begin(vault) => begin(vault).await,
            Step::Send(vault, id) => send_window(vault, id).await,
            Step::Commit(vault, id) => commit(vault, id).await,
        };
        match outcome {
            Ok(()) => {}
            Err(CallError::Fatal(reason)) => {
                ic_cdk::println!("canvault: backup failed: {reason}");
                give_up(reason).await;
            }
            Err(CallError::Retry(reason)) => {
                let failures = with_kit(|k| k.record_failure(reason.clone()));
                if failures >= MAX_FAILURES_IN_A_ROW {
                    let reason =
                        format!("gave up after {failures} failed attempts; last: {reason}");
                    give_up(reason).await;
                    continue;
                }
                let delay =
                    Duration::from_secs(1u64 << (failures - 1).min(6)).min(Duration::from_secs(60));
                running.finish();
                schedule(delay);
                return;
            }
        }
    }
    running.finish();
}

/// Ends the backup in progress as failed and asks the vault to abort its snapshot
/// (best effort: a vault that does not answer keeps it until its own clean-up). The
/// pump then goes on with the next job.
async fn give_up(reason: String) {
    let Some((vault, snapshot_id)) = with_kit(|k| k.fail(reason.clone(), now())) else {
        return;
    };
    abort_snapshot(vault, snapshot_id, reason).await;
}

/// Asks `vault` to abort `snapshot_id` from a task of its own (best effort).
pub fn abort_in_vault(vault: Principal, snapshot_id: SnapshotId, reason: String) {
    ic_cdk::futures::spawn(abort_snapshot(vault, snapshot_id, reason));
}

async fn abort_snapshot(vault: Principal, snapshot_id: SnapshotId, reason: String) {
    let aborted = Call::bounded_wait(vault, "abort_snapshot")
        .with_args(&(snapshot_id, reason))
        .await;
    if let Err(e) = aborted {
        ic_cdk::println!("canvault: abort_snapshot {snapshot_id} failed: {e}");
    }
}

async fn call<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
    vault: Principal,
    method: &str,
    args: A,
) -> Result<R, CallError> {
    let response = Call::bounded_wait(vault, method)
        .with_args(&args)
        .await
        .map_err(|e| match e {
            CallFailed::CallRejected(r) => {
                let msg = format!(
                    "{method}: reject code {}: {}",
                    r.raw_reject_code(),
                    r.reject_message()
                );
                match r.raw_reject_code() {
                    2 | 5 | 6 => CallError::Retry(msg),
                    _ => CallError::Fatal(msg),
                }
            }
            other => CallError::Retry(format!("{method}: {other}")),
        })?;
    canvault_protocol::decode::decode_one::<R>(&response.into_bytes())
        .map_err(|e| CallError::Fatal(format!("{method}: undecodable reply: {e}")))
}

fn vault_refused(method: &str, e: &VaultError) -> CallError {
    let msg = format!("{method}: the vault refused: {e}");
    if e.is_retryable() {
        CallError::Retry(msg)
    } else {
        CallError::Fatal(msg)
    }
}

/// The begin nonce of the backup in progress: its identity.
fn running_nonce() -> Option<u64> {
    with_kit(|k| k.state().backup.as_ref().map(|b| b.nonce))
}

/// Whether the backup that sent a request (`nonce`) is still the one in progress when
/// its reply arrives. Another may have taken its place during the call (an on-demand
/// image backup preempts a data set): a stale reply, answer or error, is dropped.
fn still_running(nonce: u64) -> bool {
    running_nonce() == Some(nonce)
}

async fn begin(vault: Principal) -> Result<(), CallError> {
    let Some(req) = with_kit(|k| k.begin_request()) else {
        return Ok(());
    };
    // A data set's snapshots name it in the second argument, so the vault keeps
    // retention per (source, data set); image backups send none.
    let dataset = req
        .label
        .as_deref()
        .and_then(|l| l.strip_prefix(crate::dataset::DATASET_LABEL_PREFIX))
        .map(str::to_string);
    let nonce = req.nonce;
    let reply: Result<Result<BeginSnapshotResponse, VaultError>, CallError> =
        call(vault, "begin_snapshot", (req, dataset)).await;
    if !still_running(nonce) {
        return Ok(());
    }
    let reply = reply?;
    let resp = reply.map_err(|e| vault_refused("begin_snapshot", &e))?;
    with_kit(|k| k.begun(resp.snapshot_id, resp.parent));
    Ok(())
}

async fn send_window(vault: Principal, snapshot_id: u64) -> Result<(), CallError> {
    let (in_flight, force) = PUMP.with(|p| {
        let p = p.borrow();
        (p.in_flight.clone(), p.force_data.clone())
    });
    let Some(nonce) = running_nonce() else {
        return Ok(());
    };
    let window = with_kit(|k| k.state().config.window.max(1)) as usize;
    let batches: Vec<Batch> = with_kit(|k| {
        k.plan_batches(window, &in_flight, &force, || {
            ic_cdk::api::instruction_counter() < PREPARE_INSTRUCTION_BUDGET
        })
    });
    if batches.is_empty() {
        return Err(CallError::Retry(
            "nothing could be prepared in this execution".into(),
        ));
    }
    PUMP.with(|p| {
        let mut p = p.borrow_mut();
        for b in &batches {
            p.in_flight.extend(b.chunks.iter().map(|c| c.index));
        }
    });
    let calls = batches.iter().map(|b| {
        let req = PutChunksRequest {
            snapshot_id,
            chunks: b.chunks.clone(),
        };
        call::<_, Result<PutChunksResponse, VaultError>>(vault, "put_chunks", (req,))
    });
    let results = futures::future::join_all(calls).await;
    PUMP.with(|p| {
        let mut p = p.borrow_mut();
        for c in batches.iter().flat_map(|b| &b.chunks) {
            p.in_flight.remove(&c.index);
        }
    });
    if !still_running(nonce) {
        return Ok(());
    }
    let mut first_error = None;
    for (batch, result) in batches.iter().zip(results) {
        match result.and_then(|r| r.map_err(|e| vault_refused("put_chunks", &e))) {
            Ok(resp) => {
                with_kit(|k| k.acknowledge(batch, &resp.missing));
                PUMP.with(|p| p.borrow_mut().force_data.extend(resp.missing));
            }
            Err(e) => {
                if first_error.is_none() || matches!(e, CallError::Fatal(_)) {
                    first_error = Some(e);
                }
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Walks the root, asks the vault to commit, then merges into the known table: the
/// walk and the merge run under [`PREPARE_INSTRUCTION_BUDGET`] per execution and
/// yield to a fresh execution ([`yield_execution`]) until done.
async fn commit(vault: Principal, snapshot_id: u64) -> Result<(), CallError> {
    let within_budget = || ic_cdk::api::instruction_counter() < PREPARE_INSTRUCTION_BUDGET;
    if with_kit(|k| k.completing()) {
        if !with_kit(|k| k.advance_complete(now(), within_budget)) {
            yield_execution();
        }
        return Ok(());
    }
    let Some(root) = with_kit(|k| k.advance_root(within_budget)) else {
        yield_execution();
        return Ok(());
    };
    let Some(nonce) = running_nonce() else {
        return Ok(());
    };
    let req = CommitSnapshotRequest { snapshot_id, root };
    let reply: Result<Result<SnapshotInfo, VaultError>, CallError> =
        call(vault, "commit_snapshot", (req,)).await;
    if !still_running(nonce) {
        return Ok(());
    }
    match reply? {
        // The vault's table work for this snapshot (copying the parent's table, walking
        // ours) goes on in its own messages: ask again later, not a failure.
        Err(VaultError::InUse(_)) => {
            yield_for(COMMIT_POLL);
            return Ok(());
        }
        other => other.map_err(|e| vault_refused("commit_snapshot", &e))?,
    };
    with_kit(|k| k.committed(root));
    if !with_kit(|k| k.advance_complete(now(), within_budget)) {
        yield_execution();
    }
    Ok(())
}

/// How long a commit waits before asking a vault that answered `InUse` again.
const COMMIT_POLL: Duration = Duration::from_secs(2);

/// Ends the running pump after this step and starts another in a fresh execution.
fn yield_execution() {
    yield_for(Duration::ZERO);
}

/// Ends the running pump after this step and starts another after `delay`.
fn yield_for(delay: Duration) {
    YIELDED.set(true);
    schedule(delay);
}
