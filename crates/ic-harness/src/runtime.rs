//! The process-wide wasmtime engine and the compiled-module cache.
//!
//! Invariant: a module is prepared and compiled once per process per module hash, however
//! many harness instances or canisters install it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use wasmtime::{Config, Engine, ExternType, Linker, Module};

use crate::module::{self, ModuleError, PreparedModule};
use crate::system_api::{self, CanisterState, HostTrap};

/// A module ready to instantiate in any store of the shared engine.
#[derive(Clone)]
pub(crate) struct CompiledModule {
    pub prepared: Arc<PreparedModule>,
    pub module: Module,
    pub linker: Arc<Linker<CanisterState>>,
}

struct Runtime {
    engine: Engine,
    base_linker: Linker<CanisterState>,
    cache: Mutex<HashMap<[u8; 32], CompiledModule>>,
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let mut config = Config::new();
        config.consume_fuel(true);
        config.cranelift_nan_canonicalization(true);
        let engine = Engine::new(&config).expect("wasmtime engine configuration is valid");
        let mut base_linker = Linker::new(&engine);
        system_api::register(&mut base_linker).expect("ic0 imports register once");
        Runtime {
            engine,
            base_linker,
            cache: Mutex::new(HashMap::new()),
        }
    })
}

/// The shared engine.
pub(crate) fn engine() -> &'static Engine {
    &runtime().engine
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
    let compiled_module = Module::new(&rt.engine, &prepared.wasm)
        .map_err(|e| ModuleError::Invalid(format!("wasmtime rejected the module: {e}")))?;
    let mut linker = rt.base_linker.clone();
    let mut probe = wasmtime::Store::new(&rt.engine, CanisterState::default());
    for import in compiled_module.imports() {
        let name = import.name().to_string();
        if linker.get_by_import(&mut probe, &import).is_some() {
            continue;
        }
        let ExternType::Func(ty) = import.ty() else {
            return Err(ModuleError::Invalid(format!(
                "import ic0.{name} is not a function"
            )));
        };
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
