//! Which restore jobs have a step armed or running, so each job has at most one.
//!
//! Kept on the heap by the driver. A step's execution marks its slot `Running` before
//! anything else; if the execution traps before its first `await`, the IC rolls back
//! the whole execution, that mark included, and no `Drop` runs: the slot stays `Armed`
//! with a due time in the past and no timer behind it. [`Slots::arm`] treats such a
//! slot, [`LOST_AFTER_NS`] past its due time, as lost and arms the job again, so the
//! hourly housekeeping (or an upgrade) resumes the job.

use std::collections::BTreeMap;

/// How long past its due time an armed step that never started counts as lost.
pub const LOST_AFTER_NS: u64 = 60_000_000_000;

/// Where a job's step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// A timer is armed, due at this time (ns).
    Armed { due_ns: u64 },
    /// The step runs (between its awaits).
    Running,
}

/// The slots of every job with a step armed or running.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slots(BTreeMap<u64, Slot>);

impl Slots {
    /// Records a step of job `id` due `delay_ns` from `now_ns`. Returns `true` if the
    /// caller must arm its timer: none was armed or running, or the armed one is lost.
    pub fn arm(&mut self, id: u64, now_ns: u64, delay_ns: u64) -> bool {
        match self.0.get(&id) {
            Some(Slot::Running) => false,
            Some(Slot::Armed { due_ns }) if now_ns <= due_ns.saturating_add(LOST_AFTER_NS) => false,
            _ => {
                let due_ns = now_ns.saturating_add(delay_ns);
                self.0.insert(id, Slot::Armed { due_ns });
                true
            }
        }
    }

    /// Marks job `id`'s step as running. Returns `false` if one already runs (a
    /// re-armed duplicate of a step that was only late): the caller does nothing.
    pub fn start(&mut self, id: u64) -> bool {
        self.0.insert(id, Slot::Running) != Some(Slot::Running)
    }

    /// Frees job `id`'s slot (its step ended, or was dropped after a trap).
    pub fn finish(&mut self, id: u64) {
        self.0.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn should_arm_once_and_free_when_the_step_ends() {
        let mut slots = Slots::default();
        assert!(slots.arm(1, 0, 0));
        assert!(!slots.arm(1, 0, 0), "already armed");
        assert!(slots.start(1));
        assert!(!slots.arm(1, 3_600 * S, 0), "running, however long");
        assert!(!slots.start(1), "a duplicate does nothing");
        slots.finish(1);
        assert!(slots.arm(1, 3_600 * S, 0));
    }

    /// L4: a step that traps before its first `await` rolls back its `start` (the
    /// execution's heap changes are discarded) and runs no `Drop`.
    #[test]
    fn should_rearm_a_step_whose_execution_trapped_before_its_first_await() {
        let mut slots = Slots::default();
        assert!(slots.arm(7, 10 * S, 5 * S));
        let before_the_step = slots.clone();
        assert!(slots.start(7));
        slots = before_the_step; // the trap
        assert!(
            !slots.arm(7, 15 * S, 0),
            "not yet overdue: the timer may still fire"
        );
        assert!(
            slots.arm(7, 15 * S + LOST_AFTER_NS + 1, 0),
            "the hourly housekeeping re-arms it"
        );
        assert!(slots.start(7));
    }
}
