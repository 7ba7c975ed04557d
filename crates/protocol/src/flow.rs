//! Flow control of a pipelined transfer: how many batch calls may be in flight.
//!
//! Both directions of a transfer (the kit pushing a backup into a vault, the vault
//! pushing a restore into a kit) keep a pipe of bounded-wait calls full without a barrier
//! between windows. How full is decided here, from what the path reports back, as TCP
//! does it: the limit grows while calls come back as fast as they did when the path was
//! empty, and shrinks when the path shows it is saturated.
//!
//! - **Slow start**: +1 per acknowledged call (the limit doubles per round trip) until the
//!   first sign of a queue; then **additive increase**: +1 per limit's worth of acks.
//! - **Delay signal**: a round trip over [`QUEUE_RTT_FACTOR`] times the fastest one seen
//!   means the calls wait in queues (the cross-subnet stream or the receiver's input queue)
//!   rather than travel: the limit stops growing, which bounds the backlog the transfer
//!   puts in front of the app's own messages.
//! - **Loss signal**: a reject that means the path is full or the message was dropped
//!   (SYS_TRANSIENT queue full, SYS_UNKNOWN, a timeout) halves the limit (never below
//!   [`MIN_IN_FLIGHT`]).
//!
//! Invariant: `MIN_IN_FLIGHT <= limit() <= max`. Pure: time comes in as arguments.

/// The fewest calls in flight the limit ever allows.
pub const MIN_IN_FLIGHT: u32 = 1;
/// Calls in flight a transfer starts with (the old fixed window).
pub const INITIAL_IN_FLIGHT: u32 = 4;
/// Default ceiling: enough to fill a path of ~2 batches per round over a round trip of
/// up to ~16 rounds (see docs/benchmarks.md, "Throughput").
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 32;
/// A round trip this many times the fastest seen counts as queueing.
pub const QUEUE_RTT_FACTOR: u64 = 2;

/// Adaptive in-flight limit (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowControl {
    limit: u32,
    max: u32,
    slow_start: bool,
    /// Acks counted towards the next additive step.
    acked_in_step: u32,
    /// Fastest round trip seen (ns); 0 before the first ack.
    min_rtt_ns: u64,
}

impl FlowControl {
    /// A controller that never allows more than `max` calls in flight (`max` is raised
    /// to [`MIN_IN_FLIGHT`] if lower).
    pub fn new(max: u32) -> Self {
        let max = max.max(MIN_IN_FLIGHT);
        Self {
            limit: INITIAL_IN_FLIGHT.min(max),
            max,
            slow_start: true,
            acked_in_step: 0,
            min_rtt_ns: 0,
        }
    }

    /// Calls that may be in flight now.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The ceiling the limit never exceeds.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// True if one more call may start while `in_flight` are outstanding.
    pub fn may_send(&self, in_flight: usize) -> bool {
        in_flight < self.limit as usize
    }

    /// A call came back with a usable answer after `rtt_ns`.
    pub fn on_ack(&mut self, rtt_ns: u64) {
        if self.min_rtt_ns == 0 || rtt_ns < self.min_rtt_ns {
            self.min_rtt_ns = rtt_ns;
        }
        if rtt_ns > self.min_rtt_ns.saturating_mul(QUEUE_RTT_FACTOR) {
            // Queueing: hold the limit, and leave slow start for good.
            self.slow_start = false;
            self.acked_in_step = 0;
            return;
        }
        if self.slow_start {
            self.limit = (self.limit + 1).min(self.max);
            return;
        }
        self.acked_in_step += 1;
        if self.acked_in_step >= self.limit {
            self.acked_in_step = 0;
            self.limit = (self.limit + 1).min(self.max);
        }
    }

    /// The path reported it is full or lost a call: halve the limit.
    pub fn on_congestion(&mut self) {
        self.slow_start = false;
        self.acked_in_step = 0;
        self.limit = (self.limit / 2).max(MIN_IN_FLIGHT);
    }

    /// Fastest round trip seen (ns), 0 before the first ack.
    pub fn min_rtt_ns(&self) -> u64 {
        self.min_rtt_ns
    }
}

/// True if a reject with this code says the path is saturated or lost the message:
/// SYS_TRANSIENT (2: e.g. the receiver's queue is full, or out of memory for the
/// message) and SYS_UNKNOWN (6: a bounded-wait call timed out or its reply was dropped).
/// CANISTER_ERROR and refusals are not congestion.
pub fn is_congestion(reject_code: u32) -> bool {
    matches!(reject_code, 2 | 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_doubles_per_round_trip_up_to_the_ceiling() {
        let mut f = FlowControl::new(32);
        assert_eq!(f.limit(), INITIAL_IN_FLIGHT);
        for _ in 0..4 {
            f.on_ack(1_000);
        }
        assert_eq!(f.limit(), 8);
        for _ in 0..100 {
            f.on_ack(1_000);
        }
        assert_eq!(f.limit(), 32);
    }

    #[test]
    fn a_queueing_round_trip_stops_growth_then_growth_is_additive() {
        let mut f = FlowControl::new(64);
        f.on_ack(1_000);
        assert_eq!(f.limit(), 5);
        f.on_ack(2_001);
        assert_eq!(
            f.limit(),
            5,
            "a round trip over twice the fastest holds the limit"
        );
        for _ in 0..4 {
            f.on_ack(1_000);
        }
        assert_eq!(f.limit(), 5, "additive: one step per limit's worth of acks");
        f.on_ack(1_000);
        assert_eq!(f.limit(), 6);
    }

    #[test]
    fn congestion_halves_and_never_goes_below_the_floor() {
        let mut f = FlowControl::new(32);
        for _ in 0..12 {
            f.on_ack(1_000);
        }
        assert_eq!(f.limit(), 16);
        f.on_congestion();
        assert_eq!(f.limit(), 8);
        for _ in 0..10 {
            f.on_congestion();
        }
        assert_eq!(f.limit(), MIN_IN_FLIGHT);
        assert!(f.may_send(0));
        assert!(!f.may_send(1));
    }

    #[test]
    fn a_ceiling_below_the_initial_limit_wins() {
        let f = FlowControl::new(2);
        assert_eq!(f.limit(), 2);
        assert_eq!(FlowControl::new(0).limit(), MIN_IN_FLIGHT);
    }

    #[test]
    fn only_transient_and_unknown_rejects_are_congestion() {
        assert!(is_congestion(2));
        assert!(is_congestion(6));
        for code in [1, 3, 4, 5] {
            assert!(!is_congestion(code));
        }
    }
}
