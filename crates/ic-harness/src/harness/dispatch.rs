//! Executing delivered messages: requests open call contexts, responses run callbacks,
//! and committed executions have their buffered effects applied.
//!
//! Invariant: every call context that needs an answer gets exactly one, either from the
//! canister (`msg_reply`/`msg_reject`) or synthesised here (trap, starvation).

use std::sync::Arc;

use candid::Principal;

use super::faults::EventLog;
use super::{Harness, Message, Request, ResponseMsg};
use crate::canister::{Callback, Canister, Origin};
use crate::execution::{Entry, ExecTrap, Outcome, StableTxn};
use crate::system_api::{ApiContext, ExecState, HostTrap, Response};
use crate::types::{CanisterId, Reject, RejectCode};

/// What kind of method a request targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MethodKind {
    Update,
    Query,
    CompositeQuery,
}

impl Harness {
    /// The method kind of `method` on `canister`, or the IC's reject when it cannot run.
    pub(crate) fn resolve_method(
        &self,
        canister: &Canister,
        method: &str,
    ) -> Result<MethodKind, Reject> {
        let id = canister.id;
        let Some(code) = canister.code.as_ref() else {
            return Err(Reject::new(
                RejectCode::CanisterError,
                format!(
                    "Error from Canister {id}: Canister {id} is empty: it contains no Wasm module. (IC0537)"
                ),
            ));
        };
        let m = &code.compiled.prepared;
        if m.update_methods.contains(method) {
            Ok(MethodKind::Update)
        } else if m.query_methods.contains(method) {
            Ok(MethodKind::Query)
        } else if m.composite_query_methods.contains(method) {
            Ok(MethodKind::CompositeQuery)
        } else {
            Err(Reject::new(
                RejectCode::CanisterError,
                format!(
                    "Error from Canister {id}: Canister has no update method '{method}'. (IC0536)"
                ),
            ))
        }
    }

    /// A System API view for an execution on `canister` within call context `ctx`.
    pub(crate) fn exec_state(
        &self,
        canister: &Canister,
        context: ApiContext,
        caller: Principal,
        arg: Vec<u8>,
        ctx: Option<u64>,
    ) -> ExecState {
        let (can_respond, cycles_available, deadline, before) = ctx
            .and_then(|id| canister.contexts.get(&id))
            .map_or((false, 0, 0, 0), |c| {
                (
                    c.needs_response(),
                    c.cycles_available,
                    c.deadline,
                    c.instructions,
                )
            });
        let limit = match context {
            ApiContext::ReplicatedQuery
            | ApiContext::NonReplicatedQuery
            | ApiContext::CompositeQuery => self.config.limits.query,
            ApiContext::InspectMessage => self.config.limits.inspect_message,
            ApiContext::Init | ApiContext::PreUpgrade | ApiContext::Start => {
                self.config.limits.install
            }
            _ => self.config.limits.update,
        };
        let available_callbacks = self.available_callbacks(canister);
        let fees = self.fees_of(canister);
        let prepaid = if matches!(context, ApiContext::Update | ApiContext::SystemTask) {
            fees.execution(limit).min(canister.cycles)
        } else {
            0
        };
        ExecState {
            context,
            available_callbacks,
            self_id: canister.id,
            subnet_id: canister.subnet,
            caller,
            arg,
            method_name: String::new(),
            reject: None,
            time: self.time,
            controllers: canister.controllers.clone(),
            status: canister.status.code(),
            version: canister.version,
            reserved_cycles: self.freeze_reserve(canister),
            outstanding_calls: canister.callbacks.values().fold(
                std::collections::BTreeMap::new(),
                |mut m, cb| {
                    *m.entry(cb.callee).or_insert(0) += 1;
                    m
                },
            ),
            cycles_available,
            cycles_refunded: 0,
            deadline,
            can_respond,
            instruction_limit: limit,
            context_instructions_before: before,
            timer_at_start: canister.timer,
            routing: self.routing.clone(),
            fees: Arc::new(fees),
            balance: canister.cycles - prepaid,
            prepaid,
            reply_data: Vec::new(),
            response: None,
            pending_call: None,
            calls: Vec::new(),
            new_timer: None,
            accepted: 0,
            burned: 0,
            message_accepted: false,
            certified_data: None,
        }
    }

    /// Runs `entry` on `canister`, records metrics and logs, and charges the execution:
    /// replicated executions pay the base fee (cleanups only their instructions);
    /// non-replicated queries and inspect_message are free (inspect_message is not counted
    /// in the metrics either). An armed trap fault makes a replicated execution trap before
    /// any code runs.
    pub(crate) fn run(
        canister: &mut Canister,
        entry: &Entry,
        state: ExecState,
        persist: bool,
        events: &mut EventLog,
    ) -> Outcome {
        let context = state.context;
        let fees = state.fees.clone();
        let replicated = !matches!(
            context,
            ApiContext::NonReplicatedQuery
                | ApiContext::CompositeQuery
                | ApiContext::InspectMessage
        );
        let message = replicated
            && !matches!(
                context,
                ApiContext::SystemTask
                    | ApiContext::Init
                    | ApiContext::PreUpgrade
                    | ApiContext::Start
            );
        let trap = if replicated && canister.trap_next > 0 {
            canister.trap_next -= 1;
            true
        } else if message && canister.trap_next_message > 0 {
            canister.trap_next_message -= 1;
            true
        } else {
            false
        };
        let mut outcome = if trap {
            let msg = format!(
                "fault fired: execution of {} in canister {} trapped",
                context.letter(),
                canister.id
            );
            events.push(Some(canister), &msg);
            Outcome {
                result: Err(ExecTrap::Host(HostTrap::Explicit(
                    "ic-harness fault injection: this execution traps".into(),
                ))),
                instructions: 0,
                logs: Vec::new(),
                heap_delta: 0,
            }
        } else {
            let code = canister
                .code
                .as_mut()
                .expect("callers check that code is installed");
            code.execute(&mut canister.stable, entry, state, persist, StableTxn::Own)
        };
        if context == ApiContext::InspectMessage {
            // Pre-consensus and free: not a message execution of the canister's metrics.
            canister.logs.extend(outcome.logs.iter().cloned());
        } else {
            canister.record_execution(outcome.instructions, outcome.logs.clone(), replicated);
        }
        canister.heap_delta_debit = canister.heap_delta_debit.saturating_add(outcome.heap_delta);
        if replicated {
            super::cycles::charge_run(canister, &fees, context, persist, &mut outcome);
        }
        outcome
    }

    /// Executes a request delivered to a canister.
    pub(crate) fn execute_request(&mut self, req: Request) -> u64 {
        let Some(canister) = self.canisters.get(&req.receiver) else {
            let msg = format!("Canister {} not found. (IC0301)", req.receiver);
            self.respond(
                &req.origin,
                Err(Reject::new(RejectCode::DestinationInvalid, msg)),
                req.cycles,
            );
            return 0;
        };
        if let Err(reject) = self
            .check_accepts_calls(canister)
            .and_then(|()| self.check_not_frozen(canister))
        {
            self.respond(&req.origin, Err(reject), req.cycles);
            return 0;
        }
        let kind = match self.resolve_method(canister, &req.method) {
            Ok(kind) => kind,
            Err(reject) => {
                self.respond(&req.origin, Err(reject), req.cycles);
                return 0;
            }
        };
        let context = match (kind, &req.origin) {
            (MethodKind::Update, _) => ApiContext::Update,
            (MethodKind::Query, Origin::Ingress(_)) => ApiContext::NonReplicatedQuery,
            (MethodKind::Query, _) => ApiContext::ReplicatedQuery,
            (MethodKind::CompositeQuery, _) => {
                let id = canister.id;
                let msg = format!(
                    "Error from Canister {id}: Composite query cannot be called in replicated mode. (IC0527)"
                );
                self.respond(
                    &req.origin,
                    Err(Reject::new(RejectCode::CanisterError, msg)),
                    req.cycles,
                );
                return 0;
            }
        };
        let deadline = match req.origin {
            Origin::Canister { deadline, .. } => deadline,
            _ => 0,
        };
        let receiver = req.receiver;
        let canister = self.canisters.get_mut(&receiver).expect("checked above");
        canister.metrics.bytes_received += req.arg.len() as u64;
        let ctx = canister.open_context(req.origin.clone(), req.sender, req.cycles, deadline);
        let canister = &self.canisters[&receiver];
        let state = self.exec_state(canister, context, req.sender, req.arg, Some(ctx));
        let entry = Entry::Export(format!(
            "{} {}",
            if context == ApiContext::Update {
                "canister_update"
            } else {
                "canister_query"
            },
            req.method
        ));
        let canister = self.canisters.get_mut(&receiver).expect("checked above");
        let outcome = Self::run(
            canister,
            &entry,
            state,
            !context.is_query(),
            &mut self.events,
        );
        let instructions = outcome.instructions;
        self.apply(receiver, ctx, outcome);
        instructions
    }

    /// Rejects calls to a canister that is not running.
    pub(crate) fn check_accepts_calls(&self, canister: &Canister) -> Result<(), Reject> {
        let id = canister.id;
        match canister.status {
            crate::canister::Status::Running => Ok(()),
            crate::canister::Status::Stopping(_) => Err(Reject::new(
                RejectCode::CanisterError,
                format!("Canister {id} is stopping. (IC0509)"),
            )),
            crate::canister::Status::Stopped => Err(Reject::new(
                RejectCode::CanisterError,
                format!(
                    "Canister {id} is stopped and therefore does not have a CallContextManager. (IC0508)"
                ),
            )),
        }
    }

    /// Executes a response: runs the reply or reject callback, and the cleanup if it traps.
    pub(crate) fn execute_response(&mut self, resp: ResponseMsg) -> u64 {
        let Some(canister) = self.canisters.get_mut(&resp.receiver) else {
            return 0;
        };
        let Some(cb) = canister.callbacks.get(&resp.callback) else {
            // Answered already (timed out): a late response is dropped with its refund.
            canister.metrics.cycles_burned.lost += resp.refund;
            return 0;
        };
        if cb.timed_out && !resp.synthetic {
            canister.metrics.cycles_burned.lost += resp.refund;
            return 0;
        }
        let cb = canister.callbacks.remove(&resp.callback).expect("present");
        canister.cycles += resp.refund;
        let payload_len = resp.result.as_ref().map_or(0, Vec::len);
        canister.metrics.bytes_received += payload_len as u64;
        // Replies pay for their data, rejects for their message; the deadline-expiry
        // reject is made on the caller's own subnet and transmits nothing.
        let response_bytes = match &resp.result {
            _ if resp.synthetic => 0,
            Ok(bytes) => bytes.len(),
            Err(r) => r.message.len(),
        };
        self.settle_response_fees(resp.receiver, response_bytes as u64);
        let canister = self.canisters.get_mut(&resp.receiver).expect("present");
        let Some(ctx) = canister.contexts.get_mut(&cb.context) else {
            return 0;
        };
        ctx.outstanding -= 1;
        if ctx.deleted || canister.code.is_none() {
            canister.gc_context(cb.context);
            return 0;
        }
        let caller = ctx.caller;
        let (context, fun_env, arg, reject) = match resp.result {
            Ok(bytes) => (ApiContext::ReplyCallback, cb.on_reply, bytes, None),
            Err(r) => (
                ApiContext::RejectCallback,
                cb.on_reject,
                Vec::new(),
                Some((r.code, r.message)),
            ),
        };
        let receiver = resp.receiver;
        let canister = &self.canisters[&receiver];
        let mut state = self.exec_state(canister, context, caller, arg, Some(cb.context));
        state.reject = reject;
        state.cycles_refunded = resp.refund;
        let entry = Entry::Callback {
            fun: fun_env.0,
            env: fun_env.1,
        };
        let canister = self.canisters.get_mut(&receiver).expect("present");
        let outcome = Self::run(canister, &entry, state, true, &mut self.events);
        let mut instructions = outcome.instructions;
        if let Err(trap) = &outcome.result {
            if let Some((fun, env)) = cb.on_cleanup {
                instructions += self.run_cleanup(receiver, &cb, fun, env, caller);
            }
            let trap = trap.clone();
            let canister = self.canisters.get_mut(&receiver).expect("present");
            if let Some(ctx) = canister.contexts.get_mut(&cb.context) {
                ctx.instructions += outcome.instructions;
            }
            self.fail_context(receiver, cb.context, &trap);
            return instructions;
        }
        self.apply(receiver, cb.context, outcome);
        instructions
    }

    fn run_cleanup(
        &mut self,
        receiver: CanisterId,
        cb: &Callback,
        fun: u64,
        env: u64,
        caller: Principal,
    ) -> u64 {
        let canister = &self.canisters[&receiver];
        let state = self.exec_state(
            canister,
            ApiContext::Cleanup,
            caller,
            Vec::new(),
            Some(cb.context),
        );
        let canister = self.canisters.get_mut(&receiver).expect("present");
        let outcome = Self::run(
            canister,
            &Entry::Callback { fun, env },
            state,
            true,
            &mut self.events,
        );
        if let Ok(state) = outcome.result {
            // A cleanup keeps its state, timer and cycle changes; it sends nothing.
            canister.cycles = state.balance;
            canister.metrics.cycles_burned.burned += state.burned;
            if let Some(t) = state.new_timer {
                canister.timer = t;
            }
            if let Some(d) = state.certified_data {
                canister.certified_data = d;
            }
        }
        outcome.instructions
    }

    /// After a trap: the context answers its origin with the trap if nothing else can.
    pub(crate) fn fail_context(&mut self, id: CanisterId, ctx_id: u64, trap: &ExecTrap) {
        let canister = self.canisters.get_mut(&id).expect("present");
        let Some(ctx) = canister.contexts.get_mut(&ctx_id) else {
            return;
        };
        if ctx.needs_response() && ctx.outstanding == 0 {
            ctx.responded = true;
            let origin = ctx.origin.clone();
            let refund = ctx.cycles_available;
            ctx.cycles_available = 0;
            canister.gc_context(ctx_id);
            let msg = trap.reject_message(&id);
            self.respond(
                &origin,
                Err(Reject::new(RejectCode::CanisterError, msg)),
                refund,
            );
        } else {
            canister.gc_context(ctx_id);
        }
    }

    /// Applies an execution's outcome to `id` within call context `ctx_id`.
    pub(crate) fn apply(&mut self, id: CanisterId, ctx_id: u64, outcome: Outcome) {
        let state = match outcome.result {
            Ok(state) => state,
            Err(trap) => {
                let canister = self.canisters.get_mut(&id).expect("present");
                if let Some(ctx) = canister.contexts.get_mut(&ctx_id) {
                    ctx.instructions += outcome.instructions;
                }
                self.fail_context(id, ctx_id, &trap);
                return;
            }
        };
        let persisted = !state.context.is_query();
        let canister = self.canisters.get_mut(&id).expect("present");
        if persisted {
            canister.cycles = state.balance;
            canister.metrics.cycles_burned.burned += state.burned;
            canister.version += 1;
            if let Some(t) = state.new_timer {
                canister.timer = t;
            }
            if let Some(d) = state.certified_data.clone() {
                canister.certified_data = d;
            }
        }
        let ctx = canister
            .contexts
            .get_mut(&ctx_id)
            .expect("context is open during its executions");
        ctx.instructions += outcome.instructions;
        ctx.cycles_available = state.cycles_available;
        let mut answer = None;
        if let Some(response) = state.response {
            ctx.responded = true;
            let refund = std::mem::take(&mut ctx.cycles_available);
            answer = Some((ctx.origin.clone(), response, refund));
        }
        let dropped_query_calls = !persisted && !state.calls.is_empty();
        let calls = if persisted { state.calls } else { Vec::new() };
        for call in calls {
            self.send_call(id, ctx_id, call);
        }
        if let Some((origin, response, refund)) = answer {
            let result = match response {
                Response::Reply(bytes) => Ok(bytes),
                Response::Reject(msg) => Err(Reject::new(RejectCode::CanisterReject, msg)),
            };
            if let Ok(bytes) = &result {
                let canister = self.canisters.get_mut(&id).expect("present");
                canister.metrics.bytes_sent += bytes.len() as u64;
            }
            self.respond(&origin, result, refund);
        }
        let canister = self.canisters.get_mut(&id).expect("present");
        let ctx = canister.contexts.get_mut(&ctx_id).expect("still open");
        if ctx.needs_response() && ctx.outstanding == 0 {
            ctx.responded = true;
            let origin = ctx.origin.clone();
            let refund = std::mem::take(&mut ctx.cycles_available);
            let msg = if dropped_query_calls {
                format!(
                    "Error from Canister {id}: composite query calls are not supported by ic-harness."
                )
            } else {
                format!("Error from Canister {id}: Canister did not reply to the call. (IC0506)")
            };
            canister.gc_context(ctx_id);
            self.respond(
                &origin,
                Err(Reject::new(RejectCode::CanisterError, msg)),
                refund,
            );
        } else {
            canister.gc_context(ctx_id);
        }
    }

    /// Registers the callback of a performed call and routes its request (or, under a
    /// reject fault, a reject in its place). `call_perform` already withdrew the call's
    /// cost; here it is recorded: the request part as spent, the reservation as held.
    fn send_call(&mut self, caller: CanisterId, ctx_id: u64, call: crate::system_api::PendingCall) {
        let now = self.time;
        let request_bytes = (call.payload.len() + call.method.len()) as u64;
        let fees = self.fees_of(&self.canisters[&caller]);
        let canister = self.canisters.get_mut(&caller).expect("present");
        canister.metrics.cycles_burned.calls += fees.call_fee();
        canister.metrics.cycles_burned.bytes += fees.response_bytes(request_bytes);
        let deadline = call
            .timeout_seconds
            .map_or(0, |s| now + u64::from(s) * 1_000_000_000);
        let cb_id = canister.fresh_id();
        canister.callbacks.insert(
            cb_id,
            Callback {
                context: ctx_id,
                callee: call.callee,
                on_reply: call.on_reply,
                on_reject: call.on_reject,
                on_cleanup: call.on_cleanup,
                deadline,
                timed_out: false,
            },
        );
        canister
            .contexts
            .get_mut(&ctx_id)
            .expect("open")
            .outstanding += 1;
        canister.metrics.bytes_sent += (call.payload.len() + call.method.len()) as u64;
        if let Some(code) = self.take_reject_fault(caller, call.callee) {
            let refund = if code == RejectCode::SysUnknown {
                self.canisters
                    .get_mut(&caller)
                    .expect("present")
                    .metrics
                    .cycles_burned
                    .lost += call.cycles;
                0
            } else {
                call.cycles
            };
            let reject = Reject::new(
                code,
                format!(
                    "ic-harness fault injection: the call from {caller} to {}.{} was rejected by the system",
                    call.callee, call.method
                ),
            );
            let from = if call.callee == Principal::management_canister() {
                caller
            } else {
                call.callee
            };
            let msg = Message::Response(ResponseMsg {
                receiver: caller,
                callback: cb_id,
                result: Err(reject),
                refund,
                synthetic: false,
            });
            self.route(from, msg);
            return;
        }
        let req = Request {
            sender: caller,
            receiver: call.callee,
            method: call.method,
            arg: call.payload,
            cycles: call.cycles,
            origin: Origin::Canister {
                caller,
                callback: cb_id,
                deadline,
            },
        };
        self.route(caller, Message::Request(req));
    }

    /// Sends the answer of a call context to whoever is waiting for it.
    pub(crate) fn respond(
        &mut self,
        origin: &Origin,
        result: Result<Vec<u8>, Reject>,
        refund: u128,
    ) {
        match origin {
            Origin::Ingress(id) => {
                if let Some(effects) = self.capture.as_mut() {
                    effects.push(super::Effect::Ingress(*id, result));
                } else {
                    self.ingress.insert(*id, Some(result));
                }
            }
            Origin::Canister {
                caller,
                callback,
                deadline,
            } => {
                let callee = self
                    .canisters
                    .get(caller)
                    .and_then(|c| c.callbacks.get(callback))
                    .map(|cb| cb.callee);
                if *deadline != 0
                    && let Some(callee) = callee
                    && self.take_drop_fault(*caller, callee)
                {
                    if let Some(c) = self.canisters.get_mut(caller) {
                        c.metrics.cycles_burned.lost += refund;
                    }
                    return;
                }
                let from = self.current_sender;
                let msg = Message::Response(ResponseMsg {
                    receiver: *caller,
                    callback: *callback,
                    result,
                    refund,
                    synthetic: false,
                });
                self.route(from, msg);
            }
            Origin::System => {}
        }
    }
}
