//! The cycle fee table of an application subnet (`rs/config/src/subnet_config.rs` and
//! `rs/cycles_account_manager/src/cycles_account_manager.rs` in dfinity/ic, and the
//! developer docs' cycle-costs page), and the cost formulas the harness charges with.
//! `docs/harness.md` lists every figure with its source.
//!
//! Invariants:
//! - [`FeeSchedule::cost_call`] is exactly what `call_perform` withdraws:
//!   [`FeeSchedule::call_request`] (kept) plus [`FeeSchedule::response_reservation`]
//!   (returned, less the response's bytes, when the response arrives; the callback then
//!   pays its own execution like any message);
//! - every formula is the 13-node reference cost scaled by `subnet_nodes / 13` with one
//!   integer division at the end, as the replica's `scale_cost` does
//!   ([`FeeSchedule::for_subnet`] sets the node count);
//! - a memory64 canister pays twice per instruction (`WASM64_INSTRUCTION_COST_OVERHEAD`),
//!   reservations for its callbacks included ([`FeeSchedule::for_wasm64`]).

/// One GiB, the unit of the storage fee.
pub const GIB: u128 = 1 << 30;

/// Nanoseconds per second.
const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Seconds per day (for `idle_cycles_burned_per_day`).
const SECONDS_PER_DAY: u128 = 86_400;

/// The replica's reference subnet size: every fee below is the price on 13 nodes
/// (`DEFAULT_REFERENCE_SUBNET_SIZE`, `rs/config/src/subnet_config.rs`).
pub const REFERENCE_SUBNET_NODES: u128 = 13;

/// Nodes of a fiduciary subnet (the developer docs' 34-node price column).
pub const FIDUCIARY_SUBNET_NODES: u128 = 34;

/// Fees in cycles. Defaults are the IC's application subnet values at the reference size
/// (13 nodes); [`FeeSchedule::for_subnet`] and [`FeeSchedule::for_wasm64`] derive the
/// schedule a given canister pays.
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
    /// Per second, for every canister that uses any memory (dfinity/ic PR #10292).
    pub base_per_second: u128,
    /// Cycles per 10 instructions of a memory64 canister.
    pub ten_update_instructions_wasm64: u128,
    /// Nodes of the subnet these fees are for (13: the reference prices).
    pub subnet_nodes: u128,
    /// Whether the paying canister is a memory64 module (its instructions cost
    /// `ten_update_instructions_wasm64`).
    pub wasm64: bool,
    /// Instructions reserved for the callback of a call (`cost_call` reservation).
    pub max_callback_instructions: u128,
}

impl Default for FeeSchedule {
    /// `CyclesAccountManagerConfig::application_subnet` in dfinity/ic
    /// `rs/config/src/subnet_config.rs`, field by field (docs/harness.md, "Fee table").
    fn default() -> Self {
        Self {
            // `CANISTER_CREATION_FEE`.
            canister_creation: 500_000_000_000,
            // `update_message_execution_fee`.
            update_message_execution: 5_000_000,
            // `ten_update_instructions_execution_fee`.
            ten_update_instructions: 10,
            // `xnet_call_fee`, `xnet_byte_transmission_fee`.
            xnet_call: 260_000,
            xnet_byte_transmission: 1_000,
            // `ingress_message_reception_fee`, `ingress_byte_reception_fee`.
            ingress_message_reception: 1_200_000,
            ingress_byte_reception: 2_000,
            // `gib_storage_per_second_fee` since the 2026 pricing change ("10 SDR per GiB
            // per year"; 127,000 before, as in the copy of the file at 002d553).
            gib_storage_per_second: 317_500,
            // `base_per_second_fee`, dfinity/ic PR #10292 (merged 2026-05-22).
            base_per_second: 10_000,
            // `WASM64_INSTRUCTION_COST_OVERHEAD` (2) × `ten_update_instructions_execution_fee`.
            ten_update_instructions_wasm64: 20,
            // `DEFAULT_REFERENCE_SUBNET_SIZE`.
            subnet_nodes: REFERENCE_SUBNET_NODES,
            wasm64: false,
            // `MAX_INSTRUCTIONS_PER_MESSAGE`: the reservation for a callback.
            max_callback_instructions: 40_000_000_000,
        }
    }
}

impl FeeSchedule {
    /// The schedule on a subnet of `nodes` nodes (prices scale linearly from 13).
    #[must_use]
    pub fn for_subnet(&self, nodes: u128) -> Self {
        Self {
            subnet_nodes: nodes.max(1),
            ..self.clone()
        }
    }

    /// The schedule a canister pays: memory64 modules pay the wasm64 instruction fee.
    #[must_use]
    pub fn for_wasm64(&self, wasm64: bool) -> Self {
        Self {
            wasm64,
            ..self.clone()
        }
    }

    /// `cost` at the reference size, scaled to this subnet (one division, as `scale_cost`).
    fn scale(&self, cost: u128) -> u128 {
        cost * self.subnet_nodes / REFERENCE_SUBNET_NODES
    }

    /// Cycles per 10 instructions for this canister's memory width (unscaled).
    fn ten_instructions(&self) -> u128 {
        if self.wasm64 {
            self.ten_update_instructions_wasm64
        } else {
            self.ten_update_instructions
        }
    }

    /// The creation fee on this subnet.
    #[must_use]
    pub fn creation(&self) -> u128 {
        self.scale(self.canister_creation)
    }

    /// `ic0.cost_call`: the call fee, the request bytes, and the reservation for the
    /// largest response (2 MiB) and its callback execution.
    #[must_use]
    pub fn cost_call(&self, method_name_len: u64, payload_len: u64) -> u128 {
        self.call_request(u64::saturating_add(method_name_len, payload_len))
            + self.response_reservation()
    }

    /// The per-call fee on this subnet (request and response).
    #[must_use]
    pub fn call_fee(&self) -> u128 {
        self.scale(self.xnet_call)
    }

    /// The part of a call's cost that is kept: the per-call fee and the request bytes.
    #[must_use]
    pub fn call_request(&self, request_bytes: u64) -> u128 {
        self.scale(self.xnet_call)
            + self.scale(self.xnet_byte_transmission * u128::from(request_bytes))
    }

    /// Reserved when a call is made, for the largest response and its callback
    /// execution; the unused part returns with the response.
    #[must_use]
    pub fn response_reservation(&self) -> u128 {
        let max_response = crate::limits::MAX_REPLICATED_RESPONSE_BYTES as u64;
        self.response_bytes(max_response) + self.execution_of(self.max_callback_instructions)
    }

    /// Transmission fee of a response of `bytes` (reply data or reject message).
    #[must_use]
    pub fn response_bytes(&self, bytes: u64) -> u128 {
        self.scale(self.xnet_byte_transmission * u128::from(bytes))
    }

    /// Cycles charged for executing `instructions`.
    #[must_use]
    pub fn instructions(&self, instructions: u128) -> u128 {
        self.scale(instructions * self.ten_instructions() / 10)
    }

    /// The base fee of one execution on this subnet.
    #[must_use]
    pub fn execution_base(&self) -> u128 {
        self.scale(self.update_message_execution)
    }

    /// One replicated execution: the base fee plus its instructions.
    #[must_use]
    pub fn execution(&self, instructions: u64) -> u128 {
        self.execution_of(u128::from(instructions))
    }

    /// [`Self::execution`] for an instruction count of any size, scaled once as the
    /// replica's `execution_cost` does.
    fn execution_of(&self, instructions: u128) -> u128 {
        self.scale(self.update_message_execution + instructions * self.ten_instructions() / 10)
    }

    /// Receiving an ingress message of `bytes` (method name plus argument).
    #[must_use]
    pub fn ingress(&self, bytes: u64) -> u128 {
        self.scale(self.ingress_message_reception)
            + self.scale(self.ingress_byte_reception * u128::from(bytes))
    }

    /// The rate of a canister holding `bytes`, in cycles per GiB-second at the
    /// reference size: storage plus the per-canister base fee (charged when it uses any
    /// memory, which every created canister does on the IC: its history).
    fn idle_rate_gib_units(&self, bytes: u64) -> u128 {
        let base = if bytes > 0 {
            self.base_per_second * GIB
        } else {
            0
        };
        self.gib_storage_per_second * u128::from(bytes) + base
    }

    /// Storage of `bytes` (plus the base fee) for `nanos` nanoseconds, as the exact
    /// rational `rate × nodes × nanos / (GiB × 10⁹ × 13)`: returns the whole cycles and
    /// the remainder (in units of that denominator) to carry into the next charge.
    #[must_use]
    pub fn storage(&self, bytes: u64, nanos: u64, carried: u128) -> (u128, u128) {
        let denominator = GIB * NANOS_PER_SECOND * REFERENCE_SUBNET_NODES;
        let numerator =
            self.idle_rate_gib_units(bytes) * self.subnet_nodes * u128::from(nanos) + carried;
        (numerator / denominator, numerator % denominator)
    }

    /// Cycles an idle canister of `bytes` burns per day (memory and base fee; no compute
    /// allocation).
    #[must_use]
    pub fn idle_burn_per_day(&self, bytes: u64) -> u128 {
        self.scale(self.idle_rate_gib_units(bytes) * SECONDS_PER_DAY / GIB)
    }

    /// The freezing reserve: what `bytes` of memory (and the base fee) cost over
    /// `threshold_seconds`. A canister whose balance is below it is frozen; calls may not
    /// spend into it.
    #[must_use]
    pub fn freeze_reserve(&self, bytes: u64, threshold_seconds: u64) -> u128 {
        self.scale(self.idle_rate_gib_units(bytes) * u128::from(threshold_seconds) / GIB)
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
        // One GiB for one second, charged in 1,000 slices of 1 ms, sums to exactly the
        // storage fee plus the per-canister base fee.
        let mut total = 0;
        let mut carried = 0;
        for _ in 0..1_000 {
            let (whole, rest) = f.storage(1 << 30, 1_000_000, carried);
            total += whole;
            carried = rest;
        }
        assert_eq!(total, 317_500 + 10_000);
        assert_eq!(carried, 0);
        assert_eq!(f.idle_burn_per_day(1 << 30), 327_500 * 86_400);
        assert_eq!(f.freeze_reserve(1 << 30, 2_592_000), 327_500 * 2_592_000);
        // A canister without memory pays neither.
        assert_eq!(f.storage(0, 1_000_000_000, 0), (0, 0));
        assert_eq!(f.idle_burn_per_day(0), 0);
    }

    #[test]
    fn fees_scale_linearly_with_the_subnet_size() {
        let f13 = FeeSchedule::default();
        let f34 = f13.for_subnet(FIDUCIARY_SUBNET_NODES);
        // The developer docs' 34-node column: 13-node price × 34 / 13, one division.
        assert_eq!(f34.execution(0), 5_000_000 * 34 / 13);
        assert_eq!(f34.execution(1_000_000_000), 1_005_000_000 * 34 / 13);
        assert_eq!(f34.call_request(0), 260_000 * 34 / 13);
        assert_eq!(f34.ingress(0), 1_200_000 * 34 / 13);
        assert_eq!(f34.creation(), 500_000_000_000 * 34 / 13);
        assert_eq!(f34.idle_burn_per_day(1 << 30), 327_500 * 86_400 * 34 / 13);
        let (day, _) = f34.storage(1 << 30, 86_400 * 1_000_000_000, 0);
        assert_eq!(day, 327_500 * 86_400 * 34 / 13);
        assert_eq!(f13.for_subnet(13), f13);
    }

    #[test]
    fn a_memory64_canister_pays_twice_per_instruction() {
        let f = FeeSchedule::default();
        let f64 = f.for_wasm64(true);
        assert_eq!(f64.instructions(1_000), 2_000);
        assert_eq!(f64.execution(1_000), 5_000_000 + 2_000);
        // The callback reservation is priced for the caller's width too.
        assert_eq!(
            f64.response_reservation() - f.response_reservation(),
            40_000_000_000
        );
    }
}
