//! Execution threads, deterministic time slicing (DTS) and the heap-delta rate limit, as
//! the replica's scheduler (`rs/execution_environment/src/scheduler.rs`) bounds a round.
//!
//! - Each subnet has `scheduler_cores` threads of `round_instructions` each. A canister
//!   runs on one thread per round: the first time it executes in a round it takes the
//!   thread with the most instructions left (the replica partitions canisters round-robin
//!   over its cores, then re-partitions in later iterations of the round; taking the
//!   least-loaded thread approximates both). Every execution charges the thread its slice
//!   plus `INSTRUCTION_OVERHEAD_PER_EXECUTION`; a canister whose thread is spent waits for
//!   a later round. Canisters are offered threads least recently executed first (the
//!   replica's accumulated priority with no compute allocation is round-robin).
//! - An execution longer than one slice (`round_per_canister`, 2B) runs to completion at
//!   once, but is then paused: it takes one slice of a thread in each following round,
//!   its canister runs nothing else, and its effects (outgoing calls, replies, ingress
//!   results) are released after its last slice. Its state changes are in place at once:
//!   queries and management calls see them early (the replica shows the old state).
//!   `install_code` is sliced the same way (its slice limit is also 2B).
//! - Every committed execution adds its heap delta to the canister's debit; each round
//!   the debit shrinks by `heap_delta_rate_limit`; a canister whose debit is at least the
//!   limit is not scheduled. Once a subnet's executions produced
//!   `MAX_HEAP_DELTA_PER_ROUND_BYTES` in a round, no new execution starts there.

use std::collections::BTreeMap;

use super::{Effect, Harness, Paused};
use crate::limits::MAX_HEAP_DELTA_PER_ROUND_BYTES;
use crate::types::{CanisterId, SubnetId};

/// `INSTRUCTION_OVERHEAD_PER_EXECUTION` (`rs/config/src/subnet_config.rs`): instructions
/// counted against the round for entering and leaving the Wasm engine.
pub(crate) const INSTRUCTION_OVERHEAD_PER_EXECUTION: u64 = 2_000_000;

/// The capacity left in the current round.
#[derive(Debug, Default)]
pub(crate) struct RoundCtx {
    /// Instructions left on each thread, by subnet.
    threads: BTreeMap<SubnetId, Vec<u64>>,
    /// The thread each canister runs on this round.
    thread_of: BTreeMap<CanisterId, usize>,
    /// Heap delta produced this round, by subnet.
    heap_delta: BTreeMap<SubnetId, u64>,
}

impl Harness {
    /// A fresh round: every thread of every subnet at full capacity.
    pub(crate) fn new_round(&self) -> RoundCtx {
        let full = vec![self.config.round_instructions; self.config.scheduler_cores.max(1)];
        RoundCtx {
            threads: self.subnets.iter().map(|s| (*s, full.clone())).collect(),
            ..RoundCtx::default()
        }
    }

    /// The thread `id` runs on this round, if it may execute now: not paused, not rate
    /// limited, its subnet under the round's heap-delta cap, and a thread with capacity.
    pub(crate) fn thread_for(&self, id: CanisterId, rc: &mut RoundCtx) -> Option<usize> {
        let c = self.canisters.get(&id)?;
        if self.paused.contains_key(&id) || c.heap_delta_debit >= self.config.heap_delta_rate_limit
        {
            return None;
        }
        if rc.heap_delta.get(&c.subnet).copied().unwrap_or(0) >= MAX_HEAP_DELTA_PER_ROUND_BYTES {
            return None;
        }
        let threads = rc.threads.get(&c.subnet)?;
        let thread = match rc.thread_of.get(&id) {
            Some(t) => *t,
            None => {
                let (t, _) = threads
                    .iter()
                    .enumerate()
                    .max_by_key(|(i, left)| (**left, std::cmp::Reverse(*i)))?;
                t
            }
        };
        if threads[thread] == 0 {
            return None;
        }
        rc.thread_of.insert(id, thread);
        Some(thread)
    }

    /// Runs one execution of `id` on `thread` with its effects captured; `run` returns
    /// the instructions used. A short execution releases its effects at once; a long one
    /// is paused with them.
    pub(crate) fn execute_sliced(
        &mut self,
        id: CanisterId,
        thread: usize,
        rc: &mut RoundCtx,
        run: impl FnOnce(&mut Self) -> u64,
    ) {
        let debit_before = self.canisters.get(&id).map_or(0, |c| c.heap_delta_debit);
        let outer = self.capture.replace(Vec::new());
        let used = run(self);
        let effects = std::mem::replace(&mut self.capture, outer).unwrap_or_default();
        self.last_scheduled.insert(id, self.round);
        if let Some(c) = self.canisters.get(&id) {
            let delta = c.heap_delta_debit.saturating_sub(debit_before);
            *rc.heap_delta.entry(c.subnet).or_default() += delta;
        }
        let slice = self.config.limits.round_per_canister.max(1);
        self.charge_thread(id, thread, used.min(slice), rc);
        if used > slice {
            self.paused.insert(
                id,
                Paused {
                    remaining: used - slice,
                    effects,
                },
            );
        } else {
            self.release(effects);
        }
    }

    fn charge_thread(&self, id: CanisterId, thread: usize, used: u64, rc: &mut RoundCtx) {
        let Some(subnet) = self.canisters.get(&id).map(|c| c.subnet) else {
            return;
        };
        if let Some(left) = rc.threads.get_mut(&subnet).and_then(|t| t.get_mut(thread)) {
            *left = left.saturating_sub(used.saturating_add(INSTRUCTION_OVERHEAD_PER_EXECUTION));
        }
    }

    /// Executes the next slice of every paused execution that gets a thread (least
    /// recently executed first); those that finish release their effects.
    pub(crate) fn continue_paused(&mut self, order: &[CanisterId], rc: &mut RoundCtx) {
        let slice = self.config.limits.round_per_canister.max(1);
        for id in order {
            let Some(subnet) = self.canisters.get(id).map(|c| c.subnet) else {
                // Deleted while paused: what it would have sent still goes out.
                if let Some(p) = self.paused.remove(id) {
                    self.release(p.effects);
                }
                continue;
            };
            if !self.paused.contains_key(id) || self.is_subnet_offline(subnet) {
                continue;
            }
            let Some(threads) = rc.threads.get(&subnet) else {
                continue;
            };
            let Some((thread, left)) = threads
                .iter()
                .enumerate()
                .max_by_key(|(i, left)| (**left, std::cmp::Reverse(*i)))
            else {
                continue;
            };
            if *left == 0 {
                continue;
            }
            rc.thread_of.insert(*id, thread);
            let p = self.paused.get_mut(id).expect("checked above");
            let step = p.remaining.min(slice);
            p.remaining -= step;
            let done = p.remaining == 0;
            self.charge_thread(*id, thread, step, rc);
            self.last_scheduled.insert(*id, self.round);
            if done {
                let p = self.paused.remove(id).expect("checked above");
                self.release(p.effects);
            }
        }
    }

    /// Lets held-back effects take place, in order.
    pub(crate) fn release(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Route(from, msg) => self.route(from, msg),
                Effect::Ingress(id, result) => {
                    self.ingress.insert(id, Some(result));
                }
            }
        }
    }

    /// Canisters least recently executed first (ties in `ids` order).
    pub(crate) fn by_priority(&self, mut ids: Vec<CanisterId>) -> Vec<CanisterId> {
        ids.sort_by_key(|id| self.last_scheduled.get(id).copied().unwrap_or(0));
        ids
    }

    /// End of round: every canister pays off one round's worth of heap-delta debit.
    pub(crate) fn repay_heap_delta(&mut self) {
        let rate = self.config.heap_delta_rate_limit;
        for c in self.canisters.values_mut() {
            c.heap_delta_debit = c.heap_delta_debit.saturating_sub(rate);
        }
    }
}

impl Harness {
    /// True for an `install_code` (or chunked) request whose canister is in the middle of
    /// a long execution: it waits until that execution's last slice.
    pub(crate) fn waits_for_paused_execution(&self, msg: &super::Message) -> bool {
        let super::Message::Request(req) = msg else {
            return false;
        };
        matches!(req.method.as_str(), "install_code" | "install_chunked_code")
            && super::management::effective_canister(&req.method, &req.arg)
                .is_some_and(|id| self.paused.contains_key(&id))
    }

    /// Instructions `id` has executed so far (0 for none).
    pub(crate) fn instructions_of(&self, id: Option<CanisterId>) -> u64 {
        id.and_then(|id| self.canisters.get(&id))
            .map_or(0, |c| c.metrics.instructions)
    }

    /// After an `install_code` that used `used` instructions on `target`: longer than one
    /// install slice (`MAX_INSTRUCTIONS_PER_INSTALL_CODE_SLICE`, 2B, the same as a message
    /// slice), the canister pauses with the answer held back; otherwise it goes out now.
    pub(crate) fn pause_install(
        &mut self,
        target: Option<CanisterId>,
        used: u64,
        effects: Vec<Effect>,
    ) {
        let slice = self.config.limits.round_per_canister.max(1);
        match target {
            Some(id) if used > slice && self.canisters.contains_key(&id) => {
                self.paused.insert(
                    id,
                    Paused {
                        remaining: used - slice,
                        effects,
                    },
                );
            }
            _ => self.release(effects),
        }
    }
}
