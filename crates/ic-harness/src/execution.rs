//! Running one entry point of an installed module, atomically.
//!
//! Invariant: after [`InstalledCode::execute`] returns a trap, or for any execution whose
//! state is not persisted (queries), the heap, the exported mutable globals and the stable
//! memory are exactly what they were before it, and its buffered effects are dropped (the
//! caller never sees its `ExecState`).
//!
//! The heap's rollback source is a shadow copy kept with the instance, equal to the heap
//! between executions. After an execution the two are compared page-wise: a kept execution
//! copies its changed pages into the shadow (they are its heap delta), a discarded one copies
//! them back from it. Per execution that is one compare of the heap (no allocation, no full
//! copy) plus copies proportional to the pages changed, and the stable-memory blocks the
//! execution touched; the shadow costs one heap's worth of memory per instance.

use wasmtime::{Global, Instance, Memory, Ref, Store, Val};

use crate::runtime::CompiledModule;
use crate::stable_memory::StableMemory;
use crate::stable_pages::{ExecPages, PageLimits};
use crate::system_api::{CanisterState, ExecState, HostTrap};

/// What to run.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    /// An exported `() -> ()` function, e.g. `canister_update put`.
    Export(String),
    /// A callback closure from the module's function table.
    Callback {
        /// Table index of a `(I) -> ()` function (`I` = i32 for wasm32, i64 for memory64).
        fun: u64,
        /// Its environment argument.
        env: u64,
    },
}

/// Who owns the stable-memory transaction of an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StableTxn {
    /// The execution begins, commits or rolls back its own transaction.
    Own,
    /// The caller has a transaction open around several executions (upgrade).
    Outer,
}

/// Why an execution failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExecTrap {
    /// A host function trapped (ic0.trap, contract violation, instruction or stable-memory
    /// page limit in a syscall).
    Host(HostTrap),
    /// The wasm code trapped (unreachable, out-of-bounds access...).
    Wasm(String),
    /// Fuel ran out.
    OutOfInstructions,
}

impl ExecTrap {
    /// The reject message the IC would give for this trap in `canister`.
    pub(crate) fn reject_message(&self, canister: &candid::Principal) -> String {
        match self {
            Self::Host(HostTrap::Explicit(msg)) => format!(
                "Error from Canister {canister}: Canister called `ic0.trap` with message: '{msg}'. (IC0503)"
            ),
            Self::Host(HostTrap::ContractViolation(msg)) => {
                format!(
                    "Error from Canister {canister}: Canister violated contract: {msg}. (IC0504)"
                )
            }
            Self::Host(HostTrap::OutOfInstructions) | Self::OutOfInstructions => format!(
                "Error from Canister {canister}: Canister exceeded the instruction limit for single message execution. (IC0522)"
            ),
            Self::Host(HostTrap::MemoryAccessLimitExceeded(msg)) => format!(
                "Error from Canister {canister}: Canister exceeded memory access limits: {msg}. (IC0524)"
            ),
            Self::Wasm(msg) => {
                format!("Error from Canister {canister}: Canister trapped: {msg}. (IC0502)")
            }
        }
    }
}

/// Result of one execution.
pub(crate) struct Outcome {
    /// The committed execution state (effects to apply), or the trap.
    pub result: Result<ExecState, ExecTrap>,
    /// Instructions (fuel) consumed.
    pub instructions: u64,
    /// `debug_print` output, kept even when the execution trapped.
    pub logs: Vec<String>,
    /// Bytes of heap and stable-memory pages a committed execution dirtied (0 when
    /// nothing was kept): 4 KiB heap pages that differ from before (new pages count when
    /// not all zero) plus the stable-memory blocks the transaction touched.
    pub heap_delta: u64,
}

/// A module instantiated for one canister.
pub(crate) struct InstalledCode {
    pub compiled: CompiledModule,
    store: Store<CanisterState>,
    instance: Instance,
    memory: Memory,
    globals: Vec<Global>,
    /// The heap as it was at the end of the last kept execution or restore. Invariant:
    /// between executions it equals the heap whenever its length does; a length mismatch
    /// (fresh instance, grown or replaced heap) means "stale" and it is recopied in full.
    shadow: Vec<u8>,
}

impl InstalledCode {
    /// Instantiates `compiled` in a fresh store. Runs no canister code (the start
    /// function was turned into the `canister_start` export).
    pub(crate) fn instantiate(compiled: CompiledModule) -> Result<Self, String> {
        let mut state = CanisterState::default();
        state.heap_limit.max_bytes = compiled.prepared.max_heap_bytes();
        let mut store = Store::new(compiled.module.engine(), state);
        store.limiter(|s| &mut s.heap_limit);
        store.set_fuel(u64::MAX).map_err(|e| e.to_string())?;
        let instance = compiled
            .linker
            .instantiate(&mut store, &compiled.module)
            .map_err(|e| format!("instantiation failed: {e}"))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or("the module exports no memory named \"memory\"")?;
        store.data_mut().memory = Some(memory);
        let globals = compiled
            .prepared
            .mutable_global_exports
            .iter()
            .map(|name| {
                instance
                    .get_global(&mut store, name)
                    .ok_or_else(|| format!("mutable global export {name} is missing"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            compiled,
            store,
            instance,
            memory,
            globals,
            shadow: Vec::new(),
        })
    }

    /// True if the module exports `name`.
    pub(crate) fn has_export(&mut self, name: &str) -> bool {
        self.instance.get_func(&mut self.store, name).is_some()
    }

    /// Size of the wasm heap in bytes.
    pub(crate) fn heap_bytes(&self) -> u64 {
        self.memory.data_size(&self.store) as u64
    }

    /// A copy of the wasm heap (for snapshots).
    pub(crate) fn heap_copy(&self) -> Vec<u8> {
        self.memory.data(&self.store).to_vec()
    }

    /// The values of the exported mutable globals, in export order (for snapshots).
    pub(crate) fn global_values(&mut self) -> Vec<Val> {
        self.globals
            .iter()
            .map(|g| g.get(&mut self.store))
            .collect()
    }

    /// A fresh instance of `compiled` whose heap is `heap` and whose exported mutable
    /// globals are `globals` (loading a snapshot). The heap must be whole wasm pages and at
    /// least the module's initial memory; the globals must match the module's in number
    /// and type.
    pub(crate) fn from_snapshot(
        compiled: CompiledModule,
        heap: &[u8],
        globals: &[Val],
    ) -> Result<Self, String> {
        let mut code = Self::with_heap(compiled, heap)?;
        if globals.len() != code.globals.len() {
            return Err(format!(
                "the snapshot has {} globals, the module exports {} mutable globals",
                globals.len(),
                code.globals.len()
            ));
        }
        for (i, (global, value)) in code.globals.clone().iter().zip(globals).enumerate() {
            global
                .set(&mut code.store, *value)
                .map_err(|e| format!("global {i} does not match the module: {e}"))?;
        }
        Ok(code)
    }

    /// A fresh instance of `compiled` whose heap is `heap` (the whole of it, data segments
    /// included, replaces the module's initial memory) and whose globals are the module's
    /// initial ones: an upgrade with `wasm_memory_persistence = keep`, as the replica's
    /// `MemorySource::Preserve` does it, and the heap half of a snapshot load. The heap must
    /// be whole wasm pages, at least the module's initial memory and at most the maximum
    /// heap of the module's memory width.
    pub(crate) fn with_heap(compiled: CompiledModule, heap: &[u8]) -> Result<Self, String> {
        let max = compiled.prepared.max_heap_bytes();
        if heap.len() as u64 > max {
            return Err(format!(
                "the Wasm memory ({} bytes) exceeds the maximum Wasm memory ({max} bytes) allowed for the Wasm execution mode of the canister module",
                heap.len()
            ));
        }
        let mut code = Self::instantiate(compiled)?;
        if !heap.len().is_multiple_of(65_536) {
            return Err(format!(
                "the wasm memory size {} is not a multiple of the 64 KiB page size",
                heap.len()
            ));
        }
        let current = code.memory.data_size(&code.store);
        if heap.len() < current {
            return Err(format!(
                "the Wasm memory ({} bytes) is smaller than the minimum Wasm memory ({current} bytes) declared by the canister module",
                heap.len()
            ));
        }
        let extra_pages = ((heap.len() - current) / 65_536) as u64;
        if extra_pages > 0 {
            code.memory
                .grow(&mut code.store, extra_pages)
                .map_err(|e| format!("cannot grow the wasm memory to {} bytes: {e}", heap.len()))?;
        }
        code.memory.data_mut(&mut code.store)[..heap.len()].copy_from_slice(heap);
        Ok(code)
    }

    /// Puts back a heap and globals saved with [`Self::heap_copy`] and
    /// [`Self::global_values`] (an upgrade that ran `pre_upgrade` for keeps, then failed).
    pub(crate) fn reset_to(&mut self, heap: &[u8], globals: &[Val]) {
        self.shadow.clear();
        self.shadow.extend_from_slice(heap);
        self.restore(globals);
    }

    /// Runs `entry` with `state` as its System API view. `persist` false discards every
    /// change even on success (queries, and pre_upgrade until the upgrade commits).
    pub(crate) fn execute(
        &mut self,
        stable: &mut StableMemory,
        entry: &Entry,
        state: ExecState,
        persist: bool,
        txn: StableTxn,
    ) -> Outcome {
        let heap = self.memory.data(&self.store);
        if self.shadow.len() != heap.len() {
            self.shadow.clear();
            self.shadow.extend_from_slice(heap);
        }
        let globals_before: Vec<Val> = self
            .globals
            .iter()
            .map(|g| g.get(&mut self.store))
            .collect();
        let limit = state.instruction_limit;

        std::mem::swap(&mut self.store.data_mut().stable, stable);
        if txn == StableTxn::Own {
            self.store.data_mut().stable.begin();
        }
        self.store.data_mut().pages = ExecPages::new(PageLimits::for_context(state.context));
        self.store.data_mut().heap_limit.grow_surcharge = 0;
        self.store.data_mut().exec = Some(state);
        self.store
            .set_fuel(limit)
            .expect("fuel is enabled on the engine");

        let run = self.call(entry);

        let data = self.store.data_mut();
        let owed = std::mem::take(&mut data.heap_limit.grow_surcharge);
        let instructions = limit
            .saturating_sub(self.store.get_fuel().unwrap_or(0))
            .saturating_add(owed);
        let data = self.store.data_mut();
        let state = data
            .exec
            .take()
            .expect("exec state is present until taken here");
        let logs = std::mem::take(&mut data.logs);
        let result = run.map(|()| state);
        let keep = persist && result.is_ok();
        let mut heap_delta = 0;
        if keep {
            heap_delta = absorb_dirty_pages(&mut self.shadow, self.memory.data(&self.store));
        }
        if txn == StableTxn::Own {
            if keep {
                heap_delta += self.store.data_mut().stable.commit();
            } else {
                self.store.data_mut().stable.rollback();
            }
        }
        std::mem::swap(&mut self.store.data_mut().stable, stable);
        if !keep {
            self.restore(&globals_before);
        }
        Outcome {
            result,
            instructions,
            logs,
            heap_delta,
        }
    }

    fn call(&mut self, entry: &Entry) -> Result<(), ExecTrap> {
        let outcome = match entry {
            Entry::Export(name) => {
                let func = self
                    .instance
                    .get_typed_func::<(), ()>(&mut self.store, name)
                    .map_err(|e| ExecTrap::Wasm(format!("export {name} is not callable: {e}")))?;
                func.call(&mut self.store, ())
            }
            Entry::Callback { fun, env } => {
                let table = self
                    .instance
                    .get_table(&mut self.store, "table")
                    .ok_or_else(|| ExecTrap::Wasm("the module has no function table".into()))?;
                let func = match table.get(&mut self.store, *fun) {
                    Some(Ref::Func(Some(f))) => f,
                    Some(_) => {
                        return Err(ExecTrap::Wasm(format!(
                            "callback table entry {fun} is null"
                        )));
                    }
                    None => {
                        return Err(ExecTrap::Wasm(format!(
                            "callback table index {fun} is out of bounds"
                        )));
                    }
                };
                let wrong_type = |_| ExecTrap::Wasm(format!("callback {fun} has the wrong type"));
                if self.compiled.prepared.memory64 {
                    let typed = func.typed::<u64, ()>(&self.store).map_err(wrong_type)?;
                    typed.call(&mut self.store, *env)
                } else {
                    // A wasm32 module only ever passes 32-bit environments.
                    let typed = func.typed::<u32, ()>(&self.store).map_err(wrong_type)?;
                    typed.call(&mut self.store, *env as u32)
                }
            }
        };
        outcome.map_err(classify)
    }

    /// Puts the heap back to the shadow and the globals to `globals`. Memory cannot shrink,
    /// so a grown memory means a fresh instance with the shadow copied in whole; otherwise
    /// only the pages that differ are copied back.
    fn restore(&mut self, globals: &[Val]) {
        if self.memory.data_size(&self.store) != self.shadow.len() {
            let stable = std::mem::take(&mut self.store.data_mut().stable);
            let shadow = std::mem::take(&mut self.shadow);
            let fresh = Self::instantiate(self.compiled.clone())
                .expect("a module that instantiated once instantiates again");
            *self = fresh;
            self.store.data_mut().stable = stable;
            let current_pages = self.memory.size(&self.store);
            let wanted_pages = shadow.len() as u64 / 65_536;
            if wanted_pages > current_pages {
                self.memory
                    .grow(&mut self.store, wanted_pages - current_pages)
                    .expect("regrowing to a size reached before succeeds");
            }
            self.memory.data_mut(&mut self.store)[..shadow.len()].copy_from_slice(&shadow);
            self.shadow = shadow;
        } else {
            let page = crate::limits::HEAP_DELTA_PAGE_BYTES;
            let heap = self.memory.data_mut(&mut self.store);
            for (now, before) in heap.chunks_mut(page).zip(self.shadow.chunks(page)) {
                if now != before {
                    now.copy_from_slice(before);
                }
            }
        }
        for (global, value) in self.globals.iter().zip(globals) {
            global
                .set(&mut self.store, *value)
                .expect("restoring a global to its own earlier value succeeds");
        }
    }
}

/// Makes `shadow` equal to `heap` (which is at least as long) and returns the bytes of the
/// 4 KiB pages that differed; pages past the end of `shadow` (grown memory) count when they
/// are not all zero. Copies only the differing pages and the grown tail.
fn absorb_dirty_pages(shadow: &mut Vec<u8>, heap: &[u8]) -> u64 {
    let page = crate::limits::HEAP_DELTA_PAGE_BYTES;
    let common = shadow.len();
    let mut changed = 0;
    for (before, after) in shadow.chunks_mut(page).zip(heap[..common].chunks(page)) {
        if before != after {
            before.copy_from_slice(after);
            changed += 1;
        }
    }
    let grown = heap[common..]
        .chunks(page)
        .filter(|p| p.iter().any(|b| *b != 0))
        .count();
    shadow.extend_from_slice(&heap[common..]);
    ((changed + grown) * page) as u64
}

fn classify(err: wasmtime::Error) -> ExecTrap {
    if let Some(host) = err.downcast_ref::<HostTrap>() {
        return match host {
            HostTrap::OutOfInstructions => ExecTrap::OutOfInstructions,
            other => ExecTrap::Host(other.clone()),
        };
    }
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        if *trap == wasmtime::Trap::OutOfFuel {
            return ExecTrap::OutOfInstructions;
        }
        return ExecTrap::Wasm(trap.to_string());
    }
    ExecTrap::Wasm(format!("{err:#}"))
}
