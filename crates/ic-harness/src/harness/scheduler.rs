//! Rounds: delivery, timers, bounded-wait deadlines, execution passes and stopping.
//!
//! One `tick` is one round on every subnet:
//! 1. the clock advances by the round duration, and every canister pays storage for the
//!    time elapsed since its last charge;
//! 2. messages in transit whose delivery round has come reach their input queues (unless
//!    the sending or receiving subnet is offline);
//! 3. bounded-wait callbacks past their deadline get a SYS_UNKNOWN reject; best-effort
//!    requests past their deadline that are still queued or in transit are dropped, so
//!    the callee never runs them; `stop_canister` calls waiting for 5 minutes time out;
//! 4. execution passes run until no canister makes progress: each canister first runs
//!    its due global timer (and heartbeat), then its input queue, within its round
//!    instruction budget; same-subnet messages may execute in the same round. Canisters
//!    on offline subnets execute nothing; frozen canisters run no timer or heartbeat;
//! 5. stopping canisters with no open call context become stopped;
//! 6. each subnet whose input queues hold more best-effort message bytes than its
//!    capacity sheds the largest of them (see `system_faults`).

use candid::Principal;

use super::threads::RoundCtx;
use super::{Harness, Message, ResponseMsg};
use crate::canister::{Origin, Status};
use crate::execution::Entry;
use crate::system_api::ApiContext;
use crate::types::{CanisterId, HarnessError, Reject, RejectCode};

/// Bound on execution passes per round (each pass may create same-subnet work).
const MAX_PASSES_PER_ROUND: usize = 1_000;

impl Harness {
    /// Executes one round on every subnet.
    pub fn tick(&mut self) {
        self.round += 1;
        self.events.round = self.round;
        self.time += self.config.round_nanos;
        self.charge_storage();
        self.build_streams(self.round - 1);
        self.deliver_due();
        self.expire_deadlines();
        self.drop_expired_requests();
        self.time_out_stop_requests();
        let all: Vec<CanisterId> = self.canisters.keys().copied().collect();
        let ids: Vec<CanisterId> = all
            .into_iter()
            .filter(|id| !self.is_subnet_offline(self.canisters[id].subnet))
            .collect();
        let shuffled = self.shuffled(ids);
        let order = self.by_priority(shuffled);
        let mut rc = self.new_round();
        let paused = self.by_priority(self.paused.keys().copied().collect());
        self.continue_paused(&paused, &mut rc);
        for id in &order {
            self.run_system_tasks(*id, &mut rc);
        }
        for _ in 0..MAX_PASSES_PER_ROUND {
            let mut progressed = self.process_management_queue();
            progressed |= self.process_cmc_queue();
            progressed |= self.reject_messages_to_missing_canisters();
            for id in &order {
                progressed |= self.drain_inputs(*id, &mut rc);
            }
            self.finish_stops();
            if !progressed {
                break;
            }
        }
        self.repay_heap_delta();
        self.shed_best_effort_messages();
        self.build_streams(self.round);
    }

    /// Moves the simulated clock forward without executing anything.
    pub fn advance_time(&mut self, duration: std::time::Duration) {
        self.time += u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    }

    /// Ticks until no message, timer or call is pending anywhere, at most `max_rounds`.
    /// Returns the rounds executed.
    ///
    /// # Errors
    /// [`HarnessError::Livelock`] when work is still pending after `max_rounds`.
    pub fn run_until_idle(&mut self, max_rounds: u64) -> Result<u64, HarnessError> {
        for executed in 0..max_rounds {
            if self.is_idle() {
                return Ok(executed);
            }
            self.tick();
        }
        if self.is_idle() {
            return Ok(max_rounds);
        }
        Err(HarnessError::Livelock {
            rounds: max_rounds,
            busy: self.busy_summary(),
        })
    }

    /// True when nothing is in flight, queued, awaited or due.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_transit.is_empty()
            && self.cmc_waiting.is_empty()
            && self.paused.is_empty()
            && self
                .inputs
                .values()
                .all(std::collections::VecDeque::is_empty)
            && self.ingress.values().all(Option::is_some)
            && self.canisters.values().all(|c| {
                c.contexts.is_empty()
                    && c.callbacks.is_empty()
                    && (c.timer == 0 || c.status != Status::Running || c.code.is_none())
            })
    }

    pub(crate) fn busy_summary(&self) -> String {
        let mut parts = vec![format!(
            "{} messages in transit, {} CMC creations pending, {} executions paused",
            self.in_transit.len(),
            self.cmc_waiting.len(),
            self.paused.len()
        )];
        for (id, q) in &self.inputs {
            if !q.is_empty() {
                parts.push(format!("{} queued for {id}", q.len()));
            }
        }
        for c in self.canisters.values() {
            if !c.contexts.is_empty() || !c.callbacks.is_empty() {
                let awaiting: Vec<String> =
                    c.callbacks.values().map(|cb| cb.callee.to_text()).collect();
                parts.push(format!(
                    "{}: {} open call contexts, awaiting [{}]",
                    c.id,
                    c.contexts.len(),
                    awaiting.join(", ")
                ));
            }
            if c.timer != 0 && c.status == Status::Running && c.code.is_some() {
                parts.push(format!(
                    "{}: timer armed at {} (now {})",
                    c.id, c.timer, self.time
                ));
            }
        }
        parts.join("; ")
    }

    fn expire_deadlines(&mut self) {
        let now = self.time;
        let mut expired = Vec::new();
        let offline: Vec<_> = self
            .subnets
            .iter()
            .filter(|s| self.is_subnet_offline(**s))
            .copied()
            .collect();
        for c in self.canisters.values_mut() {
            if offline.contains(&c.subnet) {
                continue;
            }
            for (id, cb) in &mut c.callbacks {
                if cb.deadline != 0 && cb.deadline <= now && !cb.timed_out {
                    cb.timed_out = true;
                    expired.push((c.id, *id));
                }
            }
        }
        for (canister, callback) in expired {
            let msg = Message::Response(ResponseMsg {
                receiver: canister,
                callback,
                result: Err(Reject::new(
                    RejectCode::SysUnknown,
                    "Timeout expired: the deadline of the bounded-wait call passed before a response arrived. (IC0601)",
                )),
                refund: 0,
                synthetic: true,
            });
            self.inputs.entry(canister).or_default().push_back(msg);
        }
    }

    /// Requests to canisters that do not exist (never created, or deleted while the
    /// request was in flight) get DESTINATION_INVALID from the caller's own subnet;
    /// responses to deleted canisters are dropped. True if any message was handled.
    fn reject_messages_to_missing_canisters(&mut self) -> bool {
        let orphans: Vec<Principal> = self
            .inputs
            .iter()
            .filter(|(id, q)| {
                !q.is_empty()
                    && **id != Principal::management_canister()
                    && **id != super::cmc::CMC
                    && !self.canisters.contains_key(id)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &orphans {
            let queue = self.inputs.remove(id).unwrap_or_default();
            for msg in queue {
                if let Message::Request(req) = msg {
                    self.current_sender = req.sender;
                    let reject = Reject::new(
                        RejectCode::DestinationInvalid,
                        format!("Canister {id} not found. (IC0301)"),
                    );
                    self.respond(&req.origin, Err(reject), req.cycles);
                }
            }
        }
        !orphans.is_empty()
    }

    /// Runs a due global timer and the heartbeat of `id`, each if a thread takes it.
    fn run_system_tasks(&mut self, id: CanisterId, rc: &mut RoundCtx) {
        let now = self.time;
        let Some(c) = self.canisters.get(&id) else {
            return;
        };
        if c.status != Status::Running || self.paused.contains_key(&id) {
            return;
        }
        if self.check_not_frozen(c).is_err() {
            return; // a frozen canister cannot prepay its timer or heartbeat
        }
        let Some(code) = c.code.as_ref() else { return };
        let prepared = &code.compiled.prepared;
        let mut tasks = Vec::new();
        if prepared.has_heartbeat {
            tasks.push("canister_heartbeat");
        }
        if prepared.has_global_timer && c.timer != 0 && c.timer <= now {
            tasks.push("canister_global_timer");
        }
        for task in tasks {
            let Some(thread) = self.thread_for(id, rc) else {
                return; // the timer stays armed for a later round
            };
            if task == "canister_global_timer" {
                self.canisters.get_mut(&id).expect("present").timer = 0; // deactivated when scheduled
            }
            self.execute_sliced(id, thread, rc, |h| h.run_system_task(id, task));
        }
    }

    fn run_system_task(&mut self, id: CanisterId, task: &str) -> u64 {
        let c = self.canisters.get_mut(&id).expect("present");
        let ctx = c.open_context(Origin::System, Principal::management_canister(), 0, 0);
        let c = &self.canisters[&id];
        let state = self.exec_state(
            c,
            ApiContext::SystemTask,
            Principal::management_canister(),
            Vec::new(),
            Some(ctx),
        );
        let c = self.canisters.get_mut(&id).expect("present");
        let outcome = Self::run(
            c,
            &Entry::Export(task.to_string()),
            state,
            true,
            &mut self.events,
        );
        let used = outcome.instructions;
        self.current_sender = id;
        self.apply(id, ctx, outcome);
        used
    }

    /// Executes queued messages of `id` while its thread has capacity. True if any ran.
    fn drain_inputs(&mut self, id: CanisterId, rc: &mut RoundCtx) -> bool {
        let mut progressed = false;
        loop {
            if self
                .inputs
                .get(&id)
                .is_none_or(std::collections::VecDeque::is_empty)
            {
                break;
            }
            let Some(thread) = self.thread_for(id, rc) else {
                break;
            };
            let Some(index) = self.next_input_index(id) else {
                break;
            };
            let Some(msg) = self.inputs.get_mut(&id).and_then(|q| q.remove(index)) else {
                break;
            };
            progressed = true;
            self.execute_sliced(id, thread, rc, |h| {
                h.current_sender = id;
                match msg {
                    Message::Request(req) => h.execute_request(req),
                    Message::Response(resp) => h.execute_response(resp),
                }
            });
        }
        progressed
    }

    /// Stopping canisters with no open call context become stopped; their stop calls are answered.
    pub(crate) fn finish_stops(&mut self) {
        let mut done = Vec::new();
        for c in self.canisters.values_mut() {
            if matches!(c.status, Status::Stopping(_))
                && c.contexts.is_empty()
                && !self.paused.contains_key(&c.id)
            {
                let Status::Stopping(waiters) = std::mem::replace(&mut c.status, Status::Stopped)
                else {
                    unreachable!("matched above");
                };
                c.version += 1;
                done.push((c.id, waiters));
            }
        }
        for (id, waiters) in done {
            self.current_sender = id;
            for waiter in waiters {
                self.respond(
                    &waiter.origin,
                    Ok(candid::encode_args(()).expect("empty args encode")),
                    0,
                );
            }
        }
    }
}
