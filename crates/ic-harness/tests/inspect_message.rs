//! `canister_inspect_message` on real wasm: it runs for ingress update calls only (not
//! for ingress queries or inter-canister calls), must call `ic0.accept_message`, rejects
//! the ingress when it traps or exceeds its 200M-instruction limit, and is free.
//!
//! Build the canister first: `scripts/build-wasm.sh`.

mod conformance_support;

use candid::{Decode, Encode};
use conformance_support::{CallResult, Setup, assert_reject, no_args};
use ic_harness::{HarnessBuilder, RejectCode};

/// Trap text of the canister's inspect_message for `trapped_in_inspect`.
const INSPECT_TRAP: &str = "inspect_message traps on purpose";

#[test]
fn inspect_message_filters_ingress_update_calls_only() {
    let mut s = Setup::new(HarnessBuilder::new(), 1);
    let a = s.install_on(0);
    let b = s.install_on(0);

    // Accepted: the method runs.
    assert_eq!(s.update::<_, (u64,)>(a, "inc_heap", ()).0, 1);

    // Not accepted: IC0406, CANISTER_REJECT; the method never ran and the canister paid
    // nothing (neither the inspection nor the refused ingress).
    let cycles = s.ic.cycle_balance(a);
    let executions = s.ic.metrics(a).executions;
    let reject = s.update_reject(a, "refused_update", ());
    assert_reject(&reject, RejectCode::CanisterReject, "IC0406");
    assert!(
        reject.message.contains("rejected the message"),
        "{reject:?}"
    );
    assert_eq!(s.ic.cycle_balance(a), cycles);
    assert_eq!(s.ic.metrics(a).executions, executions);
    assert_eq!(s.heap(a), 1);

    // The refusal happens at submission, before the message is queued.
    let refused = s.ic.submit_call(a, s.user, "refused_update", no_args());
    assert_reject(
        &refused.expect_err("refused at submission"),
        RejectCode::CanisterReject,
        "IC0406",
    );

    // An update call to a query method is an ingress message too: inspected.
    let reject = s.update_reject(a, "refused_query", ());
    assert_reject(&reject, RejectCode::CanisterReject, "IC0406");
    // A query call is never inspected.
    assert_eq!(s.query::<_, (u64,)>(a, "refused_query", ()).0, 7);

    // Inter-canister calls are never inspected: b's refused_update runs for a.
    let relayed: CallResult = s
        .update::<_, (CallResult,)>(
            a,
            "call_and_reply",
            (b, "refused_update".to_string(), no_args()),
        )
        .0;
    let reply = relayed.expect("inter-canister call is not inspected");
    assert_eq!(Decode!(&reply, u64).expect("nat64"), 1);
    assert_eq!(s.heap(b), 1);
}

#[test]
fn inspect_message_trap_or_instruction_limit_rejects_the_ingress() {
    let mut s = Setup::new(HarnessBuilder::new(), 1);
    let a = s.install_on(0);

    let reject = s.update_reject(a, "trapped_in_inspect", ());
    assert_reject(&reject, RejectCode::CanisterError, INSPECT_TRAP);
    assert!(reject.message.contains("IC0503"), "{reject:?}");

    // The inspection runs with 200M instructions (`max_instructions_for_message_acceptance_calls`),
    // not the 40B of an update.
    let cycles = s.ic.cycle_balance(a);
    let reject = s.update_reject(a, "burns_in_inspect", ());
    assert_reject(&reject, RejectCode::CanisterError, "IC0522");
    assert_eq!(s.ic.cycle_balance(a), cycles, "inspection is free");

    assert_eq!(s.heap(a), 0, "no refused method ran");
    // The canister still works.
    assert_eq!(s.update::<_, (u64,)>(a, "inc_heap", ()).0, 1);
}

#[test]
fn ingress_to_an_empty_canister_is_refused_at_submission() {
    let mut s = Setup::new(HarnessBuilder::new(), 1);
    let subnet = s.ic.topology().app_subnets[0];
    let empty =
        s.ic.create_canister_on_subnet(Some(s.controller), None, subnet);
    let refused =
        s.ic.submit_call(empty, s.user, "inc_heap", Encode!().expect("()"));
    assert_reject(
        &refused.expect_err("an empty canister refuses ingress"),
        RejectCode::CanisterError,
        "IC0537",
    );
}
