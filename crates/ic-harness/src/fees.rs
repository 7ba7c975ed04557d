//! The cycle fee table of a 13-node application subnet (`rs/config/src/subnet_config.rs`
//! in dfinity/ic, and the developer docs' cycle-costs page).

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
        let request_bytes = u128::from(method_name_len) + u128::from(payload_len);
        let max_response = crate::limits::MAX_REPLICATED_RESPONSE_BYTES as u128;
        self.xnet_call
            + self.xnet_byte_transmission * (request_bytes + max_response)
            + self.update_message_execution
            + self.instructions(self.max_callback_instructions)
    }

    /// Cycles charged for executing `instructions`.
    #[must_use]
    pub fn instructions(&self, instructions: u128) -> u128 {
        instructions * self.ten_update_instructions / 10
    }
}
