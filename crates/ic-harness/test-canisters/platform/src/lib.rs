//! Platform canister for `ic-harness`: endpoints that drive the harness's platform
//! features from inside real ic-cdk 0.20 wasm, checked by `crates/ic-harness/tests/platform.rs`.
//!
//! Candid interface (hand-written):
//!
//! ```text
//! type CallResult = variant { Ok : blob; Err : record { nat32; text } };
//! service : () -> {
//!   inc_heap : () -> (nat64);
//!   get_heap : () -> (nat64) query;
//!   fill_stable : (nat64, nat64) -> (nat64);          // (bytes, seed) -> stable bytes
//!   stable_digest : () -> (nat64) query;              // FNV-1a of all stable memory
//!   echo : (blob) -> (blob);
//!   costs : (nat64, nat64) -> (nat, nat) query;        // cost_call, cost_create_canister
//!   accept_all : () -> (nat);                          // accepts the attached cycles
//!   call : (principal, text, blob, nat, bool) -> (CallResult, nat);   // bounded?; -> refunded
//!   raw_calls : (principal, text, nat32, nat) -> (vec nat32);         // call_perform codes
//!   cmc_create : (CreateCanisterArg, nat) -> (CreateCanisterResult, nat);
//!   cmc_default_subnets : () -> (vec principal);
//!   copy_snapshot : (principal, blob, principal) -> (blob, nat32);  // -> new id, reads made
//! }
//! ```
//!
//! In `CallResult`, `Err` carries the IC reject code and message; `0` means the liquid
//! balance could not pay for the call and `2` that `ic0.call_perform` refused it.
//! The only `unsafe` is the raw `ic0.call_new` in [`raw_calls`].

#![allow(unsafe_code)]

use std::cell::Cell;

use candid::{Nat, Principal};
use cmc_types::{CMC_PRINCIPAL, CreateCanisterArg, CreateCanisterResult};
use ic_cdk::call::{Call, CallFailed};
use ic_cdk::{query, update};
use ic_management_canister_types::{
    ReadCanisterSnapshotDataArgs, ReadCanisterSnapshotDataResult, ReadCanisterSnapshotMetadataArgs,
    ReadCanisterSnapshotMetadataResult, SnapshotDataKind, SnapshotDataOffset,
    UploadCanisterSnapshotDataArgs, UploadCanisterSnapshotMetadataArgs,
    UploadCanisterSnapshotMetadataResult,
};
use serde_bytes::ByteBuf;

/// What `call` returns: the reply bytes, or (code, message).
type CallResult = Result<ByteBuf, (u32, String)>;

/// Most bytes one `read_canister_snapshot_data` may return.
const SLICE: u64 = 2_000_000;
const WASM_PAGE: u64 = 65_536;

thread_local! {
    static HEAP_COUNTER: Cell<u64> = const { Cell::new(0) };
}

#[update]
fn inc_heap() -> u64 {
    HEAP_COUNTER.with(|c| {
        c.set(c.get() + 1);
        c.get()
    })
}

#[query]
fn get_heap() -> u64 {
    HEAP_COUNTER.with(Cell::get)
}

/// Grows raw stable memory to hold `bytes` and fills it with pseudo-random bytes from `seed`.
#[update]
fn fill_stable(bytes: u64, seed: u64) -> u64 {
    let pages = bytes.div_ceil(WASM_PAGE);
    let have = ic_cdk::stable::stable_size();
    if have < pages {
        ic_cdk::stable::stable_grow(pages - have).expect("stable memory grows");
    }
    let mut state = seed;
    let mut buf = vec![0u8; bytes as usize];
    for chunk in buf.chunks_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let word = (z ^ (z >> 31)).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    ic_cdk::stable::stable_write(0, &buf);
    ic_cdk::stable::stable_size() * WASM_PAGE
}

/// FNV-1a (64-bit) of the whole stable memory.
#[query]
fn stable_digest() -> u64 {
    let size = ic_cdk::stable::stable_size() * WASM_PAGE;
    let mut buf = vec![0u8; size as usize];
    ic_cdk::stable::stable_read(0, &mut buf);
    buf.iter().fold(0xcbf2_9ce4_8422_2325u64, |acc, b| {
        (acc ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[update]
fn echo(data: ByteBuf) -> ByteBuf {
    data
}

/// Instructions spent copying a `bytes`-long heap buffer (one `memory.copy` in wasm).
#[update]
fn copy_cost(bytes: u64) -> u64 {
    let source = std::hint::black_box(vec![7u8; usize::try_from(bytes).expect("fits")]);
    let mut target = std::hint::black_box(vec![0u8; source.len()]);
    let before = ic_cdk::api::instruction_counter();
    target.copy_from_slice(&source);
    let spent = ic_cdk::api::instruction_counter() - before;
    std::hint::black_box(target);
    spent
}

/// `ic0.cost_call(name_len, payload_len)` and `ic0.cost_create_canister()`.
#[query]
fn costs(name_len: u64, payload_len: u64) -> (Nat, Nat) {
    (
        Nat::from(ic_cdk::api::cost_call(name_len, payload_len)),
        Nat::from(ic_cdk::api::cost_create_canister()),
    )
}

/// The balance and the liquid balance as this update execution sees them (after the
/// replica's prepayment for the execution was withdrawn).
#[update]
fn balances() -> (Nat, Nat) {
    (
        Nat::from(ic_cdk::api::canister_cycle_balance()),
        Nat::from(ic_cdk::api::canister_liquid_cycle_balance()),
    )
}

/// Accepts every cycle attached to the call and returns how many.
#[update]
fn accept_all() -> Nat {
    let available = ic_cdk::api::msg_cycles_available();
    Nat::from(ic_cdk::api::msg_cycles_accept(available))
}

/// Calls `target.method(arg)` with `cycles` attached, bounded-wait (300 s) or unbounded.
/// Returns the outcome and the cycles refunded.
#[update]
async fn call(
    target: Principal,
    method: String,
    arg: ByteBuf,
    cycles: Nat,
    bounded: bool,
) -> (CallResult, Nat) {
    let cycles = u128::try_from(cycles.0).expect("cycles fit in u128");
    let call = if bounded {
        Call::bounded_wait(target, &method)
    } else {
        Call::unbounded_wait(target, &method)
    };
    // `msg_cycles_refunded` exists only in a callback: after a reply or a reject.
    let refunded = || Nat::from(ic_cdk::api::msg_cycles_refunded());
    match call.take_raw_args(arg.into_vec()).with_cycles(cycles).await {
        Ok(response) => (Ok(ByteBuf::from(response.into_bytes())), refunded()),
        Err(CallFailed::CallRejected(r)) => (
            Err((r.raw_reject_code(), r.reject_message().to_string())),
            refunded(),
        ),
        Err(CallFailed::CallPerformFailed(e)) => (Err((2, e.to_string())), Nat::from(0u8)),
        Err(CallFailed::InsufficientLiquidCycleBalance(e)) => {
            (Err((0, e.to_string())), Nat::from(0u8))
        }
    }
}

/// Reply and reject callback of [`raw_calls`]: nothing to do.
extern "C" fn ignore_response(_env: usize) {}

/// Performs `count` raw calls to `target.method(())`, each with `cycles` attached, without
/// ic-cdk's liquid-balance pre-check, in one execution; returns each `call_perform` code.
#[update]
fn raw_calls(target: Principal, method: String, count: u32, cycles: Nat) -> Vec<u32> {
    let cycles = u128::try_from(cycles.0).expect("cycles fit in u128");
    (0..count)
        .map(|_| {
            // SAFETY: the callbacks are `extern "C" fn(usize)` that ignore their env and
            // own no memory, so running them at any time is sound.
            unsafe {
                ic0::call_new(
                    target.as_slice(),
                    &method,
                    ignore_response,
                    0,
                    ignore_response,
                    0,
                );
            }
            ic0::call_data_append(b"DIDL\x00\x00");
            if cycles > 0 {
                ic0::call_cycles_add128(cycles);
            }
            ic0::call_perform()
        })
        .collect()
}

/// `create_canister` on the cycles minting canister with `cycles` attached. Returns the
/// CMC's answer and the cycles refunded.
#[update]
async fn cmc_create(arg: CreateCanisterArg, cycles: Nat) -> (CreateCanisterResult, Nat) {
    let cycles = u128::try_from(cycles.0).expect("cycles fit in u128");
    let response = Call::unbounded_wait(CMC_PRINCIPAL, "create_canister")
        .with_arg(arg)
        .with_cycles(cycles)
        .await
        .unwrap_or_else(|e| ic_cdk::trap(format!("CMC create_canister failed: {e}")));
    let result: CreateCanisterResult = response
        .candid()
        .unwrap_or_else(|e| ic_cdk::trap(format!("CMC reply: {e}")));
    (result, Nat::from(ic_cdk::api::msg_cycles_refunded()))
}

/// The CMC's default subnets, asked by an inter-canister call.
#[update]
async fn cmc_default_subnets() -> Vec<Principal> {
    Call::bounded_wait(CMC_PRINCIPAL, "get_default_subnets")
        .await
        .unwrap_or_else(|e| ic_cdk::trap(format!("get_default_subnets failed: {e}")))
        .candid()
        .unwrap_or_else(|e| ic_cdk::trap(format!("get_default_subnets reply: {e}")))
}

async fn management<
    A: candid::CandidType,
    R: candid::CandidType + for<'de> serde::Deserialize<'de>,
>(
    method: &str,
    arg: &A,
) -> R {
    Call::bounded_wait(Principal::management_canister(), method)
        .with_arg(arg)
        .await
        .unwrap_or_else(|e| ic_cdk::trap(format!("{method} failed: {e}")))
        .candid()
        .unwrap_or_else(|e| ic_cdk::trap(format!("{method} reply: {e}")))
}

/// Copies snapshot `snapshot_id` of `source` into a new uploaded snapshot of `target`
/// (possibly on another subnet), reading in 2,000,000-byte pieces. Returns the new
/// snapshot's id and the number of data reads made.
#[update]
async fn copy_snapshot(
    source: Principal,
    snapshot_id: ByteBuf,
    target: Principal,
) -> (ByteBuf, u32) {
    let snapshot_id = snapshot_id.into_vec();
    let meta: ReadCanisterSnapshotMetadataResult = management(
        "read_canister_snapshot_metadata",
        &ReadCanisterSnapshotMetadataArgs {
            canister_id: source,
            snapshot_id: snapshot_id.clone(),
        },
    )
    .await;
    let uploaded: UploadCanisterSnapshotMetadataResult = management(
        "upload_canister_snapshot_metadata",
        &UploadCanisterSnapshotMetadataArgs {
            canister_id: target,
            replace_snapshot: None,
            wasm_module_size: meta.wasm_module_size,
            globals: meta.globals.into_iter().flatten().collect(),
            wasm_memory_size: meta.wasm_memory_size,
            stable_memory_size: meta.stable_memory_size,
            certified_data: meta.certified_data,
            global_timer: meta.global_timer,
            on_low_wasm_memory_hook_status: meta.on_low_wasm_memory_hook_status,
        },
    )
    .await;
    let mut reads = 0u32;
    for blob in 0..3 {
        let size = [
            meta.wasm_module_size,
            meta.wasm_memory_size,
            meta.stable_memory_size,
        ][blob];
        let mut offset = 0;
        while offset < size {
            let len = SLICE.min(size - offset);
            let kind = match blob {
                0 => SnapshotDataKind::WasmModule { offset, size: len },
                1 => SnapshotDataKind::WasmMemory { offset, size: len },
                _ => SnapshotDataKind::StableMemory { offset, size: len },
            };
            let piece: ReadCanisterSnapshotDataResult = management(
                "read_canister_snapshot_data",
                &ReadCanisterSnapshotDataArgs {
                    canister_id: source,
                    snapshot_id: snapshot_id.clone(),
                    kind,
                },
            )
            .await;
            reads += 1;
            let kind = match blob {
                0 => SnapshotDataOffset::WasmModule { offset },
                1 => SnapshotDataOffset::WasmMemory { offset },
                _ => SnapshotDataOffset::StableMemory { offset },
            };
            let () = management(
                "upload_canister_snapshot_data",
                &UploadCanisterSnapshotDataArgs {
                    canister_id: target,
                    snapshot_id: uploaded.snapshot_id.clone(),
                    kind,
                    chunk: piece.chunk,
                },
            )
            .await;
            offset += len;
        }
    }
    (ByteBuf::from(uploaded.snapshot_id), reads)
}
