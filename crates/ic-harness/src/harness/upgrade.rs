//! `install_code` in mode upgrade: pre_upgrade on the old instance, then `(start)` and
//! post_upgrade on a new one, as one transaction over the heap and stable memory.
//!
//! The wasm heap (main memory) is replaced by the new module's initial memory, unless the
//! upgrade says `wasm_memory_persistence = opt keep`: then the new instance starts with the
//! old instance's heap exactly as pre_upgrade left it, and with the new module's own
//! initial globals (dfinity/ic `Hypervisor::create_execution_state`, `MemorySource::Preserve`:
//! only `wasm_memory` is carried over). The replica's two guards
//! (`determine_main_memory_handling` in `rs/execution_environment/src/execution/upgrade.rs`)
//! apply, both IC0504 (`CanisterContractViolation`), after pre_upgrade has run:
//! - the old module declares enhanced orthogonal persistence and the option is absent;
//! - `keep` is asked for a new module that does not declare it.
//!
//! Invariant: a failed upgrade leaves the old instance's heap, globals and stable memory
//! exactly as they were before it.

use candid::Principal;
use ic_management_canister_types::WasmMemoryPersistence;

use super::Harness;
use super::management::{Lifecycle, START, instantiate, reject};
use crate::execution::InstalledCode;
use crate::runtime::CompiledModule;
use crate::system_api::ApiContext;
use crate::types::{CanisterId, Reject, RejectCode};

/// What happens to the heap across an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MainMemory {
    /// The old instance's heap is the new instance's heap.
    Keep,
    /// The new instance starts from its module's initial memory.
    Replace,
}

/// The replica's decision (and refusals) for `wasm_memory_persistence`, given whether the
/// old and the new module declare enhanced orthogonal persistence.
pub(crate) fn main_memory_handling(
    option: Option<WasmMemoryPersistence>,
    old_is_eop: bool,
    new_is_eop: bool,
) -> Result<MainMemory, Reject> {
    match option {
        None if old_is_eop => Err(reject(
            RejectCode::CanisterError,
            "Missing upgrade option: Enhanced orthogonal persistence requires the `wasm_memory_persistence` upgrade option. (IC0504)",
        )),
        None | Some(WasmMemoryPersistence::Replace) => Ok(MainMemory::Replace),
        Some(WasmMemoryPersistence::Keep) if !new_is_eop => Err(reject(
            RejectCode::CanisterError,
            "Invalid upgrade option: The `wasm_memory_persistence: opt Keep` upgrade option requires that the new canister module supports enhanced orthogonal persistence. (IC0504)",
        )),
        Some(WasmMemoryPersistence::Keep) => Ok(MainMemory::Keep),
    }
}

impl Harness {
    /// Upgrades `id` to `compiled` (see the module docs).
    pub(super) fn upgrade(
        &mut self,
        id: CanisterId,
        compiled: CompiledModule,
        arg: Vec<u8>,
        sender: Principal,
        skip_pre: bool,
        persistence: Option<WasmMemoryPersistence>,
    ) -> Result<(), Reject> {
        let c = self.canisters.get_mut(&id).expect("exists");
        let mut old = c.code.take().expect("checked has code");
        let mut stable = std::mem::take(&mut c.stable);
        stable.begin();
        let old_is_eop = old.compiled.prepared.enhanced_orthogonal_persistence;
        let new_is_eop = compiled.prepared.enhanced_orthogonal_persistence;
        // With `keep`, pre_upgrade's heap changes are part of what the new instance gets,
        // so it runs persisted and the old heap is saved to put back on failure. Otherwise
        // it runs unpersisted: the old heap must survive a failure later in the upgrade.
        let saved = (persistence == Some(WasmMemoryPersistence::Keep))
            .then(|| (old.heap_copy(), old.global_values()));
        let budget = self.config.limits.install;
        let result = (|| {
            let mut lc = Lifecycle {
                code: &mut old,
                stable: &mut stable,
                caller: sender,
                budget,
            };
            if !skip_pre {
                self.lifecycle_step(
                    id,
                    &mut lc,
                    ("canister_pre_upgrade", ApiContext::PreUpgrade),
                    Vec::new(),
                    saved.is_some(),
                )?;
            }
            let budget = lc.budget;
            let mut code = match main_memory_handling(persistence, old_is_eop, new_is_eop)? {
                MainMemory::Replace => instantiate(id, compiled)?,
                MainMemory::Keep => {
                    let heap = old.heap_copy();
                    InstalledCode::with_heap(compiled, &heap).map_err(|e| {
                        reject(
                            RejectCode::CanisterError,
                            format!("Error from Canister {id}: Canister's Wasm module is not valid: {e}. (IC0505)"),
                        )
                    })?
                }
            };
            let mut lc = Lifecycle {
                code: &mut code,
                stable: &mut stable,
                caller: sender,
                budget,
            };
            self.lifecycle_step(id, &mut lc, START, Vec::new(), true)?;
            let post = self.lifecycle_step(
                id,
                &mut lc,
                ("canister_post_upgrade", ApiContext::Init),
                arg,
                true,
            )?;
            Ok((code, post))
        })();
        match result {
            Ok((code, post)) => {
                stable.commit();
                self.commit_install(id, code, stable, post);
                Ok(())
            }
            Err(r) => {
                stable.rollback();
                if let Some((heap, globals)) = saved {
                    old.reset_to(&heap, &globals);
                }
                let c = self.canisters.get_mut(&id).expect("exists");
                c.code = Some(old);
                c.stable = stable;
                Err(r)
            }
        }
    }
}
