//! A minimal wallet for tests: forwards one call with cycles attached and answers with
//! the callee's raw reply (or its reject) and the cycles that came back. Ingress messages
//! cannot carry cycles, so the factory scenarios pay through this canister, as an app
//! canister would.
//!
//! ```text
//! forward : (ForwardRequest) -> (ForwardResponse);
//! ```

use candid::{CandidType, Principal};
use ic_cdk::call::{Call, CallFailed};
use ic_cdk::update;
use serde::Deserialize;
use serde_bytes::ByteBuf;

/// A call to make.
#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct ForwardRequest {
    /// The callee.
    pub target: Principal,
    /// Its method.
    pub method: String,
    /// The candid-encoded argument.
    pub arg: ByteBuf,
    /// Cycles to attach.
    pub cycles: u128,
}

/// A reject, or a call that could not be made (code 0: too few cycles, 2: not sent).
#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct Rejected {
    /// The reject code.
    pub code: u32,
    /// The message.
    pub message: String,
}

/// What came back.
#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct ForwardResponse {
    /// The raw reply, or the reject.
    pub result: Result<ByteBuf, Rejected>,
    /// Cycles refunded.
    pub refunded: u128,
}

/// Calls `target.method(arg)` with `cycles` attached (unbounded wait: the attached
/// cycles can never be lost to a timeout).
#[update]
async fn forward(req: ForwardRequest) -> ForwardResponse {
    let call = Call::unbounded_wait(req.target, &req.method)
        .take_raw_args(req.arg.into_vec())
        .with_cycles(req.cycles);
    let refunded = ic_cdk::api::msg_cycles_refunded;
    match call.await {
        Ok(response) => ForwardResponse {
            result: Ok(ByteBuf::from(response.into_bytes())),
            refunded: refunded(),
        },
        Err(CallFailed::CallRejected(r)) => ForwardResponse {
            result: Err(Rejected {
                code: r.raw_reject_code(),
                message: r.reject_message().to_string(),
            }),
            refunded: refunded(),
        },
        Err(CallFailed::CallPerformFailed(e)) => ForwardResponse {
            result: Err(Rejected {
                code: 2,
                message: e.to_string(),
            }),
            refunded: 0,
        },
        Err(CallFailed::InsufficientLiquidCycleBalance(e)) => ForwardResponse {
            result: Err(Rejected {
                code: 0,
                message: e.to_string(),
            }),
            refunded: 0,
        },
    }
}
