//! Fault injection on real wasm: each fault produces the reject code the IC would give,
//! appears in the event log and the affected canister's log, and the harness stays
//! deterministic.
//!
//! Build the canisters first: `scripts/build-wasm.sh`.

mod common;

use candid::Nat;
use common::{Setup, no_args};
use ic_harness::{HarnessBuilder, RejectCode};
use serde_bytes::ByteBuf;

/// What the platform canister's `call` returns: the outcome and the cycles refunded.
type Called = (Result<ByteBuf, (u32, String)>, Nat);

/// `a` calls `b.inc_heap()` with `cycles` attached, bounded-wait or not.
fn call_inc(
    s: &mut Setup,
    a: ic_harness::CanisterId,
    b: ic_harness::CanisterId,
    cycles: u64,
    bounded: bool,
) -> Called {
    s.update(
        a,
        "call",
        (
            b,
            "inc_heap",
            ByteBuf::from(no_args()),
            Nat::from(cycles),
            bounded,
        ),
    )
}

#[test]
fn injected_rejects_carry_the_chosen_code_and_refund_cycles() {
    let mut s = Setup::new(HarnessBuilder::new(), 2);
    let a = s.install_on(0, None);
    let b = s.install_on(1, None);
    s.ic.inject_rejects(a, b, 2, RejectCode::SysTransient);

    for _ in 0..2 {
        let (outcome, refunded) = call_inc(&mut s, a, b, 1_000_000, true);
        let (code, message) = outcome.expect_err("rejected by the fault");
        assert_eq!(code, 2, "{message}");
        assert!(message.contains("fault injection"), "{message}");
        assert_eq!(
            refunded,
            Nat::from(1_000_000u32),
            "attached cycles come back"
        );
    }
    assert_eq!(
        s.query1::<u64>(b, "get_heap", ()),
        0,
        "the callee never ran"
    );
    let (outcome, _) = call_inc(&mut s, a, b, 0, true);
    assert!(outcome.is_ok(), "the third call goes through: {outcome:?}");

    s.ic.inject_rejects(a, b, 1, RejectCode::DestinationInvalid);
    assert_eq!(call_inc(&mut s, a, b, 0, false).0.unwrap_err().0, 3);

    let log = s.ic.fault_log().join("\n");
    assert_eq!(log.matches("fault fired").count(), 3, "{log}");
    assert!(
        s.ic.canister_logs(a)
            .iter()
            .any(|l| l.contains("rejected with SysTransient")),
        "the caller's log shows the fault"
    );
}

#[test]
fn dropped_responses_give_sys_unknown_to_bounded_wait_callers_only() {
    let mut s = Setup::new(HarnessBuilder::new(), 2);
    let a = s.install_on(0, None);
    let b = s.install_on(1, None);
    s.ic.drop_responses(a, b, 1);

    // Unbounded-wait calls have guaranteed responses: the fault waits for a bounded one.
    assert!(call_inc(&mut s, a, b, 0, false).0.is_ok());
    let rounds = s.ic.rounds();
    let (outcome, refunded) = call_inc(&mut s, a, b, 5_000_000, true);
    let (code, message) = outcome.expect_err("the response was dropped");
    assert_eq!(code, 6, "SYS_UNKNOWN: {message}");
    assert_eq!(refunded, Nat::from(0u8), "the attached cycles are lost");
    assert!(
        s.ic.rounds() - rounds >= 300,
        "the caller learns at the 300 s deadline"
    );
    assert_eq!(s.query1::<u64>(b, "get_heap", ()), 2, "the callee did act");
    assert_eq!(
        s.ic.metrics(a).cycles_burned.lost,
        5_000_000,
        "the callee accepted nothing: its 5M refund was lost with the response"
    );
    assert!(s.ic.fault_log().iter().any(|l| l.contains("dropped")));
}

#[test]
fn trapping_execution_gives_canister_error_and_rolls_back() {
    let mut s = Setup::new(HarnessBuilder::new(), 1);
    let b = s.install_on(0, None);
    assert_eq!(s.update1::<u64>(b, "inc_heap", ()), 1);
    s.ic.trap_next_execution(b);
    let reject =
        s.ic.update_call(b, s.user, "inc_heap", no_args())
            .expect_err("the execution traps");
    assert_eq!(reject.code, RejectCode::CanisterError, "{reject:?}");
    assert!(reject.message.contains("fault injection"), "{reject:?}");
    assert_eq!(
        s.update1::<u64>(b, "inc_heap", ()),
        2,
        "nothing was committed"
    );
    assert!(s.ic.canister_logs(b).iter().any(|l| l.contains("trapped")));
}

#[test]
fn offline_subnet_holds_messages_until_it_is_back() {
    let mut s = Setup::new(HarnessBuilder::new(), 2);
    let a = s.install_on(0, None);
    let b = s.install_on(1, None);
    let subnet_b = s.ic.topology().app_subnets[1];
    s.ic.take_subnet_offline(subnet_b, 20);
    assert!(s.ic.is_subnet_offline(subnet_b));

    let start = s.ic.rounds();
    let (outcome, _) = call_inc(&mut s, a, b, 0, true);
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(
        s.ic.rounds() - start > 20,
        "waited for the subnet: {} rounds",
        s.ic.rounds() - start
    );
    assert!(!s.ic.is_subnet_offline(subnet_b));
    assert!(s.ic.fault_log().iter().any(|l| l.contains("offline")));
}

#[test]
fn frozen_canister_refuses_calls_with_sys_transient() {
    let mut s = Setup::new(HarnessBuilder::new(), 1);
    let a = s.install_on(0, None);
    let b = s.install_on(0, None);
    s.ic.freeze_canister(b);
    let ingress =
        s.ic.update_call(b, s.user, "inc_heap", no_args())
            .expect_err("frozen");
    assert_eq!(ingress.code, RejectCode::SysTransient, "{ingress:?}");
    assert_eq!(call_inc(&mut s, a, b, 0, true).0.unwrap_err().0, 2);
    // A frozen caller cannot spend: its calls fail before leaving (ic-cdk sees no liquid cycles).
    s.ic.unfreeze_canister(b);
    s.ic.freeze_canister(a);
    assert!(s.ic.update_call(a, s.user, "inc_heap", no_args()).is_err());
    s.ic.unfreeze_canister(a);
    assert!(call_inc(&mut s, a, b, 0, true).0.is_ok());
    assert!(s.ic.canister_logs(b).iter().any(|l| l.contains("frozen")));
}

/// With a seeded shuffle, ready queues run in a random but reproducible order, and
/// per-sender request order is kept.
#[test]
fn queue_shuffle_is_seeded_and_keeps_results() {
    let run = |seed: u64| {
        let mut s = Setup::new(HarnessBuilder::new().with_queue_shuffle(seed), 2);
        let a = s.install_on(0, None);
        let b = s.install_on(1, None);
        let c = s.install_on(0, None);
        let mut ids = Vec::new();
        for i in 0..6 {
            let caller = if i % 2 == 0 { a } else { c };
            let arg = candid::encode_args((
                b,
                "inc_heap",
                ByteBuf::from(no_args()),
                Nat::from(0u8),
                true,
            ))
            .unwrap();
            ids.push(s.ic.submit_call(caller, s.user, "call", arg).unwrap());
        }
        s.ic.run_until_idle(1_000).unwrap();
        let replies: Vec<u64> = ids
            .into_iter()
            .map(|id| {
                let bytes = s.ic.ingress_status(id).unwrap().unwrap();
                let (outcome, _): Called = candid::decode_args(&bytes).unwrap();
                candid::decode_one(&outcome.unwrap()).unwrap()
            })
            .collect();
        let mut sorted = replies.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (1..=6).collect::<Vec<u64>>(), "every call ran once");
        replies
    };
    assert_eq!(run(7), run(7), "same seed, same interleaving");
    let orders: std::collections::BTreeSet<Vec<u64>> = (0..8).map(run).collect();
    assert!(
        orders.len() > 1,
        "different seeds interleave differently: {orders:?}"
    );
}
