//! System-initiated faults: what the replica does on its own, always, whatever the test
//! injects. Each rule follows dfinity/ic and is on by default with the replica's constants
//! (`crate::limits`, from `rs/config/src/execution_environment.rs`):
//!
//! - **expired best-effort requests** (`CanisterQueues::time_out_messages`,
//!   `rs/replicated_state/src/canister_state/queues.rs`): a bounded-wait request still
//!   queued or in transit when its deadline passes is dropped; the callee never runs it,
//!   its attached cycles go back to the caller (the replica's refund pool), and the
//!   caller's callback gets SYS_UNKNOWN at the same deadline (`expire_deadlines`);
//! - **best-effort shedding** (`ReplicatedState::enforce_best_effort_message_limit`,
//!   `MessagePool::shed_largest_message`): at the end of a round, while a subnet's
//!   best-effort messages exceed its capacity, the canister holding the most best-effort
//!   bytes loses its largest best-effort message. A shed request is dropped as above; a
//!   shed response becomes a SYS_UNKNOWN "Response was dropped." reject for its callback;
//! - **stop timeouts** (`SystemState::try_stop_canister`, `STOP_CANISTER_TIMEOUT_DURATION`):
//!   a `stop_canister` call still waiting after 5 minutes is rejected with SYS_TRANSIENT
//!   (IC0206); the canister stays Stopping until it stops or is started;
//! - the **callback quota** (`available_callbacks` here) is enforced in `ic0.call_perform`
//!   (`system_api/imports.rs`).
//!
//! Where the harness differs: it has no output queues (a same-subnet request goes straight
//! into the callee's input queue, a cross-subnet one is "in transit"), so the replica's
//! SYS_TRANSIENT "Request timed out." for a request that expired or was shed in its
//! sender's output queue appears here as the caller's SYS_UNKNOWN at the deadline, the
//! weaker answer. Only input queues count toward the best-effort capacity, and a message
//! counts as its payload plus method name (the replica adds a fixed per-message size).
//! Subnets that are offline run none of this.

use std::collections::BTreeMap;

use super::{Harness, Message, ResponseMsg};
use crate::canister::{Canister, Origin, Status};
use crate::types::{CanisterId, Reject, RejectCode, SubnetId};

/// Where a best-effort message waits: the input queue of a canister, at an index.
#[derive(Debug, Clone, Copy)]
struct Queued {
    canister: CanisterId,
    index: usize,
    bytes: u64,
}

impl Harness {
    /// The subnets executing this round.
    fn online_subnets(&self) -> Vec<SubnetId> {
        self.subnets
            .iter()
            .filter(|s| !self.is_subnet_offline(**s))
            .copied()
            .collect()
    }

    /// Calls `canister` may still perform, the replica's `available_callbacks`
    /// (`Hypervisor::execute`): the subnet's shared pool left under its soft limit, or the
    /// canister's own quota left, whichever is larger. Every outstanding callback counts,
    /// best-effort ones included; `ic0.call_perform` returns 2 past it.
    pub(super) fn available_callbacks(&self, canister: &Canister) -> usize {
        let subnet_callbacks: usize = self
            .canisters
            .values()
            .filter(|c| c.subnet == canister.subnet)
            .map(|c| c.callbacks.len())
            .sum();
        let pool = self
            .config
            .subnet_callback_soft_limit
            .saturating_sub(subnet_callbacks);
        let quota = self
            .config
            .canister_callback_quota
            .saturating_sub(canister.callbacks.len());
        pool.max(quota)
    }

    /// Drops best-effort requests whose deadline has passed, from the input queues of
    /// canisters on online subnets and from transit (when the sender's subnet is online).
    pub(super) fn drop_expired_requests(&mut self) {
        let now = self.time;
        let online = self.online_subnets();
        let expired = |msg: &Message| {
            matches!(msg, Message::Request(r) if matches!(r.origin,
                Origin::Canister { deadline, .. } if deadline != 0 && deadline <= now))
        };
        let mut dropped = Vec::new();
        for (key, queue) in &mut self.inputs {
            let on_online_subnet = self.routing.get(key).is_some_and(|s| online.contains(s));
            if on_online_subnet && queue.iter().any(expired) {
                let (gone, kept): (Vec<_>, Vec<_>) = queue.drain(..).partition(expired);
                queue.extend(kept);
                dropped.extend(gone.into_iter().map(|m| (m, "queued")));
            }
        }
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_transit)
            .into_iter()
            .partition(|t| t.from_subnet.is_none_or(|s| online.contains(&s)) && expired(&t.msg));
        self.in_transit = kept;
        dropped.extend(gone.into_iter().map(|t| (t.msg, "in transit")));
        for (msg, place) in dropped {
            if let Message::Request(req) = msg {
                self.refund_dropped_request(&req, &format!("expired {place}"));
            }
        }
    }

    /// Gives a dropped request's cycles back to its caller and logs the drop.
    fn refund_dropped_request(&mut self, req: &super::Request, why: &str) {
        if let Some(caller) = self.canisters.get_mut(&req.sender) {
            caller.cycles += req.cycles;
        }
        self.log_event(
            Some(req.sender),
            format!(
                "system: best-effort request from {} to {}.{} ({} bytes) dropped: {why}; the caller gets SYS_UNKNOWN at its deadline",
                req.sender,
                req.receiver,
                req.method,
                req.arg.len() + req.method.len()
            ),
        );
    }

    /// Rejects `stop_canister` calls that have waited `STOP_CANISTER_TIMEOUT_SECONDS`; the
    /// canister stays Stopping.
    pub(super) fn time_out_stop_requests(&mut self) {
        let now = self.time;
        let online = self.online_subnets();
        let mut expired = Vec::new();
        for c in self.canisters.values_mut() {
            if !online.contains(&c.subnet) {
                continue;
            }
            if let Status::Stopping(waiters) = &mut c.status {
                let id = c.id;
                waiters.retain(|w| {
                    let keep = w.expires_at > now;
                    if !keep {
                        expired.push((id, w.origin.clone()));
                    }
                    keep
                });
            }
        }
        for (id, origin) in expired {
            self.log_event(
                Some(id),
                format!("system: stop_canister({id}) timed out; the canister stays Stopping"),
            );
            self.current_sender = id;
            let reject = Reject::new(
                RejectCode::SysTransient,
                "Stop canister request timed out. (IC0206)",
            );
            self.respond(&origin, Err(reject), 0);
        }
    }

    /// Sheds best-effort messages on every online subnet until it holds at most its
    /// best-effort capacity: each time, the largest message of the canister holding the
    /// most best-effort bytes (ties: the newest message, the highest canister id).
    pub(super) fn shed_best_effort_messages(&mut self) {
        let capacity = self.config.best_effort_capacity;
        for subnet in self.online_subnets() {
            loop {
                let queued = self.best_effort_messages(subnet);
                let total: u64 = queued.iter().map(|q| q.bytes).sum();
                if total <= capacity {
                    break;
                }
                let mut per_canister: BTreeMap<CanisterId, u64> = BTreeMap::new();
                for q in &queued {
                    *per_canister.entry(q.canister).or_default() += q.bytes;
                }
                let Some((&victim, _)) = per_canister
                    .iter()
                    .max_by_key(|(id, bytes)| (**bytes, **id))
                else {
                    break;
                };
                let Some(largest) = queued
                    .iter()
                    .filter(|q| q.canister == victim)
                    .max_by_key(|q| (q.bytes, q.index))
                    .copied()
                else {
                    break;
                };
                self.shed(largest, total, capacity);
            }
        }
    }

    /// Best-effort messages in the input queues of `subnet`'s canisters, with their sizes.
    /// Responses count when their callback is a bounded-wait one; the system's own compact
    /// rejects (deadline expired, response dropped) do not count.
    fn best_effort_messages(&self, subnet: SubnetId) -> Vec<Queued> {
        let mut out = Vec::new();
        for (key, queue) in &self.inputs {
            let Some(canister) = self.canisters.get(key).filter(|c| c.subnet == subnet) else {
                continue;
            };
            for (index, msg) in queue.iter().enumerate() {
                let bytes = match msg {
                    Message::Request(r) => match r.origin {
                        Origin::Canister { deadline, .. } if deadline != 0 => {
                            (r.arg.len() + r.method.len()) as u64
                        }
                        _ => continue,
                    },
                    Message::Response(r) if !r.synthetic => {
                        let best_effort = canister
                            .callbacks
                            .get(&r.callback)
                            .is_some_and(|cb| cb.deadline != 0);
                        if !best_effort {
                            continue;
                        }
                        match &r.result {
                            Ok(bytes) => bytes.len() as u64,
                            Err(reject) => reject.message.len() as u64,
                        }
                    }
                    Message::Response(_) => continue,
                };
                out.push(Queued {
                    canister: *key,
                    index,
                    bytes,
                });
            }
        }
        out
    }

    /// Sheds one queued best-effort message.
    fn shed(&mut self, q: Queued, total: u64, capacity: u64) {
        let queue = self.inputs.get_mut(&q.canister).expect("queue listed");
        let why = format!("shed ({total} best-effort bytes on the subnet, capacity {capacity})");
        match queue.get(q.index).cloned().expect("message listed") {
            Message::Request(req) => {
                queue.remove(q.index);
                self.refund_dropped_request(&req, &why);
            }
            Message::Response(resp) => {
                queue[q.index] = Message::Response(ResponseMsg {
                    receiver: resp.receiver,
                    callback: resp.callback,
                    result: Err(Reject::new(
                        RejectCode::SysUnknown,
                        "Response was dropped. (IC0602)",
                    )),
                    refund: 0,
                    synthetic: true,
                });
                if let Some(c) = self.canisters.get_mut(&resp.receiver) {
                    c.cycles += resp.refund;
                }
                self.log_event(
                    Some(resp.receiver),
                    format!(
                        "system: best-effort response of {} bytes to {} dropped: {why}; its callback gets SYS_UNKNOWN",
                        q.bytes, resp.receiver
                    ),
                );
            }
        }
    }
}
