//! Deterministic fault injection and the harness event log.
//!
//! Every fault is armed through a public [`Harness`] method and, when it fires, appends a
//! line to the event log ([`Harness::fault_log`]) and to the affected canister's log.
//! Nothing here draws on randomness except the queue shuffle, which has its own seeded
//! generator so that enabling it never changes `raw_rand` or CMC placement.
//!
//! What each fault does, as the IC would show it:
//! - rejected calls: the request never reaches the callee; the caller's callback gets a
//!   reject with the chosen code (attached cycles are refunded unless the code is
//!   SYS_UNKNOWN, whose cycles are lost);
//! - dropped responses: the callee executes, but its response to a bounded-wait call is
//!   lost; the caller sees SYS_UNKNOWN (IC0601) when the deadline passes. Unbounded-wait
//!   calls have guaranteed responses on the IC, so the fault leaves them alone;
//! - a trapping execution: the canister's next replicated execution traps before running
//!   any code (state rolled back, CANISTER_ERROR to its caller, cleanup for callbacks);
//! - an offline subnet: for K rounds its canisters execute nothing and messages to or
//!   from it wait in transit;
//! - a frozen canister: requests to it get SYS_TRANSIENT and it can spend nothing.

use std::collections::BTreeMap;

use candid::Principal;

use super::Harness;
use crate::canister::Canister;
use crate::types::{CanisterId, RejectCode, SubnetId};

/// Armed faults and the seeded queue shuffler.
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {
    /// (caller, callee) → (calls still to reject, code).
    rejects: BTreeMap<(Principal, Principal), (u32, RejectCode)>,
    /// (caller, callee) → responses still to drop.
    drops: BTreeMap<(Principal, Principal), u32>,
    /// Offline subnets → first round they are back.
    pub offline_until: BTreeMap<SubnetId, u64>,
    /// State of the queue-shuffle generator; `None`: FIFO order.
    pub shuffle: Option<u64>,
}

/// The harness event log: faults as they fire, and system events (out of cycles).
#[derive(Debug, Clone, Default)]
pub(crate) struct EventLog {
    /// The current round, prefixed to every line.
    pub round: u64,
    pub lines: Vec<String>,
}

impl EventLog {
    /// Appends `msg` to the log, and to `canister`'s log if given.
    pub(crate) fn push(&mut self, canister: Option<&mut Canister>, msg: &str) {
        let line = format!("round {}: {msg}", self.round);
        if let Some(c) = canister {
            c.logs.push(format!("[ic-harness] {line}"));
        }
        self.lines.push(line);
    }
}

/// splitmix64 step on `state`.
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Harness {
    /// Appends `msg` to the event log and to `canister`'s log.
    pub(crate) fn log_event(&mut self, canister: Option<CanisterId>, msg: String) {
        let c = canister.and_then(|id| self.canisters.get_mut(&id));
        self.events.push(c, &msg);
    }

    /// Rejects the next `count` calls from canister `from` to `to` (a canister, or the
    /// management canister) with `code`, as if the system refused them in transit.
    pub fn inject_rejects(
        &mut self,
        from: CanisterId,
        to: Principal,
        count: u32,
        code: RejectCode,
    ) {
        self.faults.rejects.insert((from, to), (count, code));
        self.log_event(
            Some(from),
            format!(
                "fault armed: the next {count} calls from {from} to {to} are rejected with {code:?}"
            ),
        );
    }

    /// Drops the responses to the next `count` bounded-wait calls from canister `from` to
    /// `to`: the callee acts, the caller sees SYS_UNKNOWN at the call's deadline.
    pub fn drop_responses(&mut self, from: CanisterId, to: Principal, count: u32) {
        self.faults.drops.insert((from, to), count);
        self.log_event(
            Some(from),
            format!("fault armed: the responses to the next {count} bounded-wait calls from {from} to {to} are dropped"),
        );
    }

    /// Makes the next replicated execution of `canister` (update, callback, timer,
    /// heartbeat) trap before running any code.
    ///
    /// # Panics
    /// If the canister does not exist.
    pub fn trap_next_execution(&mut self, canister: CanisterId) {
        self.canisters
            .get_mut(&canister)
            .expect("canister exists")
            .trap_next += 1;
        self.log_event(
            Some(canister),
            format!("fault armed: the next execution of {canister} traps"),
        );
    }

    /// Makes the next message execution of `canister` (an update, a replicated query,
    /// a reply or reject callback; not a system task such as the global timer or a
    /// heartbeat) trap before running any code. A system task runs only the CDK's
    /// scheduler (e.g. ic-cdk-timers' `canister_global_timer`, whose timers then run
    /// as self-calls): this targets the canister's own code, such as a timer's body.
    ///
    /// # Panics
    /// If the canister does not exist.
    pub fn trap_next_message_execution(&mut self, canister: CanisterId) {
        self.canisters
            .get_mut(&canister)
            .expect("canister exists")
            .trap_next_message += 1;
        self.log_event(
            Some(canister),
            format!("fault armed: the next message execution of {canister} traps"),
        );
    }

    /// Takes `subnet` offline for the next `rounds` rounds: its canisters execute
    /// nothing, and messages to or from it wait in transit until it is back.
    ///
    /// # Panics
    /// If `subnet` is not one of the harness's subnets.
    pub fn take_subnet_offline(&mut self, subnet: SubnetId, rounds: u64) {
        assert!(self.subnets.contains(&subnet), "unknown subnet {subnet}");
        let back = self.round + rounds + 1;
        self.faults.offline_until.insert(subnet, back);
        self.log_event(
            None,
            format!("fault: subnet {subnet} is offline for {rounds} rounds (back in round {back})"),
        );
    }

    /// True while `subnet` is offline.
    #[must_use]
    pub fn is_subnet_offline(&self, subnet: SubnetId) -> bool {
        self.faults
            .offline_until
            .get(&subnet)
            .is_some_and(|back| self.round < *back)
    }

    /// Freezes `canister` whatever its balance: requests to it get SYS_TRANSIENT, its
    /// calls fail in `call_perform`, it runs no timer. [`Harness::unfreeze_canister`] ends it.
    ///
    /// # Panics
    /// If the canister does not exist.
    pub fn freeze_canister(&mut self, canister: CanisterId) {
        self.canisters
            .get_mut(&canister)
            .expect("canister exists")
            .frozen_by_fault = true;
        self.log_event(
            Some(canister),
            format!("fault: canister {canister} is frozen"),
        );
    }

    /// Ends a [`Harness::freeze_canister`] fault.
    ///
    /// # Panics
    /// If the canister does not exist.
    pub fn unfreeze_canister(&mut self, canister: CanisterId) {
        self.canisters
            .get_mut(&canister)
            .expect("canister exists")
            .frozen_by_fault = false;
        self.log_event(
            Some(canister),
            format!("fault ended: canister {canister} is unfrozen"),
        );
    }

    /// Randomises (with `seed`) the order in which canisters drain their queues and in
    /// which each input queue's ready messages execute, keeping requests from one sender
    /// in order; `None` restores FIFO order.
    pub fn set_queue_shuffle(&mut self, seed: Option<u64>) {
        self.faults.shuffle = seed.map(|s| s ^ 0xD1B5_4A32_D192_ED03);
    }

    /// The event log: every fault armed and fired, and system events, in order.
    #[must_use]
    pub fn fault_log(&self) -> &[String] {
        &self.events.lines
    }

    /// The code of a pending reject fault for a call from `from` to `to`, consuming it.
    pub(crate) fn take_reject_fault(
        &mut self,
        from: Principal,
        to: Principal,
    ) -> Option<RejectCode> {
        let entry = self.faults.rejects.get_mut(&(from, to))?;
        if entry.0 == 0 {
            return None;
        }
        entry.0 -= 1;
        let code = entry.1;
        self.log_event(
            Some(from),
            format!("fault fired: call from {from} to {to} rejected with {code:?}"),
        );
        Some(code)
    }

    /// True (consuming the fault) if the response of the bounded-wait call from `from` to
    /// `to` must be dropped.
    pub(crate) fn take_drop_fault(&mut self, from: Principal, to: Principal) -> bool {
        let Some(left) = self.faults.drops.get_mut(&(from, to)) else {
            return false;
        };
        if *left == 0 {
            return false;
        }
        *left -= 1;
        self.log_event(
            Some(from),
            format!("fault fired: response from {to} to {from} dropped"),
        );
        true
    }

    /// A shuffled copy of `ids` when the shuffle is on, else `ids` as is.
    pub(crate) fn shuffled(&mut self, mut ids: Vec<CanisterId>) -> Vec<CanisterId> {
        if let Some(state) = self.faults.shuffle.as_mut() {
            for i in (1..ids.len()).rev() {
                let j = (splitmix(state) % (i as u64 + 1)) as usize;
                ids.swap(i, j);
            }
        }
        ids
    }

    /// The index of the next message to execute from `id`'s input queue: the head in FIFO
    /// mode; with the shuffle on, any response or any request that no earlier request
    /// from the same sender precedes.
    pub(crate) fn next_input_index(&mut self, id: CanisterId) -> Option<usize> {
        let queue = self.inputs.get(&id)?;
        if queue.is_empty() {
            return None;
        }
        let Some(state) = self.faults.shuffle.as_mut() else {
            return Some(0);
        };
        let mut seen = std::collections::BTreeSet::new();
        let candidates: Vec<usize> = queue
            .iter()
            .enumerate()
            .filter(|(_, m)| match m {
                super::Message::Request(r) => seen.insert(r.sender),
                super::Message::Response(_) => true,
            })
            .map(|(i, _)| i)
            .collect();
        Some(candidates[(splitmix(state) % candidates.len() as u64) as usize])
    }
}
