//! The effectful side of backups: timers and inter-canister calls to the vault.
//!
//! One pump task at a time walks the backup state machine (`backup.rs`): begin, push the
//! batches, commit. The push is a pipeline: the pump keeps as many `put_chunks` calls in
//! flight as the flow controller (`canvault_protocol::flow`) allows, and every reply
//! refills it, in the reply's own execution, within a per-execution and a per-round
//! preparation budget. Every call is bounded-wait and idempotent
//! (keyed by snapshot id, index and hash), so a timeout or a lost reply is handled by
//! sending the same thing again. Progress lives in stable memory, so an upgrade in the
//! middle only loses the in-flight calls; `post_upgrade` re-arms the pump.
//!
//! Retry policy: transient rejects (SYS_TRANSIENT 2, SYS_UNKNOWN 6, and CANISTER_ERROR 5,
//! which a stopped or upgrading vault returns) are retried (the first two also halve the
//! in-flight limit) after an exponential backoff
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
use canvault_protocol::flow::{self, FlowControl};
use canvault_protocol::vault_api::{
    BeginSnapshotResponse, ChunkBody, ChunkPut, CommitSnapshotRequest, PutChunksRequest,
    PutChunksResponse, SnapshotId, SnapshotInfo, VaultError,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ic_cdk::call::{Call, CallFailed};
use serde::de::DeserializeOwned;

use crate::backup::Batch;
use crate::{now, with_kit};

/// Consecutive failed calls after which a backup is given up.
pub const MAX_FAILURES_IN_A_ROW: u32 = 20;
/// Instructions one execution may spend preparing batches (one DTS slice is 2B).
const PREPARE_INSTRUCTION_BUDGET: u64 = 1_000_000_000;
/// Instructions the kit may spend preparing batches per round, over all its executions:
/// the app keeps at least 5B of the 7B a canister may run per round.
const PREPARE_ROUND_BUDGET: u64 = 2_000_000_000;
/// A pump that has not made progress for this long is presumed dead (its task was
/// cancelled by a trap) and may be replaced.
const STALE_PUMP_NS: u64 = 15 * 60 * 1_000_000_000;

struct Pump {
    /// When the running pump last made progress (0: none running).
    alive_at_ns: u64,
    /// Chunks in a `put_chunks` call that has not come back.
    in_flight: BTreeSet<u32>,
    /// Chunks the vault reported missing: sent with their bytes.
    force_data: BTreeSet<u32>,
    /// The in-flight limit; kept across pumps, so a retry resumes at the learnt rate.
    flow: FlowControl,
    /// The round (its time) whose preparation spending `round_spent` counts.
    round_ns: u64,
    round_spent: u64,
}

impl Default for Pump {
    fn default() -> Self {
        Self {
            alive_at_ns: 0,
            in_flight: BTreeSet::new(),
            force_data: BTreeSet::new(),
            flow: FlowControl::new(flow::DEFAULT_MAX_IN_FLIGHT),
            round_ns: 0,
            round_spent: 0,
        }
    }
}

impl Pump {
    /// Caps the in-flight limit at the configured `window` (kept if unchanged).
    fn flow_ceiling(&mut self, window: u32) {
        if self.flow.max() != window {
            self.flow = FlowControl::new(window);
        }
    }

    /// Preparation instructions left in the round at `now_ns` (the IC's time is the
    /// same for every message of a round).
    fn round_budget_left(&mut self, now_ns: u64) -> u64 {
        if self.round_ns != now_ns {
            self.round_ns = now_ns;
            self.round_spent = 0;
        }
        PREPARE_ROUND_BUDGET.saturating_sub(self.round_spent)
    }

    fn spend_round_budget(&mut self, instructions: u64) {
        self.round_spent += instructions;
    }
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
    /// Try again later, and send less at once: the path is full or lost the call.
    Congested(String),
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
        p.alive_at_ns = t;
        p.in_flight.clear();
        p.force_data.clear();
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
            Step::Send(vault, id) => match send_pipelined(vault, id).await {
                Ok(true) => Ok(()),
                Ok(false) => {
                    // This round's preparation budget is spent: go on next round.
                    running.finish();
                    schedule(Duration::ZERO);
                    return;
                }
                Err(e) => Err(e),
            },
            Step::Commit(vault, id) => commit(vault, id).await,
        };
        match outcome {
            Ok(()) => {}
            Err(CallError::Fatal(reason)) => {
                ic_cdk::println!("canvault: backup failed: {reason}");
                give_up(reason).await;
            }
            Err(CallError::Retry(reason) | CallError::Congested(reason)) => {
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
    decode_reply(
        method,
        Call::bounded_wait(vault, method).with_args(&args).await,
    )
}

/// Classifies a call's failure and decodes its reply. SYS_TRANSIENT and SYS_UNKNOWN
/// rejects and calls the IC would not send are congestion (the flow controller backs
/// off); CANISTER_ERROR (a stopped or upgrading vault) is retried; the rest are fatal.
fn decode_reply<R: CandidType + DeserializeOwned>(
    method: &str,
    response: Result<ic_cdk::call::Response, CallFailed>,
) -> Result<R, CallError> {
    let response = response.map_err(|e| match e {
        CallFailed::CallRejected(r) => {
            let code = r.raw_reject_code();
            let msg = format!("{method}: reject code {code}: {}", r.reject_message());
            if flow::is_congestion(code) {
                CallError::Congested(msg)
            } else if code == 5 {
                CallError::Retry(msg)
            } else {
                CallError::Fatal(msg)
            }
        }
        other => CallError::Congested(format!("{method}: {other}")),
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

/// The pipelined push of the backup in progress (see the module documentation).
///
/// One task keeps up to the flow controller's limit of `put_chunks` calls in flight and
/// refills the pipe whenever a reply arrives, in the reply's own execution: no barrier
/// between windows. Preparing is bounded per execution ([`PREPARE_INSTRUCTION_BUDGET`])
/// and per round ([`PREPARE_ROUND_BUDGET`]), so the app's own messages keep most of the
/// canister's round. After a failed call nothing new is sent; the calls in flight are
/// drained (their acknowledgements count) and the first error is returned.
///
/// Returns whether any batch was sent: `false` means nothing could be prepared in this
/// execution (the round's budget is spent), and the pump yields to a later round.
async fn send_pipelined(vault: Principal, snapshot_id: u64) -> Result<bool, CallError> {
    let Some(nonce) = running_nonce() else {
        return Ok(false);
    };
    let ceiling = with_kit(|k| k.state().config.window.max(1));
    PUMP.with(|p| p.borrow_mut().flow_ceiling(ceiling));
    let mut pipe = FuturesUnordered::new();
    let mut sent_any = false;
    let mut error: Option<CallError> = None;
    loop {
        if error.is_none() {
            for batch in prepare(pipe.len()) {
                sent_any = true;
                pipe.push(put_batch(vault, snapshot_id, batch));
            }
        }
        let Some((batch, sent_at_ns, result)) = pipe.next().await else {
            break;
        };
        heartbeat();
        PUMP.with(|p| {
            let mut p = p.borrow_mut();
            for c in &batch.chunks {
                p.in_flight.remove(&c.index);
            }
        });
        if !still_running(nonce) {
            return Ok(sent_any);
        }
        match result.and_then(|r| r.map_err(|e| vault_refused("put_chunks", &e))) {
            Ok(resp) => {
                with_kit(|k| k.acknowledge(&batch, &resp.missing));
                PUMP.with(|p| {
                    let mut p = p.borrow_mut();
                    p.force_data.extend(resp.missing);
                    p.flow.on_ack(now().saturating_sub(sent_at_ns));
                });
            }
            Err(CallError::Fatal(reason)) => return Err(CallError::Fatal(reason)),
            Err(e) => {
                if matches!(e, CallError::Congested(_)) {
                    PUMP.with(|p| p.borrow_mut().flow.on_congestion());
                }
                error.get_or_insert(e);
            }
        }
    }
    error.map_or(Ok(sent_any), Err)
}

/// Plans the batches that fit the flow limit (with `in_pipe` calls outstanding) and this
/// execution's and round's preparation budgets, and marks their chunks in flight.
fn prepare(in_pipe: usize) -> Vec<Batch> {
    let room = PUMP.with(|p| (p.borrow().flow.limit() as usize).saturating_sub(in_pipe));
    if room == 0 {
        return Vec::new();
    }
    let start = ic_cdk::api::instruction_counter();
    let round_left = PUMP.with(|p| p.borrow_mut().round_budget_left(now()));
    let batches = PUMP.with(|p| {
        let p = p.borrow();
        with_kit(|k| {
            k.plan_batches(room, &p.in_flight, &p.force_data, || {
                let counter = ic_cdk::api::instruction_counter();
                counter < PREPARE_INSTRUCTION_BUDGET && counter - start < round_left
            })
        })
    });
    let spent = ic_cdk::api::instruction_counter() - start;
    PUMP.with(|p| {
        let mut p = p.borrow_mut();
        p.spend_round_budget(spent);
        for b in &batches {
            p.in_flight.extend(b.chunks.iter().map(|c| c.index));
        }
    });
    batches
}

/// One `put_chunks` call. Resolves to the batch without its bytes (what the
/// acknowledgement needs), when it was sent, and the vault's answer.
async fn put_batch(
    vault: Principal,
    snapshot_id: u64,
    mut batch: Batch,
) -> (
    Batch,
    u64,
    Result<Result<PutChunksResponse, VaultError>, CallError>,
) {
    let req = PutChunksRequest {
        snapshot_id,
        chunks: std::mem::take(&mut batch.chunks),
    };
    let sent_at_ns = now();
    let call = Call::bounded_wait(vault, "put_chunks").with_args(&(&req,));
    // The request is encoded by now: keep only what the acknowledgement reads.
    batch.chunks = req.chunks.iter().map(without_bytes).collect();
    drop(req);
    let result = decode_reply("put_chunks", call.await);
    (batch, sent_at_ns, result)
}

/// A put with its bytes dropped (the body's variant is kept).
fn without_bytes(c: &ChunkPut) -> ChunkPut {
    let body = match &c.body {
        ChunkBody::Data { codec, .. } => ChunkBody::Data {
            codec: *codec,
            bytes: Default::default(),
        },
        other => other.clone(),
    };
    ChunkPut {
        index: c.index,
        hash: c.hash,
        len: c.len,
        body,
    }
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
