//! Conformance of instruction counting and of the per-execution stable-memory limits, on
//! hand-written modules (no build step).
//!
//! Each measured sequence is read between two `ic0.performance_counter(0)` calls that sit
//! in basic blocks of their own, so the replica's basic-block metering (a block is charged
//! when it starts) and the harness's per-operator fuel give the same difference:
//! `PC_PAIR` (the second read: `performance_counter`'s overhead of 200, the `call` (5), its
//! `i32.const` and a `local.set`) plus the sequence's cost. The expected costs are written
//! out from the replica's tables (dfinity/ic `instruction_to_cost`,
//! `system_api_complexity::overhead`, `DEFAULT_DIRTY_PAGE_OVERHEAD`), not taken from the
//! harness's `weights` module, so that a wrong weight there fails here.

use candid::Principal;
use ic_harness::{CanisterId, Harness, HarnessBuilder, RejectCode};

/// What two back-to-back counter reads differ by: 200 + call 5 + i32.const 1 + local.set 1.
const PC_PAIR: u64 = 207;

/// The sequences measured by `weights`, in reply order, with their replica cost.
const SEQUENCES: &[(&str, &str, u64)] = &[
    ("nothing", "", 0),
    (
        // 2 + 1000 x (local.get 1, i32.const 1, div_u 10, local.set 1; counter 4; br_if 3)
        "1000 x i32.div_u",
        "(local.set $i (i32.const 1000))
         (loop $l
           (local.set $x (i32.div_u (local.get $x) (i32.const 3)))
           (local.set $i (i32.sub (local.get $i) (i32.const 1)))
           (br_if $l (local.get $i)))",
        2 + 1000 * 20,
    ),
    (
        // 2 + 100 x (i32.const 1, call_indirect 10, callee body entry 1; counter 4; br_if 3)
        "100 x call_indirect",
        "(local.set $i (i32.const 100))
         (loop $l
           (call_indirect (type $v) (i32.const 1))
           (local.set $i (i32.sub (local.get $i) (i32.const 1)))
           (br_if $l (local.get $i)))",
        2 + 100 * 19,
    ),
    ("call", "(call $nop)", 5 + 1),
    (
        // 2 + 100 x (global.get 2, i32.const 1, add 1, global.set 2; counter 4; br_if 3)
        "100 x global.get/set",
        "(local.set $i (i32.const 100))
         (loop $l
           (global.set $g (i32.add (global.get $g) (i32.const 1)))
           (local.set $i (i32.sub (local.get $i) (i32.const 1)))
           (br_if $l (local.get $i)))",
        2 + 100 * 13,
    ),
    (
        // 2 + 100 x (local.get, i32.eqz, br_if 2; counter 4; br 2) + the exit test 4
        "100 x br + br_if",
        "(local.set $i (i32.const 100))
         (block $out
           (loop $l
             (br_if $out (i32.eqz (local.get $i)))
             (local.set $i (i32.sub (local.get $i) (i32.const 1)))
             (br $l)))",
        2 + 100 * 10 + 4,
    ),
    (
        "memory.copy 4096 bytes",
        "(memory.copy (i32.const 0x4000) (i32.const 0) (i32.const 4096))",
        3 + 100 + 4096,
    ),
    (
        "memory.fill 1000 bytes",
        "(memory.fill (i32.const 0x6000) (i32.const 7) (i32.const 1000))",
        3 + 100 + 1000,
    ),
    (
        "memory.grow",
        "(drop (memory.grow (i32.const 1)))",
        1 + 300 + 1,
    ),
    ("ic0.time", "(drop (call $time))", 5 + 500 + 1),
    (
        // 100 + logging: 2 x 10 bytes kept + 50 x 10 bytes transmitted (empty log)
        "ic0.debug_print 10 bytes",
        "(call $print (i32.const 0x110) (i32.const 10))",
        2 + 5 + 100 + 20 + 500,
    ),
    (
        // 3 x i64.const, call 5, overhead 20 + 1 per byte, 1,000 per new dirty 4 KiB page
        "stable64_write 3 new pages",
        "(call $swrite (i64.const 0) (i64.const 0x1000) (i64.const 12288))",
        3 + 5 + 20 + 12_288 + 3 * 1_000,
    ),
    (
        "stable64_write same pages again",
        "(call $swrite (i64.const 0) (i64.const 0x1000) (i64.const 12288))",
        3 + 5 + 20 + 12_288,
    ),
    (
        "ic0.call_perform",
        "(drop (call $call_perform))",
        5 + 5_000 + 1,
    ),
    ("i32.load", "(drop (i32.load (i32.const 0)))", 1 + 1 + 1),
];

/// Wraps `seq` between two counter reads in blocks of their own and stores the difference
/// at slot `slot` of the reply buffer.
fn measured(slot: usize, seq: &str, address: &str) -> String {
    let at = 0x8000 + 8 * slot;
    format!(
        "(block (local.set $a (call $pc (i32.const 0))))
         (block {seq})
         (block (local.set $b (call $pc (i32.const 0))))
         ({address}.const {at}) (i64.sub (local.get $b) (local.get $a)) (i64.store)\n"
    )
}

fn weights_module() -> Vec<u8> {
    let body: String = SEQUENCES
        .iter()
        .enumerate()
        .map(|(i, (_, seq, _))| measured(i, seq, "i32"))
        .collect();
    let n = SEQUENCES.len() * 8;
    wat(&format!(
        r#"
(module
  (import "ic0" "performance_counter" (func $pc (param i32) (result i64)))
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "stable64_grow" (func $sgrow (param i64) (result i64)))
  (import "ic0" "stable64_write" (func $swrite (param i64 i64 i64)))
  (import "ic0" "canister_self_size" (func $self_size (result i32)))
  (import "ic0" "canister_self_copy" (func $self_copy (param i32 i32 i32)))
  (import "ic0" "call_new" (func $call_new (param i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "ic0" "call_perform" (func $call_perform (result i32)))
  (import "ic0" "time" (func $time (result i64)))
  (import "ic0" "debug_print" (func $print (param i32 i32)))
  (type $v (func))
  (memory 2)
  (table 2 funcref)
  (elem (i32.const 0) $cb $nop)
  (global $g (mut i32) (i32.const 0))
  (data (i32.const 0x100) "noop")
  (data (i32.const 0x110) "0123456789")
  (func $nop)
  (func $cb (param i32))
  (func (export "canister_update noop") (call $reply))
  (func (export "canister_update weights")
    (local $a i64) (local $b i64) (local $i i32) (local $x i32)
    (local.set $x (i32.const 1000000))
    (if (i64.eqz (call $sgrow (i64.const 0))) (then (drop (call $sgrow (i64.const 1)))))
    (call $self_copy (i32.const 0x200) (i32.const 0) (call $self_size))
    (call $call_new (i32.const 0x200) (call $self_size) (i32.const 0x100) (i32.const 4)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    {body}
    (call $append (i32.const 0x8000) (i32.const {n}))
    (call $reply))
)
"#
    ))
}

/// A memory64 module: loads and stores weigh 2 there.
fn weights64_module() -> Vec<u8> {
    let body = [
        measured(0, "", "i64"),
        measured(1, "(drop (i64.load (i64.const 0)))", "i64"),
        measured(2, "(i32.store8 (i64.const 0) (i32.const 1))", "i64"),
    ]
    .concat();
    wat(&format!(
        r#"
(module
  (import "ic0" "performance_counter" (func $pc (param i32) (result i64)))
  (import "ic0" "msg_reply_data_append" (func $append (param i64 i64)))
  (import "ic0" "msg_reply" (func $reply))
  (memory i64 1)
  (func (export "canister_update weights")
    (local $a i64) (local $b i64)
    {body}
    (call $append (i64.const 0x8000) (i64.const 24))
    (call $reply))
)
"#
    ))
}

/// `fill`: writes the number of 64 KiB chunks given as a little-endian u32 argument to
/// stable memory (zeros, so the harness stores nothing), growing it first.
const FILL_MODULE: &str = r#"
(module
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i32 i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "stable64_size" (func $ssize (result i64)))
  (import "ic0" "stable64_grow" (func $sgrow (param i64) (result i64)))
  (import "ic0" "stable64_write" (func $swrite (param i64 i64 i64)))
  (memory 2)
  (func $fill
    (local $n i64) (local $i i64)
    (call $arg_copy (i32.const 0) (i32.const 0) (i32.const 4))
    (local.set $n (i64.extend_i32_u (i32.load (i32.const 0))))
    (if (i64.lt_u (call $ssize) (local.get $n))
      (then (drop (call $sgrow (i64.sub (local.get $n) (call $ssize))))))
    (block $done
      (loop $l
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (call $swrite (i64.mul (local.get $i) (i64.const 65536)) (i64.const 65536) (i64.const 65536))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $l))))
  (func (export "canister_update fill") (call $fill) (call $reply))
  (func (export "canister_query fill_query") (call $fill) (call $reply))
  (func (export "canister_post_upgrade") (call $fill))
)
"#;

/// 64 KiB chunks in 2 GiB, the message (and accessed) limit.
const CHUNKS_2_GIB: u32 = 32_768;

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid wat")
}

fn setup(wasm: Vec<u8>) -> (Harness, CanisterId, Principal) {
    let mut ic = HarnessBuilder::new().with_application_subnet().build();
    let controller = Principal::self_authenticating(b"weights controller");
    let subnet = ic.topology().app_subnets[0];
    let id = ic.create_canister_on_subnet(Some(controller), None, subnet);
    ic.install_canister(id, wasm, Vec::new(), Some(controller));
    (ic, id, controller)
}

fn deltas(reply: &[u8]) -> Vec<u64> {
    reply
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

#[test]
fn performance_counter_deltas_match_the_replica_weights() {
    let (mut ic, id, controller) = setup(weights_module());
    let reply = ic
        .update_call(id, controller, "weights", Vec::new())
        .unwrap_or_else(|r| panic!("weights: {r}"));
    let got = deltas(&reply);
    let mut wrong = Vec::new();
    for ((name, _, cost), delta) in SEQUENCES.iter().zip(&got) {
        if *delta != PC_PAIR + cost {
            wrong.push(format!("{name}: {delta}, replica {}", PC_PAIR + cost));
        }
    }
    assert!(
        wrong.is_empty(),
        "counts differ from the replica: {wrong:?}"
    );
    // A second execution dirties the same stable pages anew: the per-page charge is per
    // execution.
    let again = deltas(
        &ic.update_call(id, controller, "weights", Vec::new())
            .unwrap_or_else(|r| panic!("weights: {r}")),
    );
    let write = SEQUENCES
        .iter()
        .position(|(name, _, _)| *name == "stable64_write 3 new pages")
        .expect("listed");
    assert_eq!(again[write], got[write]);
}

#[test]
fn memory64_loads_and_stores_weigh_two() {
    let (mut ic, id, controller) = setup(weights64_module());
    let reply = ic
        .update_call(id, controller, "weights", Vec::new())
        .unwrap_or_else(|r| panic!("weights: {r}"));
    // i64.const 1 + i64.load 2 + drop 1; i64.const 1 + i32.const 1 + i32.store8 2.
    assert_eq!(deltas(&reply), vec![PC_PAIR, PC_PAIR + 4, PC_PAIR + 4]);
}

#[test]
fn executed_instructions_include_entry_and_system_api_overheads() {
    // `noop`: function entry 1 + call 5 + msg_reply 500.
    let (mut ic, id, controller) = setup(weights_module());
    let before = ic.metrics(id).instructions;
    ic.update_call(id, controller, "noop", Vec::new())
        .unwrap_or_else(|r| panic!("noop: {r}"));
    let after = ic.metrics(id).instructions;
    assert_eq!(after - before, 1 + 5 + 500);
}

fn fill_arg(chunks: u32) -> Vec<u8> {
    chunks.to_le_bytes().to_vec()
}

#[test]
fn an_update_may_dirty_2_gib_of_stable_memory_and_traps_past_it() {
    let (mut ic, id, controller) = setup(wat(FILL_MODULE));
    ic.update_call(id, controller, "fill", fill_arg(CHUNKS_2_GIB))
        .unwrap_or_else(|r| panic!("2 GiB must fit: {r}"));
    let reject = ic
        .update_call(id, controller, "fill", fill_arg(CHUNKS_2_GIB + 1))
        .expect_err("2 GiB + 64 KiB exceeds the message limit");
    assert_eq!(reject.code, RejectCode::CanisterError);
    assert!(
        reject.message.contains("IC0524")
            && reject
                .message
                .contains("Canister exceeded memory access limits")
            && reject
                .message
                .contains("limit 2097152 KB for regular messages"),
        "unexpected reject: {}",
        reject.message
    );
}

#[test]
fn a_query_may_access_1_gib_of_stable_memory() {
    let (mut ic, id, controller) = setup(wat(FILL_MODULE));
    ic.query_call(id, controller, "fill_query", fill_arg(CHUNKS_2_GIB / 2))
        .unwrap_or_else(|r| panic!("1 GiB must fit in a query: {r}"));
    let reject = ic
        .query_call(id, controller, "fill_query", fill_arg(CHUNKS_2_GIB / 2 + 1))
        .expect_err("1 GiB + 64 KiB exceeds the query limit");
    assert!(
        reject.message.contains("IC0524"),
        "unexpected reject: {}",
        reject.message
    );
}

#[test]
fn post_upgrade_may_dirty_more_than_the_message_limit() {
    // The upgrade limit is 8 GiB; `stable_pages` unit-tests its exact boundary.
    let (mut ic, id, controller) = setup(wat(FILL_MODULE));
    ic.upgrade_canister(
        id,
        wat(FILL_MODULE),
        fill_arg(CHUNKS_2_GIB + 16),
        Some(controller),
    )
    .unwrap_or_else(|r| panic!("post_upgrade may dirty 2 GiB + 1 MiB: {r}"));
}
