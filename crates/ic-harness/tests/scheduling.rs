//! Scheduling and bandwidth conformance on real wasm (docs/harness.md, "Scheduling and
//! bandwidth"): blocks carry at most 4 MiB of cross-subnet messages, a cross-subnet round
//! trip takes at least 4 rounds, a CMC creation takes the CMC's extra hop, an execution
//! longer than a 2B slice releases its effects only after its last slice (an upgrade's
//! `install_code` answer likewise), a subnet runs
//! 4 threads, and a canister that dirtied more than its heap-delta budget sits out rounds.
//!
//! The probe canister is hand-written wat (below); the CMC test uses the platform canister
//! (`scripts/build-wasm.sh`).

mod common;

use candid::{Nat, Principal};
use common::Setup;
use ic_harness::cmc_types::{CanisterSettings as CmcSettings, CreateCanisterArg};
use ic_harness::{CanisterId, Harness, HarnessBuilder, MessageId};
use serde_bytes::ByteBuf;

/// Probe canister. Memory: counter of `ping`s at 0, of call responses at 8, "ping" at 16,
/// the argument copied to 64, payloads read from 64 KiB.
/// - `burn(n: u64 LE)`: loops `n` times, replies.
/// - `burn_call(n: u64 LE, callee)`: loops `n` times, calls `callee.ping`, replies.
/// - `fan(count: u32 LE, bytes: u32 LE, callee)`: `count` calls of `bytes` to `callee.ping`.
/// - `ping`: counts, replies. `dirty(pages: u32 LE)`: grows by `pages` wasm pages and fills
///   them with 1s. Queries `pings`, `responses`: the counters (u64 LE).
const PROBE: &str = r#"
(module
  (import "ic0" "msg_arg_data_size" (func $arg_size (result i32)))
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i32 i32 i32)))
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "call_new" (func $call_new (param i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "ic0" "call_data_append" (func $call_append (param i32 i32)))
  (import "ic0" "call_perform" (func $call_perform (result i32)))
  (memory (export "memory") 40)
  (table (export "table") 1 funcref)
  (elem (i32.const 0) $on_response)
  (data (i32.const 16) "ping")
  (func $on_response (param i32)
    (i64.store (i32.const 8) (i64.add (i64.load (i32.const 8)) (i64.const 1))))
  (func $load_arg (call $arg_copy (i32.const 64) (i32.const 0) (call $arg_size)))
  (func $burn (param $n i64)
    (block $done (loop $l
      (br_if $done (i64.eqz (local.get $n)))
      (local.set $n (i64.sub (local.get $n) (i64.const 1)))
      (br $l))))
  (func $call_ping (param $callee_at i32) (param $callee_len i32) (param $bytes i32)
    (call $call_new (local.get $callee_at) (local.get $callee_len) (i32.const 16) (i32.const 4)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $call_append (i32.const 65536) (local.get $bytes))
    (drop (call $call_perform)))
  (func (export "canister_update burn")
    (call $load_arg) (call $burn (i64.load (i32.const 64))) (call $reply))
  (func (export "canister_update burn_call")
    (call $load_arg) (call $burn (i64.load (i32.const 64)))
    (call $call_ping (i32.const 72) (i32.sub (call $arg_size) (i32.const 8)) (i32.const 0))
    (call $reply))
  (func (export "canister_update fan") (local $i i32)
    (call $load_arg)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (i32.load (i32.const 64))))
      (call $call_ping (i32.const 72) (i32.sub (call $arg_size) (i32.const 8))
        (i32.load (i32.const 68)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $reply))
  (func (export "canister_update ping")
    (i64.store (i32.const 0) (i64.add (i64.load (i32.const 0)) (i64.const 1)))
    (call $reply))
  (func (export "canister_update dirty") (local $old i32) (local $pages i32)
    (call $load_arg)
    (local.set $pages (i32.load (i32.const 64)))
    (local.set $old (memory.grow (local.get $pages)))
    (memory.fill (i32.mul (local.get $old) (i32.const 65536)) (i32.const 1)
      (i32.mul (local.get $pages) (i32.const 65536)))
    (call $reply))
  (func (export "canister_query pings") (call $append (i32.const 0) (i32.const 8)) (call $reply))
  (func (export "canister_query responses")
    (call $append (i32.const 8) (i32.const 8)) (call $reply)))
"#;

const MIB: u64 = 1024 * 1024;
/// Instructions of one `$burn` loop iteration is about this; figures below are measured.
const SLICE: u64 = 2_000_000_000;

fn probe_on(s: &mut Setup, subnet: usize) -> CanisterId {
    let subnet_id = s.ic.topology().app_subnets[subnet];
    let id =
        s.ic.create_canister_on_subnet(Some(s.controller), None, subnet_id);
    let wasm = wat::parse_str(PROBE).expect("probe wat parses");
    s.ic.install_canister(id, wasm, Vec::new(), Some(s.controller));
    id
}

fn counter(ic: &mut Harness, canister: CanisterId, query: &str) -> u64 {
    let bytes = ic
        .query_call(canister, Principal::anonymous(), query, Vec::new())
        .expect("counter query");
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

fn submit(s: &mut Setup, canister: CanisterId, method: &str, arg: Vec<u8>) -> MessageId {
    s.ic.submit_call(canister, s.user, method, arg)
        .expect("submitted")
}

fn with_callee(mut head: Vec<u8>, callee: CanisterId) -> Vec<u8> {
    head.extend_from_slice(callee.as_slice());
    head
}

/// Ticks until `id` is answered; returns the round it was answered in.
fn answered_round(s: &mut Setup, id: MessageId, max: u64) -> u64 {
    for _ in 0..max {
        if s.ic.ingress_status(id).is_some() {
            return s.ic.rounds();
        }
        s.ic.tick();
    }
    panic!("message unanswered after {max} rounds");
}

/// 11 requests of 1.9 MB (20.9 MB) from subnet 0 to subnet 1 reach their callee at most
/// two per round (a 4 MiB block), in order, over at least 5 rounds.
#[test]
fn cross_subnet_requests_are_inducted_within_4_mib_blocks() {
    let mut s = Setup::new(HarnessBuilder::new(), 2);
    let sender = probe_on(&mut s, 0);
    let callee = probe_on(&mut s, 1);
    const COUNT: u32 = 11;
    const BYTES: u32 = 1_900_000;
    let mut arg = COUNT.to_le_bytes().to_vec();
    arg.extend_from_slice(&BYTES.to_le_bytes());
    let id = submit(&mut s, sender, "fan", with_callee(arg, callee));
    answered_round(&mut s, id, 10);
    let mut per_round = Vec::new();
    let mut seen = 0;
    for _ in 0..60 {
        s.ic.tick();
        let now = counter(&mut s.ic, callee, "pings");
        per_round.push(now - seen);
        seen = now;
        if seen == u64::from(COUNT) {
            break;
        }
    }
    assert!(
        seen == u64::from(COUNT),
        "all requests arrive: {per_round:?}"
    );
    let first = per_round.iter().position(|n| *n > 0).expect("some arrived");
    let span = per_round.len() - first;
    assert!(
        per_round.iter().all(|n| *n <= 2),
        "at most 2 x 1.9 MB per 4 MiB block: {per_round:?}"
    );
    assert!(span >= 5, "20.9 MB take at least 5 rounds: {per_round:?}");
}

/// An inter-canister call across subnets comes back at least 4 rounds after it was made.
#[test]
fn cross_subnet_round_trip_takes_at_least_4_rounds() {
    let mut s = Setup::new(HarnessBuilder::new(), 2);
    let caller = probe_on(&mut s, 0);
    let callee = probe_on(&mut s, 1);
    let id = submit(
        &mut s,
        caller,
        "burn_call",
        with_callee(0u64.to_le_bytes().to_vec(), callee),
    );
    let sent = answered_round(&mut s, id, 10);
    let mut back = None;
    for _ in 0..20 {
        if counter(&mut s.ic, caller, "responses") == 1 {
            back = Some(s.ic.rounds());
            break;
        }
        s.ic.tick();
    }
    let back = back.expect("the response arrives");
    assert!(
        back - sent >= 4,
        "round trip of {} rounds (sent in {sent}, answered in {back})",
        back - sent
    );
}

/// A CMC creation takes the CMC's call to the target subnet: at least one cross-subnet
/// round trip more than a plain call from the same canister.
#[test]
fn cmc_creation_takes_the_extra_hop_to_the_target_subnet() {
    let mut s = Setup::new(HarnessBuilder::new(), 2);
    let factory = s.install_on(0, None);
    let other = s.install_on(1, None);
    let start = s.ic.rounds();
    let call_arg = candid::encode_args((
        other,
        "accept_all".to_string(),
        ByteBuf::from(candid::encode_args(()).unwrap()),
        Nat::from(0u8),
        false,
    ))
    .unwrap();
    let id = submit(&mut s, factory, "call", call_arg);
    let call_rounds = answered_round(&mut s, id, 40) - start;
    let arg = CreateCanisterArg {
        settings: Some(CmcSettings {
            controllers: Some(vec![factory]),
            ..CmcSettings::default()
        }),
        subnet_type: None,
        subnet_selection: None,
    };
    let start = s.ic.rounds();
    let id = submit(
        &mut s,
        factory,
        "cmc_create",
        candid::encode_args((arg, Nat::from(2_000_000_000_000u128))).unwrap(),
    );
    let cmc_rounds = answered_round(&mut s, id, 40) - start;
    assert!(
        cmc_rounds >= call_rounds + 4,
        "CMC creation took {cmc_rounds} rounds, a plain cross-subnet call {call_rounds}"
    );
}

/// A ~5B-instruction update runs in 2B slices: its outgoing call (to a canister on the
/// same subnet) and its reply go out only in the round of its last slice, and a message
/// queued behind it meanwhile waits.
#[test]
fn long_update_releases_its_call_only_after_its_last_slice() {
    let mut s = Setup::new(HarnessBuilder::new(), 1);
    let caller = probe_on(&mut s, 0);
    let callee = probe_on(&mut s, 0);
    // About 8 instructions per iteration.
    let iterations: u64 = 5_000_000_000 / 8;
    let long = submit(
        &mut s,
        caller,
        "burn_call",
        with_callee(iterations.to_le_bytes().to_vec(), callee),
    );
    let behind = submit(&mut s, caller, "ping", Vec::new());
    s.ic.tick();
    let first = s.ic.rounds();
    let used = s.ic.metrics(caller).max_instructions_per_execution;
    assert!(used > 2 * SLICE, "the update is long: {used} instructions");
    let slices = used.div_ceil(SLICE);
    for _ in 1..slices {
        assert!(
            counter(&mut s.ic, callee, "pings") == 0,
            "call delivered before the last slice (round {})",
            s.ic.rounds() - first
        );
        assert!(s.ic.ingress_status(long).is_none(), "replied early");
        assert!(
            s.ic.ingress_status(behind).is_none(),
            "ran a message meanwhile"
        );
        s.ic.tick();
    }
    assert!(
        s.ic.ingress_status(long).is_some(),
        "replied in the last slice's round"
    );
    assert!(
        counter(&mut s.ic, callee, "pings") == 1,
        "the call left in the last slice's round"
    );
    answered_round(&mut s, behind, 3);
}

/// An upgrade whose `canister_post_upgrade` runs about 5B instructions is sliced like a
/// long update (`MAX_INSTRUCTIONS_PER_INSTALL_CODE_SLICE` = 2B): the `install_code` call is
/// answered only in the round of its last slice, and an update to the canister queued
/// meanwhile waits for it.
#[test]
fn long_upgrade_is_answered_after_its_last_install_slice() {
    use ic_management_canister_types::{CanisterInstallMode, InstallCodeArgs};
    let mut s = Setup::new(HarnessBuilder::new(), 1);
    let probe = probe_on(&mut s, 0);
    // The probe again, with a post_upgrade burning about 5B instructions.
    let iterations: u64 = 5_000_000_000 / 8;
    let body = PROBE
        .trim_end()
        .strip_suffix(')')
        .expect("module ends with )");
    let slow = wat::parse_str(format!(
        "{body} (func (export \"canister_post_upgrade\") (call $burn (i64.const {iterations}))))"
    ))
    .expect("slow probe wat parses");
    let upgrade = candid::encode_one(InstallCodeArgs {
        mode: CanisterInstallMode::Upgrade(None),
        canister_id: probe,
        wasm_module: slow,
        arg: Vec::new(),
        sender_canister_version: None,
    })
    .expect("encodes");
    let before = s.ic.metrics(probe).instructions;
    let install =
        s.ic.submit_call(
            Principal::management_canister(),
            s.controller,
            "install_code",
            upgrade,
        )
        .expect("submitted");
    s.ic.tick();
    let behind = submit(&mut s, probe, "ping", Vec::new());
    let used = s.ic.metrics(probe).instructions - before;
    assert!(used > 2 * SLICE, "the upgrade is long: {used} instructions");
    let slices = used.div_ceil(SLICE);
    for round in 1..slices {
        assert!(
            s.ic.ingress_status(install).is_none(),
            "install_code answered before its last slice (round {round} of {slices})"
        );
        assert!(
            s.ic.ingress_status(behind).is_none(),
            "an update ran during the upgrade's slices"
        );
        s.ic.tick();
    }
    assert!(
        s.ic.ingress_status(install).is_some(),
        "answered in the last slice's round"
    );
    answered_round(&mut s, behind, 3);
    assert_eq!(counter(&mut s.ic, probe, "pings"), 1);
}

/// Six canisters with work on a subnet of 4 threads: in the first round two of them wait;
/// they go first in the next round.
#[test]
fn six_busy_canisters_share_four_threads() {
    const THREAD: u64 = 100_000_000;
    let mut s = Setup::new(HarnessBuilder::new().with_scheduler_threads(4, THREAD), 1);
    let probes: Vec<_> = (0..6).map(|_| probe_on(&mut s, 0)).collect();
    // Two messages of ~60M instructions each fill a 100M thread.
    let iterations: u64 = 60_000_000 / 8;
    for p in &probes {
        for _ in 0..2 {
            submit(&mut s, *p, "burn", iterations.to_le_bytes().to_vec());
        }
    }
    let ran =
        |s: &Setup| -> Vec<u64> { probes.iter().map(|p| s.ic.metrics(*p).executions).collect() };
    let before = ran(&s);
    s.ic.tick();
    let after_one = ran(&s);
    let waited: Vec<usize> = (0..6).filter(|i| after_one[*i] == before[*i]).collect();
    assert!(
        waited.len() == 2,
        "two of six canisters wait in the first round: {before:?} -> {after_one:?}"
    );
    s.ic.tick();
    let after_two = ran(&s);
    assert!(
        waited.iter().all(|i| after_two[*i] > after_one[*i]),
        "the waiting canisters run next: {after_one:?} -> {after_two:?}"
    );
}

/// A canister that dirties 200 MiB in a round (more than its 75 MiB per round) is not
/// scheduled until its debit is back under the limit: 200 -> 125 after the round, still
/// over, so it sits out the next round; 50 after that, so it runs in the one after.
#[test]
fn heap_delta_over_budget_keeps_a_canister_out_until_it_recovers() {
    let mut s = Setup::new(HarnessBuilder::new(), 1);
    let probe = probe_on(&mut s, 0);
    let pages = u32::try_from(200 * MIB / 65_536).unwrap();
    let id = submit(&mut s, probe, "dirty", pages.to_le_bytes().to_vec());
    let dirtied_in = answered_round(&mut s, id, 5);
    let ping = submit(&mut s, probe, "ping", Vec::new());
    let pinged_in = answered_round(&mut s, ping, 10);
    // Unlimited, the ping would run in the round after the dirtying one.
    assert!(
        pinged_in == dirtied_in + 2,
        "dirtied in round {dirtied_in}, next message ran in round {pinged_in}"
    );
}
