//! An in-process Internet Computer for tests, demos and benchmarks.
//!
//! `ic-harness` runs real canister `.wasm` modules (built with the real ic-cdk) under
//! wasmtime, with the `ic0` System API implemented on the host: several subnets,
//! rounds, cross-subnet latency, inter-canister calls with reply/reject/cleanup
//! callbacks, bounded-wait timeouts, global timers, atomic executions with rollback,
//! instruction counting with the replica's weights (fuel), and the management canister's lifecycle methods.
//!
//! Its API mirrors PocketIC's names (`create_canister_on_subnet`, `install_canister`,
//! `update_call`, `tick`, `advance_time`...), so scenarios port to a real PocketIC server.
//!
//! ```no_run
//! use ic_harness::{HarnessBuilder, load_canister_wasm};
//! use candid::Principal;
//!
//! let mut ic = HarnessBuilder::new().with_application_subnet().with_application_subnet().build();
//! let subnet = ic.topology().app_subnets[0];
//! let canister = ic.create_canister_on_subnet(None, None, subnet);
//! ic.install_canister(canister, load_canister_wasm("harness_conformance_canister"), candid::encode_args(()).unwrap(), None);
//! let _: (u64,) = ic.update_candid(canister, Principal::anonymous(), "inc_heap", ()).unwrap();
//! ```
//!
//! What is modelled and what is not: see `docs/harness.md`.

pub mod backend;
mod canister;
mod execution;
pub mod fees;
mod harness;
pub mod limits;
pub mod module;
pub mod motoko;
mod runtime;
pub mod stable_memory;
mod stable_pages;
pub mod system_api;
mod types;
pub mod weights;

pub use backend::IcBackend;
pub use candid::Principal;
pub use canister::{CanisterMetrics, CyclesBurned};
/// The cycles minting canister's candid types (mainnet `cmc.did`), as the harness's CMC speaks them.
pub use cmc_types;
pub use harness::DEFAULT_CANISTER_CYCLES;
pub use harness::{Harness, HarnessBuilder, Topology};
pub use types::{
    CallError, CanisterId, FIRST_APP_CANISTER_INDEX, HarnessError, InstructionLimits, MessageId,
    Reject, RejectCode, SubnetId, canister_id_from_index, subnet_id_from_index,
};

use std::path::PathBuf;

/// Where `scripts/build-wasm.sh` puts canister modules:
/// `$CARGO_TARGET_DIR` (or `<workspace>/target`) + `/wasm32-unknown-unknown/canister/`.
#[must_use]
pub fn canister_wasm_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")),
        PathBuf::from,
    );
    target.join("wasm32-unknown-unknown").join("canister")
}

/// Loads the canister module `<name>.wasm` built by `scripts/build-wasm.sh`.
///
/// # Panics
/// If the file is missing, with the command that builds it.
#[must_use]
pub fn load_canister_wasm(name: &str) -> Vec<u8> {
    let path = canister_wasm_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read canister wasm {}: {e}. Build the canisters first: scripts/build-wasm.sh",
            path.display()
        )
    })
}
