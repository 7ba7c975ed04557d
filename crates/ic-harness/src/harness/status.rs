//! `canister_status`: what a controller (or the canister itself) sees of a canister.

use candid::{Nat, Principal};
use ic_management_canister_types::{
    CanisterStatusResult, CanisterStatusType, DefiniteCanisterSettings, LogVisibility,
    MemoryMetrics, QueryStats,
};

use super::Harness;
use super::management::not_found;
use crate::canister::Status;
use crate::execution::InstalledCode;
use crate::types::{CanisterId, Reject};

impl Harness {
    /// `canister_status`: controllers or the canister itself.
    pub(crate) fn status_of(
        &self,
        sender: Principal,
        id: CanisterId,
    ) -> Result<CanisterStatusResult, Reject> {
        let c = self.canisters.get(&id).ok_or_else(|| not_found(&id))?;
        if sender != id {
            self.controlled(sender, id, "canister_status")?;
        }
        let heap = c.code.as_ref().map_or(0, InstalledCode::heap_bytes);
        let (binary, custom) = c.code.as_ref().map_or((0, 0), |code| {
            let p = &code.compiled.prepared;
            (p.wasm.len() as u64, p.custom_sections_bytes)
        });
        Ok(CanisterStatusResult {
            status: match c.status {
                Status::Running => CanisterStatusType::Running,
                Status::Stopping(_) => CanisterStatusType::Stopping,
                Status::Stopped => CanisterStatusType::Stopped,
            },
            ready_for_migration: false,
            version: c.version,
            settings: DefiniteCanisterSettings {
                controllers: c.controllers.clone(),
                compute_allocation: Nat::from(0u8),
                memory_allocation: Nat::from(0u8),
                freezing_threshold: Nat::from(c.freezing_threshold),
                reserved_cycles_limit: Nat::from(5_000_000_000_000u64),
                log_visibility: LogVisibility::Controllers,
                log_memory_limit: Nat::from(0u8),
                wasm_memory_limit: Nat::from(0u8),
                wasm_memory_threshold: Nat::from(0u8),
                environment_variables: Vec::new(),
            },
            module_hash: c
                .code
                .as_ref()
                .map(|code| code.compiled.prepared.module_hash.to_vec()),
            memory_size: Nat::from(c.memory_bytes()),
            memory_metrics: MemoryMetrics {
                wasm_memory_size: Nat::from(heap),
                stable_memory_size: Nat::from(c.stable.size_bytes()),
                global_memory_size: Nat::from(0u8),
                wasm_binary_size: Nat::from(binary),
                custom_sections_size: Nat::from(custom),
                canister_history_size: Nat::from(0u8),
                wasm_chunk_store_size: Nat::from(c.chunk_store_bytes()),
                snapshots_size: Nat::from(c.snapshots_bytes()),
                log_memory_store_size: Nat::from(0u8),
            },
            cycles: Nat::from(c.cycles),
            reserved_cycles: Nat::from(0u8),
            idle_cycles_burned_per_day: Nat::from(
                self.fees_of(c).idle_burn_per_day(c.memory_bytes()),
            ),
            query_stats: QueryStats {
                num_calls_total: Nat::from(0u8),
                num_instructions_total: Nat::from(0u8),
                request_payload_bytes_total: Nat::from(0u8),
                response_payload_bytes_total: Nat::from(0u8),
            },
        })
    }
}
