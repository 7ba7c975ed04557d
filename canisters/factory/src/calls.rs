//! The factory's outgoing calls, typed: the cycles minting canister and the management
//! canister. Every call that changes something or carries cycles is unbounded-wait, so
//! its outcome is always known (no SYS_UNKNOWN) and attached cycles are never lost to a
//! timeout; only the read-only `get_default_subnets` is bounded-wait.
//!
//! Each failure becomes a [`CallError`] with the reject code and the cycles that came
//! back, so the driver can record exactly what the factory still holds.

use candid::{CandidType, Principal};
use canvault_factory_api::FactoryError;
use cmc_types::{CMC_PRINCIPAL, CreateCanisterArg, CreateCanisterResult};
use ic_cdk::call::{Call, CallFailed};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterInstallMode, CanisterSettings, CanisterStatusResult, ChunkHash,
    InstallChunkedCodeArgs, UpdateSettingsArgs, UploadChunkArgs,
};
use serde::de::DeserializeOwned;

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// The method.
    pub method: &'static str,
    /// Reject code; 0: not sent (too few cycles); 2: not sent (system) or SYS_TRANSIENT.
    pub code: u32,
    /// The message.
    pub message: String,
    /// Cycles that came back (all of them when the call was not sent).
    pub refunded: u128,
}

impl From<CallError> for FactoryError {
    fn from(e: CallError) -> Self {
        FactoryError::CallFailed {
            method: e.method.to_string(),
            code: e.code,
            message: e.message,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed (reject code {}): {}",
            self.method, self.code, self.message
        )
    }
}

/// Makes `call` to `method` with `cycles` attached and decodes the reply; returns it
/// with the cycles refunded.
async fn perform<R: CandidType + DeserializeOwned>(
    call: Call<'_, '_>,
    method: &'static str,
    cycles: u128,
) -> Result<(R, u128), CallError> {
    let fail = |code, message: String, refunded| CallError {
        method,
        code,
        message,
        refunded,
    };
    match call.with_cycles(cycles).await {
        Ok(response) => {
            let refunded = ic_cdk::api::msg_cycles_refunded();
            canvault_protocol::decode::decode_one::<R>(&response)
                .map(|r| (r, refunded))
                .map_err(|e| fail(5, format!("the reply did not decode: {e}"), refunded))
        }
        Err(CallFailed::CallRejected(r)) => Err(fail(
            r.raw_reject_code(),
            r.reject_message().to_string(),
            ic_cdk::api::msg_cycles_refunded(),
        )),
        Err(CallFailed::CallPerformFailed(e)) => Err(fail(2, e.to_string(), cycles)),
        Err(CallFailed::InsufficientLiquidCycleBalance(e)) => Err(fail(0, e.to_string(), cycles)),
    }
}

/// An unbounded-wait management call without cycles.
async fn management<A: CandidType, R: CandidType + DeserializeOwned>(
    method: &'static str,
    arg: &A,
) -> Result<R, CallError> {
    let call = Call::unbounded_wait(Principal::management_canister(), method).with_arg(arg);
    perform(call, method, 0).await.map(|(r, _)| r)
}

/// The CMC's default subnets.
pub async fn default_subnets() -> Result<Vec<Principal>, CallError> {
    let call = Call::bounded_wait(CMC_PRINCIPAL, "get_default_subnets");
    perform(call, "get_default_subnets", 0)
        .await
        .map(|(r, _)| r)
}

/// `create_canister` on the CMC with `cycles` attached: its answer and the refund.
pub async fn cmc_create(
    arg: CreateCanisterArg,
    cycles: u128,
) -> Result<(CreateCanisterResult, u128), CallError> {
    let call = Call::unbounded_wait(CMC_PRINCIPAL, "create_canister").with_arg(arg);
    perform(call, "create_canister", cycles).await
}

/// Puts `chunk` into the chunk store of `canister`.
pub async fn upload_chunk(canister: Principal, chunk: Vec<u8>) -> Result<ChunkHash, CallError> {
    let arg = UploadChunkArgs {
        canister_id: canister,
        chunk,
    };
    management("upload_chunk", &arg).await
}

/// Installs (or upgrades) `canister` from its own chunk store.
pub async fn install_chunked(
    canister: Principal,
    mode: CanisterInstallMode,
    chunk_hashes: Vec<Vec<u8>>,
    module_hash: Vec<u8>,
    arg: Vec<u8>,
) -> Result<(), CallError> {
    let args = InstallChunkedCodeArgs {
        mode,
        target_canister: canister,
        store_canister: None,
        chunk_hashes_list: chunk_hashes
            .into_iter()
            .map(|hash| ChunkHash { hash })
            .collect(),
        wasm_module_hash: module_hash,
        arg,
        sender_canister_version: Some(ic_cdk::api::canister_version()),
    };
    management("install_chunked_code", &args).await
}

/// Empties the chunk store of `canister`.
pub async fn clear_chunk_store(canister: Principal) -> Result<(), CallError> {
    management(
        "clear_chunk_store",
        &CanisterIdRecord {
            canister_id: canister,
        },
    )
    .await
}

/// Sets the controllers of `canister`.
pub async fn set_controllers(
    canister: Principal,
    controllers: Vec<Principal>,
) -> Result<(), CallError> {
    let args = UpdateSettingsArgs {
        canister_id: canister,
        settings: CanisterSettings {
            controllers: Some(controllers),
            ..CanisterSettings::default()
        },
        sender_canister_version: Some(ic_cdk::api::canister_version()),
    };
    management("update_settings", &args).await
}

/// `canister_status` of `canister` (the factory must control it).
pub async fn canister_status(canister: Principal) -> Result<CanisterStatusResult, CallError> {
    management(
        "canister_status",
        &CanisterIdRecord {
            canister_id: canister,
        },
    )
    .await
}

/// Stops `canister` (answers once it is stopped).
pub async fn stop(canister: Principal) -> Result<(), CallError> {
    management(
        "stop_canister",
        &CanisterIdRecord {
            canister_id: canister,
        },
    )
    .await
}

/// Starts `canister`.
pub async fn start(canister: Principal) -> Result<(), CallError> {
    management(
        "start_canister",
        &CanisterIdRecord {
            canister_id: canister,
        },
    )
    .await
}

/// Deletes the stopped `canister`.
pub async fn delete(canister: Principal) -> Result<(), CallError> {
    management(
        "delete_canister",
        &CanisterIdRecord {
            canister_id: canister,
        },
    )
    .await
}

/// Sends `cycles` to `canister`; returns the cycles refunded.
pub async fn deposit_cycles(canister: Principal, cycles: u128) -> Result<u128, CallError> {
    let call = Call::unbounded_wait(Principal::management_canister(), "deposit_cycles").with_arg(
        CanisterIdRecord {
            canister_id: canister,
        },
    );
    perform::<()>(call, "deposit_cycles", cycles)
        .await
        .map(|((), refunded)| refunded)
}

/// The liquid balance needed to send `cycles` to `canister` (call cost included).
#[must_use]
pub fn deposit_cost(canister: Principal, cycles: u128) -> u128 {
    Call::unbounded_wait(Principal::management_canister(), "deposit_cycles")
        .with_arg(CanisterIdRecord {
            canister_id: canister,
        })
        .with_cycles(cycles)
        .get_cost()
}
