//! Charging cycles: executions, ingress, calls (request bytes kept, response reservation
//! returned less the response's bytes), storage over simulated time, and the freezing
//! threshold.
//!
//! Invariants:
//! - every charge lowers the balance by exactly the amount added to one category of
//!   [`crate::CyclesBurned`] (saturating at zero, which the prepayment check prevents for
//!   executions);
//! - a canister is frozen when its balance is below its freezing reserve
//!   ([`crate::fees::FeeSchedule::freeze_reserve`] of its memory over its freezing
//!   threshold) plus the prepayment of one update execution at the instruction limit, or
//!   when fault injection froze it; requests to a frozen canister get SYS_TRANSIENT
//!   (IC0207) and it runs no timer or heartbeat, but responses still execute (their
//!   callback was prepaid by the call's reservation);
//! - a canister whose storage fee exceeds its balance runs out of cycles: its code,
//!   memory, chunk store and snapshots are deleted and its balance is zero.

use candid::Principal;

use super::Harness;
use crate::canister::Canister;
use crate::execution::Outcome;
use crate::fees::FeeSchedule;
use crate::system_api::ApiContext;
use crate::types::{CanisterId, Reject, RejectCode};

/// Charges one execution of `instructions` to `c` directly (`base`: plus the base fee).
pub(super) fn charge_execution(
    c: &mut Canister,
    fees: &FeeSchedule,
    instructions: u64,
    base: bool,
) {
    let base_fee = if base { fees.execution_base() } else { 0 };
    let instruction_fee = fees.instructions(u128::from(instructions));
    c.cycles = c.cycles.saturating_sub(base_fee + instruction_fee);
    c.metrics.cycles_burned.execution += base_fee;
    c.metrics.cycles_burned.instructions += instruction_fee;
}

/// Charges the execution in `outcome` to `c`: the base fee (not for cleanups) plus its
/// instructions. A committed update-like execution's balance is applied from its state
/// later, so the fee comes off that state; otherwise off the canister directly.
pub(super) fn charge_run(
    c: &mut Canister,
    fees: &FeeSchedule,
    context: ApiContext,
    persist: bool,
    outcome: &mut Outcome,
) {
    let base = if context == ApiContext::Cleanup {
        0
    } else {
        fees.execution_base()
    };
    let instruction_fee = fees.instructions(u128::from(outcome.instructions));
    let fee = base + instruction_fee;
    c.metrics.cycles_burned.execution += base;
    c.metrics.cycles_burned.instructions += instruction_fee;
    match &mut outcome.result {
        // The prepayment comes back and the execution's cost goes.
        Ok(s) if persist && !context.is_query() => {
            s.balance = (s.balance + s.prepaid).saturating_sub(fee);
        }
        _ => c.cycles = c.cycles.saturating_sub(fee),
    }
}

impl Harness {
    /// The freezing reserve of `c`: what its memory costs over its freezing threshold.
    /// Fault-frozen canisters reserve everything (nothing is liquid).
    pub(crate) fn freeze_reserve(&self, c: &Canister) -> u128 {
        if c.frozen_by_fault {
            u128::MAX
        } else {
            self.fees_of(c)
                .freeze_reserve(c.memory_bytes(), c.freezing_threshold)
        }
    }

    /// SYS_TRANSIENT (IC0207) if `c` cannot prepay an update execution above its reserve.
    pub(crate) fn check_not_frozen(&self, c: &Canister) -> Result<(), Reject> {
        let id = c.id;
        if c.frozen_by_fault {
            return Err(Reject::new(
                RejectCode::SysTransient,
                format!(
                    "Canister {id} is out of cycles: it is frozen (ic-harness fault injection). (IC0207)"
                ),
            ));
        }
        let needed = self.freeze_reserve(c) + self.fees_of(c).execution(self.config.limits.update);
        if c.cycles < needed {
            return Err(Reject::new(
                RejectCode::SysTransient,
                format!(
                    "Canister {id} is out of cycles: please top up the canister with at least {} additional cycles. (IC0207)",
                    needed - c.cycles
                ),
            ));
        }
        Ok(())
    }

    /// Charges the reception of an ingress message of `bytes` to `canister`, after checking
    /// that it is not frozen.
    pub(crate) fn charge_ingress(
        &mut self,
        canister: CanisterId,
        bytes: u64,
    ) -> Result<(), Reject> {
        let Some(c) = self.canisters.get(&canister) else {
            return Ok(()); // rejected with DESTINATION_INVALID on delivery
        };
        self.check_not_frozen(c)?;
        let fee = self.fees_of(c).ingress(bytes);
        let c = self.canisters.get_mut(&canister).expect("present");
        c.cycles = c.cycles.saturating_sub(fee);
        c.metrics.cycles_burned.ingress += fee;
        Ok(())
    }

    /// Charges every canister for its memory since its last charge; canisters that cannot
    /// pay run out of cycles and lose their memory.
    pub(crate) fn charge_storage(&mut self) {
        let now = self.time;
        let mut exhausted = Vec::new();
        for c in self.canisters.values_mut() {
            let nanos = now.saturating_sub(c.storage_since);
            c.storage_since = now;
            let fees = super::canister_fees(&self.fees, &self.subnet_nodes, c);
            let (fee, carry) = fees.storage(c.memory_bytes(), nanos, c.storage_carry);
            c.storage_carry = carry;
            if fee > c.cycles {
                c.metrics.cycles_burned.storage += c.cycles;
                c.cycles = 0;
                if c.code.is_some() || !c.snapshots.is_empty() || c.stable.size_bytes() > 0 {
                    exhausted.push(c.id);
                }
            } else {
                c.cycles -= fee;
                c.metrics.cycles_burned.storage += fee;
            }
        }
        for id in exhausted {
            let c = self.canisters.get_mut(&id).expect("present");
            c.wipe_memory();
            c.storage_carry = 0;
            self.log_event(
                Some(id),
                format!(
                    "canister {id} ran out of cycles: its code, memory, chunk store and snapshots were deleted"
                ),
            );
        }
    }

    /// The fee part of a response arriving for a call of `caller`: the reservation comes
    /// back less the response's bytes, which are charged.
    pub(crate) fn settle_response_fees(&mut self, caller: Principal, response_bytes: u64) {
        let Some(fees) = self.canisters.get(&caller).map(|c| self.fees_of(c)) else {
            return;
        };
        if let Some(c) = self.canisters.get_mut(&caller) {
            let bytes_fee = fees.response_bytes(response_bytes);
            let refund = fees.response_reservation().saturating_sub(bytes_fee);
            c.cycles += refund;
            c.metrics.cycles_burned.bytes += bytes_fee;
        }
    }
}
