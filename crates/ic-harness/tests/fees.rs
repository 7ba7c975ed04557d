//! Conformance of the cycle fees with the replica's rules that go beyond the fee table:
//! the per-canister base fee (dfinity/ic PR #10292), fees scaled by subnet size, the
//! wasm64 instruction price, and the execution prepayment a canister sees in its balance.
//!
//! Build the canisters first: `scripts/build-wasm.sh`.

mod common;

use candid::{Encode, Nat};
use common::{Setup, no_args};
use ic_harness::fees::{FeeSchedule, GIB};
use ic_harness::{CanisterId, HarnessBuilder};

/// Every canister that uses memory pays 10,000 cycles per second on top of its storage,
/// and the base fee counts in its idle burn rate.
#[test]
fn an_idle_canister_pays_the_base_fee_every_second() {
    let mut s = Setup::new(HarnessBuilder::new(), 1);
    let c = s.install_on(0, None);
    s.ic.tick();
    let memory = s.ic.memory_bytes(c);
    let before = s.ic.cycle_balance(c);
    s.ic.advance_time(std::time::Duration::from_secs(86_400 - 1));
    s.ic.tick();
    let charged = before - s.ic.cycle_balance(c);
    let storage_only = 317_500 * u128::from(memory) * 86_400 / GIB;
    let base = charged - storage_only;
    assert!(
        base.abs_diff(10_000 * 86_400) <= 2,
        "a day of base fee: {base} (charged {charged}, storage {storage_only})"
    );
    let status = s.ic.canister_status(c, Some(s.controller)).unwrap();
    assert_eq!(
        status.idle_cycles_burned_per_day,
        Nat::from(s.ic.fee_schedule().idle_burn_per_day(memory))
    );
}

/// The same ingress message costs 34/13 as much on a 34-node (fiduciary) subnet: the
/// base fee, the instructions and the ingress fee all scale.
#[test]
fn fees_on_a_34_node_subnet_are_34_13ths_of_the_13_node_fees() {
    let mut s = Setup::new(
        HarnessBuilder::new()
            .with_application_subnet()
            .with_application_subnet_of_type("fiduciary"),
        0,
    );
    let small = s.install_on(0, None);
    let large = s.install_on(1, None);
    let arg = Encode!(&serde_bytes::ByteBuf::from(vec![7u8; 1_000])).unwrap();
    let mut spent = Vec::new();
    for c in [small, large] {
        let before = s.ic.metrics(c);
        s.ic.update_call(c, s.user, "echo", arg.clone()).unwrap();
        let after = s.ic.metrics(c);
        let b = &after.cycles_burned;
        let a = &before.cycles_burned;
        spent.push((
            b.execution - a.execution,
            b.instructions - a.instructions,
            b.ingress - a.ingress,
            after.instructions - before.instructions,
        ));
    }
    let (small, large) = (spent[0], spent[1]);
    assert_eq!(small.3, large.3, "the same code runs the same instructions");
    assert_eq!(small.0, 5_000_000);
    assert_eq!(large.0, 5_000_000 * 34 / 13, "execution base fee");
    assert_eq!(large.1, small.1 * 34 / 13, "instruction fee");
    let ingress_bytes = u128::try_from("echo".len() + arg.len()).unwrap();
    assert_eq!(small.2, 1_200_000 + 2_000 * ingress_bytes);
    assert_eq!(
        large.2,
        1_200_000 * 34 / 13 + 2_000 * ingress_bytes * 34 / 13,
        "ingress fee"
    );
}

/// A loop of `n` iterations in a module whose memory is 32- or 64-bit.
fn spin_module(memory64: bool) -> Vec<u8> {
    let memory = if memory64 {
        "(memory i64 1)"
    } else {
        "(memory 1)"
    };
    wat::parse_str(format!(
        r#"(module
            (import "ic0" "msg_reply" (func $reply))
            {memory}
            (func $spin (local $i i32)
                (loop $l
                    (local.set $i (i32.add (local.get $i) (i32.const 1)))
                    (br_if $l (i32.lt_u (local.get $i) (i32.const 100000))))
                (call $reply))
            (export "canister_update spin" (func $spin)))"#
    ))
    .expect("valid wat")
}

/// A memory64 canister pays twice the instruction fee of a wasm32 one
/// (`WASM64_INSTRUCTION_COST_OVERHEAD`).
#[test]
fn a_memory64_canister_pays_twice_per_instruction() {
    let mut s = Setup::new(HarnessBuilder::new(), 1);
    let subnet = s.ic.topology().app_subnets[0];
    let mut per_instruction = Vec::new();
    for memory64 in [false, true] {
        let id: CanisterId =
            s.ic.create_canister_on_subnet(Some(s.controller), None, subnet);
        s.ic.install_canister(id, spin_module(memory64), no_args(), Some(s.controller));
        let before = s.ic.metrics(id);
        s.ic.update_call(id, s.user, "spin", no_args()).unwrap();
        let after = s.ic.metrics(id);
        let instructions = u128::from(after.instructions - before.instructions);
        let fee = after.cycles_burned.instructions - before.cycles_burned.instructions;
        assert!(instructions > 100_000, "{instructions}");
        per_instruction.push((fee, instructions));
    }
    let ((fee32, n32), (fee64, n64)) = (per_instruction[0], per_instruction[1]);
    assert_eq!(fee32, n32, "wasm32: 1 cycle per instruction");
    assert_eq!(fee64, 2 * n64, "wasm64: 2 cycles per instruction");
}

/// During an update the balance is the balance less the prepayment of an execution at the
/// instruction limit (5M + 40B cycles); afterwards the unused part is back.
#[test]
fn an_update_sees_its_balance_less_the_execution_prepayment() {
    let mut s = Setup::new(HarnessBuilder::new(), 1);
    let c = s.install_on(0, None);
    s.ic.tick();
    let fees = FeeSchedule::default();
    let prepayment = fees.execution(40_000_000_000);
    let before = s.ic.cycle_balance(c);
    let reserve = s.ic.freezing_reserve(c);
    let (seen, liquid): (Nat, Nat) = s.update(c, "balances", ());
    let after = s.ic.cycle_balance(c);
    let seen = u128::try_from(seen.0).unwrap();
    let liquid = u128::try_from(liquid.0).unwrap();
    // Between `before` and the execution only the ingress fee and a round of storage went.
    let slack = fees.ingress(100) + 1_000_000;
    assert!(
        seen <= before - prepayment && seen + slack >= before - prepayment,
        "seen {seen}, balance before {before}, prepayment {prepayment}"
    );
    assert_eq!(
        liquid,
        seen - reserve,
        "liquid = balance seen less the freezing reserve (of the memory before the call)"
    );
    assert!(
        after > seen + prepayment - 10_000_000,
        "the unused prepayment came back: after {after}, seen {seen}"
    );
}
