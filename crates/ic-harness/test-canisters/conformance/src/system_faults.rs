//! Endpoints of the `canister_inspect_message` and system-fault conformance tests
//! (`crates/ic-harness/tests/inspect_message.rs` and `tests/system_faults.rs`).
//!
//! `canister_inspect_message` accepts every ingress message except:
//! - methods named `refused_*`: it returns without accepting;
//! - `trapped_in_inspect`: it traps with [`INSPECT_TRAP`];
//! - `burns_in_inspect`: it runs past the 200M-instruction inspect limit.

use std::cell::RefCell;

use candid::Principal;
use ic_cdk::call::Call;
use ic_cdk::{inspect_message, query, update};
use serde_bytes::ByteBuf;

use crate::{CallResult, EMPTY_CANDID_ARGS, bump_heap, perform};

/// Trap message of `canister_inspect_message` for `trapped_in_inspect`.
pub const INSPECT_TRAP: &str = "inspect_message traps on purpose";

thread_local! {
    /// Argument sizes `absorb` received, in execution order.
    static ABSORBED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

#[inspect_message]
fn inspect_message() {
    let method = ic_cdk::api::msg_method_name();
    if method.starts_with("refused_") {
        return;
    }
    match method.as_str() {
        "trapped_in_inspect" => ic_cdk::trap(INSPECT_TRAP),
        "burns_in_inspect" => {
            // Far more than 200M instructions: the inspection must run out of them.
            let _ = crate::burn(1_000_000_000);
        }
        _ => {}
    }
    ic_cdk::api::accept_message();
}

/// Refused by `canister_inspect_message` for ingress; bumps the heap counter when it runs.
#[update]
fn refused_update() -> u64 {
    bump_heap()
}

/// A query whose name inspect_message refuses: ingress queries are never inspected.
#[query]
fn refused_query() -> u64 {
    7
}

/// `canister_inspect_message` traps for this method.
#[update]
fn trapped_in_inspect() -> u64 {
    bump_heap()
}

/// `canister_inspect_message` exceeds its instruction limit for this method.
#[update]
fn burns_in_inspect() -> u64 {
    bump_heap()
}

/// Records the size of `data` and replies with `reply_len` bytes.
#[update]
fn absorb(data: ByteBuf, reply_len: u64) -> ByteBuf {
    ABSORBED.with(|a| a.borrow_mut().push(data.len() as u64));
    ByteBuf::from(vec![0xA5; usize::try_from(reply_len).unwrap_or(0)])
}

/// The sizes of the `data` arguments `absorb` received, in order.
#[query]
fn absorbed() -> Vec<u64> {
    ABSORBED.with(|a| a.borrow().clone())
}

/// What `fan_out` answers per call: the length of the blob `absorb` replied, or
/// (reject code, message) as in `CallResult`.
type SizeResult = Result<u64, (u32, String)>;

/// Burns `burn_iterations` first (so that this canister sits out the rounds its DTS
/// slices take), then calls `target.absorb(blob of arg_len bytes, reply_len)` once per
/// `(arg_len, reply_len)` of `calls`, bounded-wait with `timeout_seconds`, all performed
/// in this execution; returns their results in order.
#[update]
async fn fan_out(
    target: Principal,
    calls: Vec<(u64, u64)>,
    timeout_seconds: u32,
    burn_iterations: u64,
) -> Vec<SizeResult> {
    let _ = crate::burn(burn_iterations);
    let calls = calls.into_iter().map(|(arg_len, reply_len)| {
        let data = ByteBuf::from(vec![0x5A; usize::try_from(arg_len).unwrap_or(0)]);
        perform(
            Call::bounded_wait(target, "absorb")
                .with_args(&(data, reply_len))
                .change_timeout(timeout_seconds),
        )
    });
    let results: Vec<CallResult> = futures::future::join_all(calls).await;
    results
        .into_iter()
        .map(|r| {
            r.map(|bytes| {
                candid::decode_one::<ByteBuf>(&bytes)
                    .unwrap_or_else(|e| ic_cdk::trap(format!("absorb replied no blob: {e}")))
                    .len() as u64
            })
        })
        .collect()
}

/// Makes `count` one-way unbounded-wait calls to `target.method(())` through raw `ic0`
/// and replies at once with how many `ic0.call_perform` accepted and how many it refused.
#[update]
fn perform_many(target: Principal, method: String, count: u32) -> (u32, u32) {
    let mut performed = 0;
    let mut refused = 0;
    for _ in 0..count {
        ic0::call_new_oneway(target.as_slice(), &method);
        ic0::call_data_append(EMPTY_CANDID_ARGS);
        if ic0::call_perform() == 0 {
            performed += 1;
        } else {
            refused += 1;
        }
    }
    (performed, refused)
}
