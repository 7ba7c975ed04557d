//! Shared setup for canvault's end-to-end scenarios (`tests/*.rs`): real canister wasm,
//! built by `scripts/build-wasm.sh`, on the in-process IC of `ic-harness`.
//!
//! Kept small and general on purpose: setup here, a typed vault client in [`vault`];
//! helpers for a single scenario live in its file.

pub mod app;
pub mod bench_results;
pub mod chaos;
pub mod heap_app;
pub mod matrix;
pub mod throughput;
pub mod vault;
pub mod whole_canister;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use candid::Principal;
use ic_harness::{CanisterId, Harness, HarnessBuilder, load_canister_wasm};

/// The wasm module of a canister crate (name with underscores), read once per test
/// binary.
///
/// # Panics
/// If the module is not built (run `scripts/build-wasm.sh`).
pub fn wasm(crate_name: &str) -> Vec<u8> {
    static CACHE: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cache
        .entry(crate_name.to_string())
        .or_insert_with(|| load_canister_wasm(crate_name))
        .clone()
}

/// A harness with `subnets` application subnets and default settings.
pub fn harness(subnets: usize) -> Harness {
    (0..subnets)
        .fold(HarnessBuilder::new(), |b, _| b.with_application_subnet())
        .build()
}

/// A stable, distinct user principal per name.
pub fn principal(name: &str) -> Principal {
    Principal::self_authenticating(name.as_bytes())
}

/// Creates a canister on the `subnet`-th application subnet, controlled by
/// `controller`, and installs `crate_name`'s module with the candid-encoded `arg`.
pub fn install(
    ic: &mut Harness,
    subnet: usize,
    crate_name: &str,
    arg: Vec<u8>,
    controller: Principal,
) -> CanisterId {
    let subnet_id = ic.topology().app_subnets[subnet];
    let id = ic.create_canister_on_subnet(Some(controller), None, subnet_id);
    ic.install_canister(id, wasm(crate_name), arg, Some(controller));
    id
}
