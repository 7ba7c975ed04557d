//! Conformance canister for `ic-harness`.
//!
//! Built with the real ic-cdk 0.20 for `wasm32-unknown-unknown` by `scripts/build-wasm.sh`.
//! Each endpoint exercises one Internet Computer rule that
//! `crates/ic-harness/tests/conformance.rs` checks; `examples/harness_bench.rs` uses the
//! `inc_heap`, `stable_fill` and `stable_checksum` endpoints for its figures.
//!
//! Candid interface (hand-written; the canister exports no `candid:service`):
//!
//! ```text
//! type CallResult = variant { Ok : blob; Err : record { nat32; text } };
//! type SizeResult = variant { Ok : nat64; Err : record { nat32; text } };
//! service : () -> {
//!   inc_heap : () -> (nat64);
//!   inc_stable : () -> (nat64);
//!   get_heap : () -> (nat64) query;
//!   get_stable : () -> (nat64) query;
//!   lifecycle : () -> (text) query;
//!   call_and_reply : (principal, text, blob) -> (CallResult);
//!   call_with_timeout : (principal, text, blob, nat32) -> (CallResult);
//!   timeout_then_await : (principal, nat32, nat32) -> (CallResult, nat64);
//!   trap_after_await : (principal) -> ();
//!   raw_call_with_cleanup : (principal, text) -> ();
//!   markers : () -> (vec record { text; nat64 }) query;
//!   reject_me : (text) -> ();
//!   set_timer_inc : (nat64) -> ();
//!   query_tries_to_call : (principal) -> (nat64) query;
//!   query_mutates : () -> (nat64) query;
//!   create_and_install : (blob, nat) -> (principal);
//!   burn : (nat64) -> (nat64);
//!   stable_fill : (nat64, nat64, nat64) -> (nat64);
//!   stable_checksum : (nat64, nat64) -> (nat64);
//!   long_await : (principal, nat32) -> (nat64);
//!   refused_update : () -> (nat64);
//!   refused_query : () -> (nat64) query;
//!   trapped_in_inspect : () -> (nat64);
//!   burns_in_inspect : () -> (nat64);
//!   absorb : (blob, nat64) -> (blob);
//!   absorbed : () -> (vec nat64) query;
//!   fan_out : (principal, vec record { nat64; nat64 }, nat32, nat64) -> (vec SizeResult);
//!   perform_many : (principal, text, nat32) -> (nat32, nat32);
//! }
//! ```
//!
//! `canister_inspect_message` accepts every ingress message except for the methods
//! `refused_*`, `trapped_in_inspect` and `burns_in_inspect` (see [`system_faults`]).
//!
//! In `CallResult`, `Err` carries the IC reject code and message. Two failures never reach
//! the IC and use codes of their own: `0` when the liquid cycle balance cannot pay for the
//! call, and `2` when `ic0.call_perform` refused it (it returns SYS_TRANSIENT).
//!
//! Stable memory layout (one `MemoryManager`):
//! - memory 0: `StableCell<u64>`, the stable counter;
//! - memory 1: raw virtual memory for the `stable_fill`/`stable_checksum` benchmark;
//! - memory 2: `StableBTreeMap<String, u64>`, the markers of the raw-callback test.
//!
//! The only `unsafe` is the raw `ic0.call_new` in [`raw_call_with_cleanup`]; `perform_many`
//! makes one-way calls through the safe `ic0::call_new_oneway`.

#![allow(unsafe_code)]

mod system_faults;

use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::time::Duration;

use candid::Principal;
use ic_cdk::call::{Call, CallFailed};
use ic_cdk::{init, post_upgrade, query, update};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterInstallMode, CreateCanisterArgs, InstallCodeArgs,
};
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::{DefaultMemoryImpl, Memory as _, StableBTreeMap, StableCell};
use serde_bytes::ByteBuf;

type Memory = VirtualMemory<DefaultMemoryImpl>;

/// What `call_and_reply` and `call_with_timeout` return: the reply bytes, or (code, message).
type CallResult = Result<Vec<u8>, (u32, String)>;

const COUNTER_MEMORY: MemoryId = MemoryId::new(0);
const BENCH_MEMORY: MemoryId = MemoryId::new(1);
const MARKER_MEMORY: MemoryId = MemoryId::new(2);

const MIB: u64 = 1024 * 1024;
const WASM_PAGE: u64 = 64 * 1024;
/// Candid encoding of `()`: the argument sent by calls that take no arguments.
const EMPTY_CANDID_ARGS: &[u8] = b"DIDL\x00\x00";

/// Trap message of the raw reply callback (the tests look for it in the reject message).
pub const RAW_REPLY_TRAP: &str = "raw reply callback traps on purpose";
/// Trap message of `trap_after_await`.
pub const TRAP_AFTER_AWAIT: &str = "trap_after_await traps after its await on purpose";

thread_local! {
    static HEAP_COUNTER: Cell<u64> = const { Cell::new(0) };
    /// Which lifecycle hook ran last in this heap ("none", "init" or "post_upgrade").
    static LAST_HOOK: Cell<&'static str> = const { Cell::new("none") };

    static MEMORY_MANAGER: MemoryManager<DefaultMemoryImpl> =
        MemoryManager::init(DefaultMemoryImpl::default());

    static STABLE_COUNTER: RefCell<StableCell<u64, Memory>> = RefCell::new(StableCell::init(
        MEMORY_MANAGER.with(|m| m.get(COUNTER_MEMORY)),
        0,
    ));

    static BENCH: Memory = MEMORY_MANAGER.with(|m| m.get(BENCH_MEMORY));

    static MARKERS: RefCell<StableBTreeMap<String, u64, Memory>> = RefCell::new(
        StableBTreeMap::init(MEMORY_MANAGER.with(|m| m.get(MARKER_MEMORY))),
    );
}

// ---------------------------------------------------------------------------------------
// Counters and lifecycle
// ---------------------------------------------------------------------------------------

fn bump_heap() -> u64 {
    HEAP_COUNTER.with(|c| {
        c.set(c.get() + 1);
        c.get()
    })
}

fn bump_stable() -> u64 {
    STABLE_COUNTER.with(|c| {
        let mut cell = c.borrow_mut();
        let next = cell.get() + 1;
        cell.set(next);
        next
    })
}

fn stable_counter() -> u64 {
    STABLE_COUNTER.with(|c| *c.borrow().get())
}

/// Touches every stable structure so the layout exists from the first execution.
fn touch_stable_structures() {
    let _ = stable_counter();
    let _ = MARKERS.with(|m| m.borrow().len());
    let _ = BENCH.with(|b| b.size());
}

#[init]
fn init() {
    touch_stable_structures();
    LAST_HOOK.with(|h| h.set("init"));
}

/// Re-arms nothing: the heap (counter, timers) starts empty, stable memory is kept.
#[post_upgrade]
fn post_upgrade() {
    touch_stable_structures();
    LAST_HOOK.with(|h| h.set("post_upgrade"));
}

#[update]
fn inc_heap() -> u64 {
    bump_heap()
}

#[update]
fn inc_stable() -> u64 {
    bump_stable()
}

#[query]
fn get_heap() -> u64 {
    HEAP_COUNTER.with(Cell::get)
}

#[query]
fn get_stable() -> u64 {
    stable_counter()
}

#[query]
fn lifecycle() -> String {
    LAST_HOOK.with(Cell::get).to_string()
}

// ---------------------------------------------------------------------------------------
// Inter-canister calls through ic-cdk
// ---------------------------------------------------------------------------------------

async fn perform(call: Call<'_, '_>) -> CallResult {
    match call.await {
        Ok(response) => Ok(response.into_bytes()),
        Err(CallFailed::CallRejected(rejected)) => Err((
            rejected.raw_reject_code(),
            rejected.reject_message().to_string(),
        )),
        Err(CallFailed::CallPerformFailed(e)) => Err((2, e.to_string())),
        Err(CallFailed::InsufficientLiquidCycleBalance(e)) => Err((0, e.to_string())),
    }
}

/// Bounded-wait call (ic-cdk's default 300 s timeout); replies after the await.
#[update]
async fn call_and_reply(target: Principal, method: String, arg: Vec<u8>) -> CallResult {
    perform(Call::bounded_wait(target, &method).take_raw_args(arg)).await
}

/// Bounded-wait call with a caller-chosen timeout.
#[update]
async fn call_with_timeout(
    target: Principal,
    method: String,
    arg: Vec<u8>,
    timeout_seconds: u32,
) -> CallResult {
    perform(
        Call::bounded_wait(target, &method)
            .take_raw_args(arg)
            .change_timeout(timeout_seconds),
    )
    .await
}

/// A bounded-wait call to `target.inc_heap` with `timeout_seconds`, then `hops` more calls
/// (default timeout) so that this call context is still open when the first call's late
/// reply would arrive. Returns the first call's result and the last hop's reply (b's count).
#[update]
async fn timeout_then_await(
    target: Principal,
    timeout_seconds: u32,
    hops: u32,
) -> (CallResult, u64) {
    let first =
        perform(Call::bounded_wait(target, "inc_heap").change_timeout(timeout_seconds)).await;
    let mut last = 0;
    for hop in 0..hops {
        last = match Call::bounded_wait(target, "inc_heap").await {
            Ok(reply) => reply
                .candid::<u64>()
                .unwrap_or_else(|e| ic_cdk::trap(format!("hop {hop}: {e}"))),
            Err(e) => ic_cdk::trap(format!("timeout_then_await: hop {hop} failed: {e}")),
        };
    }
    (first, last)
}

/// Increments the stable counter, awaits `target.inc_heap`, increments it again and traps.
/// On a correct IC only the first increment survives and the caller gets code 5.
#[update]
async fn trap_after_await(target: Principal) {
    bump_stable();
    let outcome = Call::bounded_wait(target, "inc_heap").await;
    bump_stable();
    ic_cdk::trap(format!(
        "{TRAP_AFTER_AWAIT} (callee answered: {})",
        if outcome.is_ok() { "reply" } else { "reject" }
    ));
}

/// Awaits `hops` sequential calls to `target.inc_heap`, then increments the stable
/// counter and returns it.
#[update]
async fn long_await(target: Principal, hops: u32) -> u64 {
    for hop in 0..hops {
        if let Err(e) = Call::bounded_wait(target, "inc_heap").await {
            ic_cdk::trap(format!("long_await: hop {hop} failed: {e}"));
        }
    }
    bump_stable()
}

/// Answers with `msg_reject(message)`: the caller sees CANISTER_REJECT (4).
#[update(manual_reply = true)]
fn reject_me(message: String) {
    ic_cdk::api::msg_reject(message);
}

// ---------------------------------------------------------------------------------------
// Raw ic0 call with reply, reject and cleanup callbacks
// ---------------------------------------------------------------------------------------

fn add_marker(name: &str, delta: u64) {
    MARKERS.with(|m| {
        let mut map = m.borrow_mut();
        let old = map.get(&name.to_string()).unwrap_or(0);
        map.insert(name.to_string(), old + delta);
    });
}

fn marker(name: &str) -> u64 {
    MARKERS.with(|m| m.borrow().get(&name.to_string()).unwrap_or(0))
}

/// Reply callback: writes the "reply" marker (stable) and bumps the heap counter, then traps.
/// Both writes must be rolled back.
extern "C" fn raw_reply_callback(_env: usize) {
    add_marker("reply", 1);
    bump_heap();
    ic_cdk::trap(RAW_REPLY_TRAP);
}

/// Reject callback: passes the reject on to our caller as a CANISTER_REJECT.
extern "C" fn raw_reject_callback(_env: usize) {
    let code = ic_cdk::api::msg_reject_code();
    let message = ic_cdk::api::msg_reject_msg();
    ic_cdk::api::msg_reject(format!("raw call rejected with code {code}: {message}"));
}

/// Cleanup callback: runs after a trapping reply/reject callback, on the rolled-back state.
/// Records that it ran and what it saw of the callback's writes (both must read 0).
extern "C" fn raw_cleanup_callback(_env: usize) {
    add_marker("cleanup", 1);
    add_marker("cleanup_saw_reply", marker("reply"));
    add_marker("cleanup_saw_heap", HEAP_COUNTER.with(Cell::get));
}

/// Calls `target.method(())` through raw `ic0` with our own callbacks. Never replies itself:
/// the answer comes from a callback (or, as the reply callback traps, from the system).
#[update(manual_reply = true)]
fn raw_call_with_cleanup(target: Principal, method: String) {
    // SAFETY: the callbacks are `extern "C" fn(usize)` entry points that ignore their env
    // (0) and own no memory, so calling either of them (or the cleanup) at any time is sound.
    unsafe {
        ic0::call_new(
            target.as_slice(),
            &method,
            raw_reply_callback,
            0,
            raw_reject_callback,
            0,
        );
        ic0::call_on_cleanup(raw_cleanup_callback, 0);
    }
    ic0::call_data_append(EMPTY_CANDID_ARGS);
    let code = ic0::call_perform();
    if code != 0 {
        ic_cdk::api::msg_reject(format!("ic0.call_perform returned {code}"));
    }
}

/// The raw-callback markers: "reply", "cleanup", "cleanup_saw_reply", "cleanup_saw_heap".
#[query]
fn markers() -> Vec<(String, u64)> {
    ["reply", "cleanup", "cleanup_saw_reply", "cleanup_saw_heap"]
        .into_iter()
        .map(|name| (name.to_string(), marker(name)))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Timers
// ---------------------------------------------------------------------------------------

/// One-shot timer that increments the stable counter after `delay_seconds`.
#[update]
fn set_timer_inc(delay_seconds: u64) {
    ic_cdk_timers::set_timer(Duration::from_secs(delay_seconds), async {
        bump_stable();
    });
}

// ---------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------

/// A query that tries to make a call. On a correct IC `ic0.call_new` traps (code 5).
/// If the call were allowed, this would answer 1 (reply) or 0 (any failure), never trap.
#[query]
async fn query_tries_to_call(target: Principal) -> u64 {
    match Call::bounded_wait(target, "inc_heap").await {
        Ok(_) => 1,
        Err(_) => 0,
    }
}

/// A query that mutates the heap counter and returns it. The change must not persist.
#[query]
fn query_mutates() -> u64 {
    bump_heap()
}

// ---------------------------------------------------------------------------------------
// Management canister
// ---------------------------------------------------------------------------------------

/// Creates a canister (attaching `cycles`) and installs `wasm` in it with an empty argument.
#[update]
async fn create_and_install(wasm: ByteBuf, cycles: u128) -> Principal {
    let management = Principal::management_canister();
    let created = Call::unbounded_wait(management, "create_canister")
        .with_arg(CreateCanisterArgs {
            settings: None,
            sender_canister_version: None,
        })
        .with_cycles(cycles)
        .await
        .unwrap_or_else(|e| ic_cdk::trap(format!("create_canister failed: {e}")));
    let CanisterIdRecord { canister_id } = created
        .candid()
        .unwrap_or_else(|e| ic_cdk::trap(format!("create_canister reply: {e}")));

    Call::unbounded_wait(management, "install_code")
        .with_arg(InstallCodeArgs {
            mode: CanisterInstallMode::Install,
            canister_id,
            wasm_module: wasm.into_vec(),
            arg: EMPTY_CANDID_ARGS.to_vec(),
            sender_canister_version: None,
        })
        .await
        .unwrap_or_else(|e| ic_cdk::trap(format!("install_code failed: {e}")));
    canister_id
}

// ---------------------------------------------------------------------------------------
// Instructions and stable memory throughput
// ---------------------------------------------------------------------------------------

/// `iterations` rounds of a multiply-rotate hash; returns the hash.
#[update]
fn burn(iterations: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for i in 0..iterations {
        hash = (hash ^ black_box(i))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(5);
    }
    hash
}

/// The benchmark's pseudo-random word at word index `index` (splitmix64 of the position).
fn fill_word(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Writes `mib` MiB of pseudo-random words at `offset_mib` MiB into bench memory (memory 1),
/// growing it as needed, in 1 MiB pieces. Returns the memory size in wasm pages.
#[update]
fn stable_fill(offset_mib: u64, mib: u64, seed: u64) -> u64 {
    BENCH.with(|memory| {
        let needed_pages = (offset_mib + mib) * (MIB / WASM_PAGE);
        let current = memory.size();
        if current < needed_pages && memory.grow(needed_pages - current) < 0 {
            ic_cdk::trap(format!("stable_fill: cannot grow to {needed_pages} pages"));
        }
        let mut piece = vec![0u8; MIB as usize];
        for m in offset_mib..offset_mib + mib {
            let first_word = m * MIB / 8;
            for (j, chunk) in piece.chunks_exact_mut(8).enumerate() {
                chunk.copy_from_slice(&fill_word(seed, first_word + j as u64).to_le_bytes());
            }
            memory.write(m * MIB, &piece);
        }
        memory.size()
    })
}

/// Reads `mib` MiB at `offset_mib` MiB back from bench memory and returns an order-sensitive
/// checksum: `acc = (acc ^ word) * 0x100000001b3` over little-endian u64 words, from
/// `acc = 0xcbf29ce484222325`.
#[update]
fn stable_checksum(offset_mib: u64, mib: u64) -> u64 {
    BENCH.with(|memory| {
        let end = (offset_mib + mib) * MIB;
        if end > memory.size() * WASM_PAGE {
            ic_cdk::trap(format!(
                "stable_checksum: {end} bytes requested, bench memory has {}",
                memory.size() * WASM_PAGE
            ));
        }
        let mut piece = vec![0u8; MIB as usize];
        let mut acc: u64 = 0xcbf2_9ce4_8422_2325;
        for m in offset_mib..offset_mib + mib {
            memory.read(m * MIB, &mut piece);
            for chunk in piece.chunks_exact(8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                acc = (acc ^ u64::from_le_bytes(word)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        acc
    })
}
