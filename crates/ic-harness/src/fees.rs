//! The cycle fee table of a 13-node application subnet (`rs/config/src/subnet_config.rs`
//! in dfinity/ic, and the developer docs' cycle-costs page), and the cost formulas the
//! harness charges with. `docs/harness.md` lists every figure with its source.
//!
//! Invariant: [`FeeSchedule::cost_call`] is exactly what `call_perform` withdraws:
//! [`FeeSchedule::call_request`] (kept) plus [`FeeSchedule::response_reservation`]
//! (returned, less the response's bytes, when the response arrives; the callback then
//! pays its own execution like any message).

/// One GiB, the unit of the storage fee.
pub const GIB: u128 = 1 << 30;

/// Nanoseconds per second.
const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Seconds per day (for `idle_cycles_burned_per_day`).
const SECONDS_PER_DAY: u128 = 86_400;

/// Fees in cycles. Defaults are the IC's 13-node application subnet values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeSchedule {
    /// Creating a canister.
    pub canister_creation: u128,
    /// Base fee of every update, timer, callback execution.
    pub update_message_execution: u128,
    /// Cycles per 10 instructions executed.
    pub ten_update_instructions: u128,
    /// Per inter-canister call (request + response).
    pub xnet_call: u128,
    /// Per byte of an inter-canister request or response.
    pub xnet_byte_transmission: u128,
    /// Per ingress message received.
    pub ingress_message_reception: u128,
    /// Per ingress byte received.
    pub ingress_byte_reception: u128,
    /// Per GiB of memory per second.
    pub gib_storage_per_second: u128,
    /// Instructions reserved for the callback of a call (`cost_call` reservation).
    pub max_callback_instructions: u128,
}

impl Default for FeeSchedule {
    fn default() -> Self {
        Self {
            canister_creation: 500_000_000_000,
            update_message_execution: 5_000_000,
            ten_update_instructions: 10,
            xnet_call: 260_000,
            xnet_byte_transmission: 1_000,
            ingress_message_reception: 1_200_000,
            ingress_byte_reception: 2_000,
            gib_storage_per_second: 127_000,
            max_callback_instructions: 40_000_000_000,
        }
    }
}

impl FeeSchedule {
    /// `ic0.cost_call`: the call fee, the request bytes, and the reservation for the
    /// largest response (2 MiB) and its callback execution.
    #[must_use]
    pub fn cost_call(&self, method_name_len: u64, payload_len: u64) -> u128 {
        self.call_request(u64::saturating_add(method_name_len, payload_len))
            + self.response_reservation()
    }

    /// The part of a call's cost that is kept: the per-call fee and the request bytes.
    #[must_use]
    pub fn call_request(&self, request_bytes: u64) -> u128 {
        self.xnet_call + self.xnet_byte_transmission * u128::from(request_bytes)
    }

    /// Reserved when a call is made, for the largest response and its callback
    /// execution; the unused part returns with the response.
    #[must_use]
    pub fn response_reservation(&self) -> u128 {
        let max_response = crate::limits::MAX_REPLICATED_RESPONSE_BYTES as u128;
        self.xnet_byte_transmission * max_response
            + self.update_message_execution
            + self.instructions(self.max_callback_instructions)
    }

    /// Transmission fee of a response of `bytes` (reply data or reject message).
    #[must_use]
    pub fn response_bytes(&self, bytes: u64) -> u128 {
        self.xnet_byte_transmission * u128::from(bytes)
    }

    /// Cycles charged for executing `instructions`.
    #[must_use]
    pub fn instructions(&self, instructions: u128) -> u128 {
        instructions * self.ten_update_instructions / 10
    }

    /// One replicated execution: the base fee plus its instructions.
    #[must_use]
    pub fn execution(&self, instructions: u64) -> u128 {
        self.update_message_execution + self.instructions(u128::from(instructions))
    }

    /// Receiving an ingress message of `bytes` (method name plus argument).
    #[must_use]
    pub fn ingress(&self, bytes: u64) -> u128 {
        self.ingress_message_reception + self.ingress_byte_reception * u128::from(bytes)
    }

    /// Storage of `bytes` for `nanos` nanoseconds, as the exact rational
    /// `fee × bytes × nanos / (GiB × 10⁹)`: returns the whole cycles and the remainder
    /// (in units of `1 / (GiB × 10⁹)` cycle) to carry into the next charge.
    #[must_use]
    pub fn storage(&self, bytes: u64, nanos: u64, carried: u128) -> (u128, u128) {
        let denominator = GIB * NANOS_PER_SECOND;
        let numerator =
            self.gib_storage_per_second * u128::from(bytes) * u128::from(nanos) + carried;
        (numerator / denominator, numerator % denominator)
    }

    /// Cycles an idle canister of `bytes` burns per day (memory only; no compute allocation).
    #[must_use]
    pub fn idle_burn_per_day(&self, bytes: u64) -> u128 {
        self.gib_storage_per_second * u128::from(bytes) * SECONDS_PER_DAY / GIB
    }

    /// The freezing reserve: what `bytes` of memory cost over `threshold_seconds`. A
    /// canister whose balance is below it is frozen; calls may not spend into it.
    #[must_use]
    pub fn freeze_reserve(&self, bytes: u64, threshold_seconds: u64) -> u128 {
        self.gib_storage_per_second * u128::from(bytes) * u128::from(threshold_seconds) / GIB
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_call_is_request_plus_reservation() {
        let f = FeeSchedule::default();
        assert_eq!(
            f.cost_call(5, 100),
            f.call_request(105) + f.response_reservation()
        );
        // 260k + 105 kB-cycles + 2 MiB × 1000 + 5M + 40B instructions at 1 cycle each.
        assert_eq!(
            f.cost_call(5, 100),
            260_000 + 105_000 + 2_097_152_000 + 5_000_000 + 40_000_000_000
        );
    }

    #[test]
    fn storage_carries_the_remainder_exactly() {
        let f = FeeSchedule::default();
        // One GiB for one second, charged in 1,000 slices of 1 ms, sums to exactly the fee.
        let mut total = 0;
        let mut carried = 0;
        for _ in 0..1_000 {
            let (whole, rest) = f.storage(1 << 30, 1_000_000, carried);
            total += whole;
            carried = rest;
        }
        assert_eq!(total, 127_000);
        assert_eq!(carried, 0);
        assert_eq!(f.idle_burn_per_day(1 << 30), 127_000 * 86_400);
        assert_eq!(f.freeze_reserve(1 << 30, 2_592_000), 127_000 * 2_592_000);
    }
}
