//! `wallet_call128` of the dfx cycles wallet, the one method `canvault vault create`
//! needs: forwards a call with cycles attached and answers with the callee's raw reply.
//! Only the wallet's controllers may use it, as in the real wallet.
//!
//! ```text
//! wallet_call128 : (record { canister : principal; method_name : text; args : blob; cycles : nat })
//!     -> (variant { Ok : record { return : blob }; Err : text });
//! ```

use candid::{CandidType, Nat, Principal};
use ic_cdk::call::{Call, CallFailed};
use serde::Deserialize;
use serde_bytes::ByteBuf;

/// The call to forward.
#[derive(CandidType, Deserialize)]
struct CallCanisterArgs128 {
    canister: Principal,
    method_name: String,
    args: ByteBuf,
    cycles: Nat,
}

/// The callee's reply.
#[derive(CandidType, Deserialize)]
struct CallResult {
    #[serde(rename = "return")]
    reply: ByteBuf,
}

/// Forwards `canister.method_name(args)` with `cycles` attached (controllers only).
#[ic_cdk::update]
async fn wallet_call128(req: CallCanisterArgs128) -> Result<CallResult, String> {
    if !ic_cdk::api::is_controller(&ic_cdk::api::msg_caller()) {
        return Err("Only a controller of the wallet may call it".into());
    }
    let cycles = u128::try_from(req.cycles.0).map_err(|_| "cycles out of range".to_string())?;
    let call = Call::unbounded_wait(req.canister, &req.method_name)
        .take_raw_args(req.args.into_vec())
        .with_cycles(cycles);
    match call.await {
        Ok(response) => Ok(CallResult {
            reply: ByteBuf::from(response.into_bytes()),
        }),
        Err(CallFailed::CallRejected(r)) => Err(format!(
            "An error happened during the call: {}: {}",
            r.raw_reject_code(),
            r.reject_message()
        )),
        Err(e) => Err(format!("An error happened during the call: {e}")),
    }
}
