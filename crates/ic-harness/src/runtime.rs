//! The process-wide wasmtime engines (replica instruction weights, see `weights.rs`) and the
//! compiled-module cache.
//!
//! Invariant: a module is prepared and compiled once per process per module hash, however
//! many harness instances or canisters install it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use wasmtime::{Config, Engine, ExternType, Linker, Module};

use crate::module::{self, ModuleError, PreparedModule};
use crate::system_api::{self, CanisterState, HostTrap};
use crate::weights;

/// The System API functions the spec offers only when `I = i32` (64-bit cycle amounts and
/// the deprecated 32-bit stable memory): a memory64 module importing one is refused.
const WASM32_ONLY: [&str; 9] = [
    "msg_cycles_available",
    "msg_cycles_refunded",
    "msg_cycles_accept",
    "canister_cycle_balance",
    "call_cycles_add",
    "stable_size",
    "stable_grow",
    "stable_write",
    "stable_read",
];

/// A module ready to instantiate in any store of the shared engine.
#[derive(Clone)]
pub(crate) struct CompiledModule {
    pub prepared: Arc<PreparedModule>,
    pub module: Module,
    pub linker: Arc<Linker<CanisterState>>,
}

/// Two engines, because the replica's operator weights differ with the width of the main
/// memory (loads and stores cost 2 under memory64) and wasmtime's fuel table is per engine.
/// A module's store is created on the engine that compiled it (`Module::engine`).
struct Runtime {
    /// wasm32 weights, with `ic0` taking 32-bit addresses (the spec's `I = i32`).
    linker32: Linker<CanisterState>,
    /// memory64 weights, with `ic0` taking 64-bit addresses (`I = i64`).
    linker64: Linker<CanisterState>,
    cache: Mutex<HashMap<[u8; 32], CompiledModule>>,
}

fn new_engine(memory64: bool) -> Engine {
    let mut config = Config::new();
    config.consume_fuel(true);
    config.operator_cost(weights::operator_cost(memory64));
    config.cranelift_nan_canonicalization(true);
    config.wasm_memory64(true);
    Engine::new(&config).expect("wasmtime engine configuration is valid")
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let mut linker32 = Linker::new(&new_engine(false));
        system_api::register::<u32>(&mut linker32).expect("ic0 imports register once");
        let mut linker64 = Linker::new(&new_engine(true));
        system_api::register::<u64>(&mut linker64).expect("ic0 imports register once");
        Runtime {
            linker32,
            linker64,
            cache: Mutex::new(HashMap::new()),
        }
    })
}

/// Prepares and compiles `bytes` (raw or gzipped wasm), or returns the cached result.
pub(crate) fn compile(bytes: &[u8]) -> Result<CompiledModule, ModuleError> {
    use sha2::Digest;
    let rt = runtime();
    let hash: [u8; 32] = sha2::Sha256::digest(bytes).into();
    if let Some(hit) = rt.cache.lock().expect("module cache lock").get(&hash) {
        return Ok(hit.clone());
    }
    let prepared = module::prepare(bytes)?;
    let mut linker = if prepared.memory64 {
        rt.linker64.clone()
    } else {
        rt.linker32.clone()
    };
    let engine = linker.engine().clone();
    let compiled_module = Module::new(&engine, &prepared.wasm)
        .map_err(|e| ModuleError::Invalid(format!("wasmtime rejected the module: {e}")))?;
    let mut probe = wasmtime::Store::new(&engine, CanisterState::default());
    for import in compiled_module.imports() {
        let name = import.name().to_string();
        let ExternType::Func(ty) = import.ty() else {
            return Err(ModuleError::Invalid(format!(
                "import ic0.{name} is not a function"
            )));
        };
        if prepared.memory64 && WASM32_ONLY.contains(&name.as_str()) {
            return Err(ModuleError::Invalid(format!(
                "Module imports function \"{name}\" from \"ic0\" that is not exported by the runtime (it exists only for 32-bit memories)"
            )));
        }
        if let Some(wasmtime::Extern::Func(defined)) = linker.get_by_import(&mut probe, &import) {
            // The replica's validation refuses a known System API function imported with
            // another signature (e.g. 32-bit addresses in a memory64 module).
            let expected = defined.ty(&probe);
            if !wasmtime::FuncType::eq(&expected, &ty) {
                let width = if prepared.memory64 { "64" } else { "32" };
                return Err(ModuleError::Invalid(format!(
                    "Module imports function \"{name}\" from \"ic0\" that has an incorrect signature for a {width}-bit memory: expected {expected}, got {ty}"
                )));
            }
            continue;
        }
        let message = format!("ic0.{name} is not supported by ic-harness");
        linker
            .func_new("ic0", &name, ty, move |_, _, _| {
                Err(wasmtime::Error::new(HostTrap::ContractViolation(
                    message.clone(),
                )))
            })
            .map_err(|e| ModuleError::Invalid(e.to_string()))?;
    }
    let compiled = CompiledModule {
        prepared: Arc::new(prepared),
        module: compiled_module,
        linker: Arc::new(linker),
    };
    rt.cache
        .lock()
        .expect("module cache lock")
        .insert(hash, compiled.clone());
    Ok(compiled)
}
