//! System-initiated faults on real wasm: what the replica does on its own (see
//! `src/harness/system_faults.rs` and `docs/harness.md`), each checked against the
//! conformance canister:
//! - best-effort messages shed, largest first, when a subnet holds more than its capacity;
//! - best-effort requests that expire while queued or in transit are never executed;
//! - `stop_canister` times out after 5 minutes, leaving the canister Stopping;
//! - `ic0.call_perform` refuses calls beyond the callback quota.
//!
//! Build the canister first: `scripts/build-wasm.sh`.

mod conformance_support;

use candid::{Encode, Principal};
use conformance_support::{CallResult, Setup, assert_call_err, assert_reject, no_args};
use ic_harness::{HarnessBuilder, InstructionLimits, RejectCode};
use ic_management_canister_types::{CanisterIdRecord, CanisterStatusType};

const MIB: u64 = 1024 * 1024;
/// Iterations of the canister's `burn` that keep a canister busy for several rounds under
/// [`small_slices`] (each iteration is several instructions).
const BUSY_BURN: u64 = 30_000_000;

/// IC limits, but a DTS slice of 10M instructions: a `burn(BUSY_BURN)` makes its
/// canister sit out the next rounds, with messages piling up in its input queue.
fn small_slices() -> HarnessBuilder {
    HarnessBuilder::new().with_instruction_limits(InstructionLimits {
        round_per_canister: 10_000_000,
        ..InstructionLimits::default()
    })
}

fn status(s: &mut Setup, canister: Principal) -> CanisterStatusType {
    s.ic.canister_status(canister, Some(s.controller))
        .expect("canister_status")
        .status
}

fn absorbed(s: &mut Setup, canister: Principal) -> Vec<u64> {
    s.query::<_, (Vec<u64>,)>(canister, "absorbed", ()).0
}

/// `fan_out`'s answer per call: the length of the blob `absorb` replied, or (code, message).
type SizeResult = Result<u64, (u32, String)>;

/// `caller.fan_out(target, calls, 60 s timeout, burn)`.
fn fan_out(
    s: &mut Setup,
    caller: Principal,
    target: Principal,
    calls: Vec<(u64, u64)>,
    burn: u64,
) -> Vec<SizeResult> {
    s.update::<_, (Vec<SizeResult>,)>(caller, "fan_out", (target, calls, 60u32, burn))
        .0
}

/// Checks a `SizeResult` error's code and that its message contains `needle`.
fn assert_size_err(result: &SizeResult, code: RejectCode, needle: &str) {
    let as_call: CallResult = result.clone().map(|_| Vec::new());
    assert_call_err(&as_call, code, needle);
}

fn log_mentions(s: &Setup, needle: &str) -> usize {
    s.ic.fault_log()
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

#[test]
fn best_effort_requests_are_shed_largest_first_under_memory_pressure() {
    let mut s = Setup::new(
        small_slices().with_best_effort_message_memory_capacity(3 * MIB),
        1,
    );
    let a = s.install_on(0);
    let b = s.install_on(0);
    // b is busy for several rounds: a's requests wait in its input queue.
    let burn =
        s.ic.submit_call(b, s.user, "burn", Encode!(&BUSY_BURN).expect("nat64"))
            .expect("submitted");
    let results = fan_out(&mut s, a, b, vec![(2 * MIB, 0), (MIB, 0), (MIB / 2, 0)], 0);
    s.ic.await_call(burn).expect("burn");

    // 3.5 MiB queued > 3 MiB: the 2 MiB request was shed; its caller learns only at the
    // deadline that the outcome is unknown (SYS_UNKNOWN); the others ran.
    assert_size_err(&results[0], RejectCode::SysUnknown, "IC0601");
    assert!(results[1].is_ok() && results[2].is_ok(), "{results:?}");
    assert_eq!(absorbed(&mut s, b), vec![MIB, MIB / 2]);
    assert_eq!(log_mentions(&s, "shed"), 1, "{:?}", s.ic.fault_log());
}

#[test]
fn best_effort_responses_are_shed_largest_first_under_memory_pressure() {
    let mut s = Setup::new(
        small_slices().with_best_effort_message_memory_capacity(3 * MIB),
        1,
    );
    let a = s.install_on(0);
    let b = s.install_on(0);
    // A long execution's calls leave only after its last DTS slice, so a burn queued
    // right behind the (short) fan-out keeps a busy while the responses come back: they
    // pile up in its own input queue.
    let sizes = [1_900_000u64, 1_500_000, 600_000];
    let calls: Vec<(u64, u64)> = sizes.iter().map(|n| (0, *n)).collect();
    let arg = Encode!(&b, &calls, &60u32, &0u64).expect("fan_out args");
    let fan =
        s.ic.submit_call(a, s.user, "fan_out", arg)
            .expect("submitted");
    let burn =
        s.ic.submit_call(a, s.user, "burn", Encode!(&BUSY_BURN).expect("nat64"))
            .expect("submitted");
    let reply = s.ic.await_call(fan).expect("fan_out");
    let results: Vec<SizeResult> = candid::decode_one(&reply).expect("fan_out reply");
    s.ic.await_call(burn).expect("burn");

    // b acted on all three; the largest response was dropped on the way back.
    assert_eq!(absorbed(&mut s, b), vec![0, 0, 0]);
    assert_size_err(&results[0], RejectCode::SysUnknown, "Response was dropped");
    assert_eq!(results[1], Ok(1_500_000));
    assert_eq!(results[2], Ok(600_000));
    assert_eq!(log_mentions(&s, "shed"), 1, "{:?}", s.ic.fault_log());
}

#[test]
fn nothing_is_shed_under_the_default_capacity() {
    let mut s = Setup::new(small_slices(), 1);
    let a = s.install_on(0);
    let b = s.install_on(0);
    let burn =
        s.ic.submit_call(b, s.user, "burn", Encode!(&BUSY_BURN).expect("nat64"))
            .expect("submitted");
    let results = fan_out(&mut s, a, b, vec![(2 * MIB, 0), (MIB, 0), (MIB / 2, 0)], 0);
    s.ic.await_call(burn).expect("burn");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(absorbed(&mut s, b), vec![2 * MIB, MIB, MIB / 2]);
}

#[test]
fn expired_queued_request_is_never_executed() {
    let mut s = Setup::new(small_slices(), 1);
    let a = s.install_on(0);
    let b = s.install_on(0);
    let burn =
        s.ic.submit_call(b, s.user, "burn", Encode!(&BUSY_BURN).expect("nat64"))
            .expect("submitted");
    // A 3-second bounded-wait call to a callee busy for longer.
    let result: CallResult = s
        .update::<_, (CallResult,)>(a, "call_with_timeout", (b, "inc_heap", no_args(), 3u32))
        .0;
    assert_call_err(&result, RejectCode::SysUnknown, "IC0601");
    s.ic.await_call(burn).expect("burn");
    s.ic.run_until_idle(1_000).expect("idle");
    assert_eq!(s.heap(b), 0, "the expired request must not run");
    assert_eq!(
        log_mentions(&s, "expired queued"),
        1,
        "{:?}",
        s.ic.fault_log()
    );
}

#[test]
fn expired_request_in_transit_is_never_executed() {
    let mut s = Setup::new(HarnessBuilder::new(), 2);
    let a = s.install_on(0);
    let c = s.install_on(1);
    let subnet = s.ic.topology().app_subnets[1];
    s.ic.take_subnet_offline(subnet, 20);
    let result: CallResult = s
        .update::<_, (CallResult,)>(a, "call_with_timeout", (c, "inc_heap", no_args(), 3u32))
        .0;
    assert_call_err(&result, RejectCode::SysUnknown, "IC0601");
    s.ic.run_until_idle(1_000).expect("idle");
    assert_eq!(s.heap(c), 0, "the expired request must not run");
    assert_eq!(
        log_mentions(&s, "expired in transit"),
        1,
        "{:?}",
        s.ic.fault_log()
    );
}

#[test]
fn stop_canister_times_out_after_five_minutes_and_start_recovers() {
    let mut s = Setup::new(HarnessBuilder::new(), 2);
    let a = s.install_on(0);
    let b = s.install_on(1);
    let subnet = s.ic.topology().app_subnets[1];
    s.ic.take_subnet_offline(subnet, 1_000);
    // a awaits a response that does not come for 1,000 rounds: it cannot stop.
    assert_eq!(
        s.update::<_, (u32, u32)>(a, "perform_many", (b, "inc_heap", 1u32)),
        (1, 0)
    );

    let mgmt = Principal::management_canister();
    let arg = Encode!(&CanisterIdRecord { canister_id: a }).expect("encode");
    let second =
        s.ic.submit_call(mgmt, s.controller, "stop_canister", arg.clone())
            .expect("submitted");
    let before = s.ic.rounds();
    let reject =
        s.ic.stop_canister(a, Some(s.controller))
            .expect_err("the stop must time out");
    assert_reject(&reject, RejectCode::SysTransient, "IC0206");
    // Rounds are 1 s: the stop waited 5 minutes (plus the ingress's delivery round).
    let waited = s.ic.rounds() - before;
    assert!(
        (300..=302).contains(&waited),
        "stop timed out after {waited} rounds"
    );
    assert_reject(
        &s.ic.await_call(second).expect_err("also timed out"),
        RejectCode::SysTransient,
        "IC0206",
    );

    // Still stopping: new calls are rejected.
    assert_eq!(status(&mut s, a), CanisterStatusType::Stopping);
    assert_reject(
        &s.update_reject(a, "inc_heap", ()),
        RejectCode::CanisterError,
        "IC0509",
    );

    // A stop still pending when the canister is started is cancelled.
    let third =
        s.ic.submit_call(mgmt, s.controller, "stop_canister", arg)
            .expect("submitted");
    s.ic.tick();
    s.ic.start_canister(a, Some(s.controller)).expect("start");
    assert_reject(
        &s.ic.await_call(third).expect_err("cancelled by start"),
        RejectCode::CanisterError,
        "IC0511",
    );
    assert_eq!(status(&mut s, a), CanisterStatusType::Running);
    assert_eq!(s.update::<_, (u64,)>(a, "inc_heap", ()).0, 1);
    assert_eq!(log_mentions(&s, "timed out"), 2, "{:?}", s.ic.fault_log());
}

#[test]
fn call_perform_refuses_calls_beyond_the_callback_quota() {
    // Subnet pool exhausted (soft limit 0): each canister holds at most its quota of 50.
    let mut s = Setup::new(HarnessBuilder::new().with_subnet_callback_soft_limit(0), 2);
    let a = s.install_on(0);
    let b = s.install_on(1);
    let subnet = s.ic.topology().app_subnets[1];
    s.ic.take_subnet_offline(subnet, 50);
    let first = s.update::<_, (u32, u32)>(a, "perform_many", (b, "inc_heap", 60u32));
    assert_eq!(
        first,
        (50, 10),
        "call_perform returns non-zero past the quota"
    );
    // The 50 callbacks are still outstanding: no call at all.
    let second = s.update::<_, (u32, u32)>(a, "perform_many", (b, "inc_heap", 5u32));
    assert_eq!(second, (0, 5));
    // Once answered, the quota is free again.
    s.ic.run_until_idle(1_000).expect("idle");
    assert_eq!(s.heap(b), 50);
    let third = s.update::<_, (u32, u32)>(a, "perform_many", (b, "inc_heap", 5u32));
    assert_eq!(third, (5, 0));
}

#[test]
fn the_shared_callback_pool_lets_a_canister_exceed_its_quota() {
    // The default soft limit (1,000,000 per subnet) is far from exhausted.
    let mut s = Setup::new(HarnessBuilder::new(), 1);
    let a = s.install_on(0);
    let b = s.install_on(0);
    let made = s.update::<_, (u32, u32)>(a, "perform_many", (b, "inc_heap", 60u32));
    assert_eq!(made, (60, 0));
    s.ic.run_until_idle(1_000).expect("idle");
    assert_eq!(s.heap(b), 60);
}
