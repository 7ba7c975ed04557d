//! Platform tests on real wasm: native snapshots (copied across subnets in 2,000,000-byte
//! pieces), chunked install, the cycles minting canister, cycle fees and freezing.
//! Fault injection is in `tests/faults.rs`.
//!
//! Build the canisters first: `scripts/build-wasm.sh`.

mod common;

use candid::{Encode, Nat, Principal};
use common::{Setup, no_args};
use ic_harness::cmc_types::{
    CMC_PRINCIPAL, CanisterSettings as CmcSettings, CreateCanisterArg, CreateCanisterError,
    CreateCanisterResult, SubnetFilter, SubnetSelection, SubnetTypesToSubnetsResponse,
};
use ic_harness::{HarnessBuilder, RejectCode};
use ic_management_canister_types::{CanisterInstallMode, CanisterSettings};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------

/// A snapshot taken on subnet 0 is read out by a canister on subnet 1 in 2,000,000-byte
/// pieces, uploaded to a canister there and loaded: stable memory and heap are identical.
#[test]
fn snapshot_copied_across_subnets_loads_identical_memory() {
    const STABLE_BYTES: u64 = 5_000_000;
    let mut s = Setup::new(HarnessBuilder::new(), 2);
    let driver = s.install_on(1, None);
    let both = Some(vec![s.controller, driver]);
    let source = s.install_on(0, both.clone());
    let target = s.install_on(1, both);

    let size: u64 = s.update1(source, "fill_stable", (STABLE_BYTES, 42u64));
    assert!(size >= STABLE_BYTES);
    for _ in 0..7 {
        let _: u64 = s.update1(source, "inc_heap", ());
    }
    let stable_at_snapshot = s.ic.get_stable_memory(source);
    let digest: u64 = s.query1(source, "stable_digest", ());

    let snapshot =
        s.ic.take_canister_snapshot(source, Some(s.controller), None)
            .expect("controller takes a snapshot");
    assert!(snapshot.total_size >= size, "{snapshot:?}");
    let _: u64 = s.update1(source, "inc_heap", ()); // the source moves on

    let (new_id, reads): (ByteBuf, u32) = s.update(
        driver,
        "copy_snapshot",
        (source, ByteBuf::from(snapshot.id.clone()), target),
    );
    // Every blob in 2,000,000-byte pieces: the 5 MB stable memory alone takes 3 reads.
    // Module and heap take at least one read each.
    assert!(reads >= 5, "reads: {reads}");

    // The original snapshot lives on subnet 0: loading it on subnet 1 is refused.
    let refused =
        s.ic.load_canister_snapshot(target, Some(s.controller), snapshot.id.clone())
            .expect_err("cross-subnet load");
    assert_eq!(refused.code, RejectCode::CanisterReject, "{refused:?}");
    assert!(refused.message.contains("same subnet"), "{refused:?}");

    s.ic.load_canister_snapshot(target, Some(s.controller), new_id.into_vec())
        .expect("load the uploaded copy");
    assert_eq!(s.ic.get_stable_memory(target), stable_at_snapshot);
    assert_eq!(s.query1::<u64>(target, "stable_digest", ()), digest);
    assert_eq!(
        s.query1::<u64>(target, "get_heap", ()),
        7,
        "the heap came along"
    );
    assert_eq!(
        s.update1::<u64>(target, "inc_heap", ()),
        8,
        "and the copy runs"
    );

    // The source rolls back to its own snapshot.
    s.ic.load_canister_snapshot(source, Some(s.controller), snapshot.id)
        .expect("load on the source");
    assert_eq!(s.query1::<u64>(source, "get_heap", ()), 7);
}

/// At most 10 snapshots; replace_snapshot; controllers only; snapshots count toward
/// memory and die with the canister.
#[test]
fn snapshot_limits_rights_memory_and_lifetime() {
    let mut s = Setup::new(HarnessBuilder::new(), 1);
    let c = s.install_on(0, None);
    let _: u64 = s.update1(c, "fill_stable", (1_000_000u64, 1u64));
    let memory_before = s.ic.memory_bytes(c);

    let denied =
        s.ic.take_canister_snapshot(c, Some(s.user), None)
            .expect_err("not a controller");
    assert_eq!(denied.code, RejectCode::CanisterError, "{denied:?}");

    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(
            s.ic.take_canister_snapshot(c, Some(s.controller), None)
                .expect("room for 10")
                .id,
        );
    }
    let full =
        s.ic.take_canister_snapshot(c, Some(s.controller), None)
            .expect_err("the 11th");
    assert!(
        full.message.contains("maximum number of snapshots"),
        "{full:?}"
    );
    let replaced =
        s.ic.take_canister_snapshot(c, Some(s.controller), Some(ids[0].clone()))
            .expect("replace works when full");
    let listed = s.ic.list_canister_snapshots(c, Some(s.controller)).unwrap();
    assert_eq!(listed.len(), 10);
    assert!(listed.iter().all(|x| x.id != ids[0]) && listed.iter().any(|x| x.id == replaced.id));

    let status = s.ic.canister_status(c, Some(s.controller)).unwrap();
    let snapshots_size = u64::try_from(status.memory_metrics.snapshots_size.0).unwrap();
    assert_eq!(
        snapshots_size,
        listed.iter().map(|x| x.total_size).sum::<u64>()
    );
    assert_eq!(s.ic.memory_bytes(c), memory_before + snapshots_size);

    let gone =
        s.ic.delete_canister_snapshot(c, Some(s.controller), ids[0].clone())
            .expect_err("already replaced");
    assert_eq!(gone.code, RejectCode::DestinationInvalid, "{gone:?}");
    s.ic.delete_canister_snapshot(c, Some(s.controller), ids[1].clone())
        .unwrap();
    assert_eq!(
        s.ic.list_canister_snapshots(c, Some(s.controller))
            .unwrap()
            .len(),
        9
    );

    s.ic.stop_canister(c, Some(s.controller)).unwrap();
    s.ic.delete_canister(c, Some(s.controller)).unwrap();
    let err =
        s.ic.list_canister_snapshots(c, Some(s.controller))
            .expect_err("the canister and its snapshots are gone");
    assert_eq!(err.code, RejectCode::DestinationInvalid, "{err:?}");
}

// ---------------------------------------------------------------------------------------
// Chunked install
// ---------------------------------------------------------------------------------------

/// The platform wasm uploaded in 1 MiB chunks and installed by hash; a wrong hash, a
/// missing chunk or an oversized chunk is refused and installs nothing.
#[test]
fn chunked_install_checks_the_module_hash() {
    const MIB: usize = 1024 * 1024;
    let mut s = Setup::new(HarnessBuilder::new(), 1);
    let subnet = s.ic.topology().app_subnets[0];
    let store =
        s.ic.create_canister_on_subnet(Some(s.controller), None, subnet);
    let target =
        s.ic.create_canister_on_subnet(Some(s.controller), None, subnet);
    let wasm = common::platform_wasm();
    assert!(wasm.len() > MIB, "the test needs at least two chunks");

    let too_big =
        s.ic.upload_chunk(store, Some(s.controller), vec![0; MIB + 1])
            .expect_err("chunks are at most 1 MiB");
    assert_eq!(too_big.code, RejectCode::CanisterReject, "{too_big:?}");

    let hashes: Vec<Vec<u8>> = wasm
        .chunks(MIB)
        .map(|chunk| {
            let hash =
                s.ic.upload_chunk(store, Some(s.controller), chunk.to_vec())
                    .expect("upload");
            assert_eq!(hash, Sha256::digest(chunk).to_vec());
            hash
        })
        .collect();
    let module_hash = Sha256::digest(&wasm).to_vec();

    let mut wrong = module_hash.clone();
    wrong[0] ^= 1;
    let mismatch =
        s.ic.install_chunked_canister(
            target,
            Some(s.controller),
            CanisterInstallMode::Install,
            store,
            hashes.clone(),
            wrong,
            no_args(),
        )
        .expect_err("hash mismatch");
    assert!(mismatch.message.contains("does not match"), "{mismatch:?}");
    let missing =
        s.ic.install_chunked_canister(
            target,
            Some(s.controller),
            CanisterInstallMode::Install,
            store,
            vec![hashes[0].clone(), vec![7; 32]],
            module_hash.clone(),
            no_args(),
        )
        .expect_err("missing chunk");
    assert!(
        missing.message.contains("not in the chunk store"),
        "{missing:?}"
    );
    assert_eq!(
        s.ic.canister_status(target, Some(s.controller))
            .unwrap()
            .module_hash,
        None,
        "nothing installed"
    );

    s.ic.install_chunked_canister(
        target,
        Some(s.controller),
        CanisterInstallMode::Install,
        store,
        hashes,
        module_hash.clone(),
        no_args(),
    )
    .expect("chunked install");
    let status = s.ic.canister_status(target, Some(s.controller)).unwrap();
    assert_eq!(status.module_hash, Some(module_hash));
    assert_eq!(s.update1::<u64>(target, "inc_heap", ()), 1);
    let store_status = s.ic.canister_status(store, Some(s.controller)).unwrap();
    assert_eq!(
        store_status.memory_metrics.wasm_chunk_store_size,
        Nat::from(wasm.len())
    );
}

// ---------------------------------------------------------------------------------------
// Cycles minting canister
// ---------------------------------------------------------------------------------------

fn cmc_arg(selection: Option<SubnetSelection>, controllers: Vec<Principal>) -> CreateCanisterArg {
    CreateCanisterArg {
        settings: Some(CmcSettings {
            controllers: Some(controllers),
            ..CmcSettings::default()
        }),
        subnet_type: None,
        subnet_selection: selection,
    }
}

/// A factory canister asks the CMC (mainnet principal and candid) for canisters on a
/// chosen subnet, on a typed subnet and on the default subnets; an unknown subnet or type
/// is refused with the attached cycles refunded less mainnet's 100M penalty.
#[test]
fn cmc_places_canisters_and_refuses_unknown_subnets() {
    const CYCLES: u128 = 2_000_000_000_000;
    const PENALTY: u128 = 100_000_000;
    let builder = HarnessBuilder::new()
        .with_application_subnet()
        .with_application_subnet()
        .with_application_subnet_of_type("fiduciary");
    let mut s = Setup::new(builder, 0);
    let [app0, app1, fiduciary] = s.ic.topology().app_subnets[..] else {
        panic!("three subnets")
    };
    let factory = s.install_on(0, None);

    // Queries, by a user and by a canister.
    let defaults: Vec<Principal> = candid::decode_one(
        &s.ic
            .query_call(CMC_PRINCIPAL, s.user, "get_default_subnets", no_args())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(defaults, vec![app0, app1]);
    assert_eq!(
        s.update1::<Vec<Principal>>(factory, "cmc_default_subnets", ()),
        defaults
    );
    let types: SubnetTypesToSubnetsResponse = candid::decode_one(
        &s.ic
            .query_call(
                CMC_PRINCIPAL,
                s.user,
                "get_subnet_types_to_subnets",
                no_args(),
            )
            .unwrap(),
    )
    .unwrap();
    assert_eq!(types.data, vec![("fiduciary".to_string(), vec![fiduciary])]);

    let controllers = vec![factory, s.controller];
    let before = s.ic.cycle_balance(factory);
    let (placed, refunded): (CreateCanisterResult, Nat) = s.update(
        factory,
        "cmc_create",
        (
            cmc_arg(
                Some(SubnetSelection::Subnet { subnet: app1 }),
                controllers.clone(),
            ),
            Nat::from(CYCLES),
        ),
    );
    let child = placed.expect("created on app1");
    assert_eq!(refunded, Nat::from(0u8));
    assert_eq!(s.ic.get_subnet(child), Some(app1));
    assert_eq!(
        s.ic.cycle_balance(child),
        CYCLES - 500_000_000_000,
        "less the creation fee"
    );
    assert!(s.ic.cycle_balance(factory) < before - CYCLES);
    let status = s.ic.canister_status(child, Some(s.controller)).unwrap();
    assert_eq!(status.settings.controllers, controllers);

    let (typed, _): (CreateCanisterResult, Nat) = s.update(
        factory,
        "cmc_create",
        (
            cmc_arg(
                Some(SubnetSelection::Filter(SubnetFilter {
                    subnet_type: Some("fiduciary".into()),
                })),
                controllers.clone(),
            ),
            Nat::from(CYCLES),
        ),
    );
    assert_eq!(s.ic.get_subnet(typed.unwrap()), Some(fiduciary));

    let (default, _): (CreateCanisterResult, Nat) = s.update(
        factory,
        "cmc_create",
        (cmc_arg(None, controllers.clone()), Nat::from(CYCLES)),
    );
    assert!(defaults.contains(&s.ic.get_subnet(default.unwrap()).unwrap()));

    let unknown = Principal::self_authenticating(b"no such subnet");
    let before = s.ic.cycle_balance(factory);
    let (refused, refunded): (CreateCanisterResult, Nat) = s.update(
        factory,
        "cmc_create",
        (
            cmc_arg(
                Some(SubnetSelection::Subnet { subnet: unknown }),
                controllers.clone(),
            ),
            Nat::from(CYCLES),
        ),
    );
    let Err(CreateCanisterError::Refunded {
        refund_amount,
        create_error,
    }) = refused
    else {
        panic!("an unknown subnet is refused: {refused:?}")
    };
    assert_eq!(refund_amount, Nat::from(CYCLES - PENALTY));
    assert_eq!(refunded, refund_amount, "the refund arrives with the reply");
    assert!(create_error.contains("does not exist"), "{create_error}");
    let spent = before - s.ic.cycle_balance(factory);
    assert!(
        (PENALTY..PENALTY + 200_000_000_000).contains(&spent),
        "spent {spent}"
    );

    let (bad_type, _): (CreateCanisterResult, Nat) = s.update(
        factory,
        "cmc_create",
        (
            cmc_arg(
                Some(SubnetSelection::Filter(SubnetFilter {
                    subnet_type: Some("european".into()),
                })),
                controllers.clone(),
            ),
            Nat::from(CYCLES),
        ),
    );
    assert!(matches!(
        bad_type,
        Err(CreateCanisterError::Refunded { .. })
    ));

    let (poor, refunded): (CreateCanisterResult, Nat) = s.update(
        factory,
        "cmc_create",
        (cmc_arg(None, controllers), Nat::from(1_000u32)),
    );
    assert!(
        matches!(&poor, Err(CreateCanisterError::Refunded { create_error, .. }) if create_error == "Insufficient cycles attached."),
        "{poor:?}"
    );
    assert_eq!(
        refunded,
        Nat::from(1_000u32),
        "refused before any work: full refund"
    );
}

// ---------------------------------------------------------------------------------------
// Fees and freezing
// ---------------------------------------------------------------------------------------

/// A known workload (an ingress `echo`, then a cross-subnet call) costs the caller exactly
/// the fee table: ingress reception and bytes, base fee and instructions per execution,
/// the call fee, request and response bytes; the callee pays its execution.
#[test]
fn balance_falls_by_exactly_the_documented_fees() {
    let mut s = Setup::new(HarnessBuilder::new(), 2);
    let a = s.install_on(0, None);
    let b = s.install_on(1, None);
    let fees = s.ic.fee_schedule().clone();
    // Warm up both (first-call heap growth), then measure.
    let _: ByteBuf = s.update1(a, "echo", (ByteBuf::from(vec![1; 10]),));
    let _: ByteBuf = s.update1(b, "echo", (ByteBuf::from(vec![1; 10]),));

    let a_before = (s.ic.cycle_balance(a), s.ic.metrics(a));
    let b_before = (s.ic.cycle_balance(b), s.ic.metrics(b));

    let echo_arg = Encode!(&ByteBuf::from(vec![7u8; 1_000])).unwrap();
    s.ic.update_call(a, s.user, "echo", echo_arg.clone())
        .unwrap();
    let inner = Encode!(&ByteBuf::from(vec![9u8; 100])).unwrap();
    let call_arg = Encode!(
        &b,
        &"echo",
        &ByteBuf::from(inner.clone()),
        &Nat::from(0u8),
        &true
    )
    .unwrap();
    s.ic.update_call(a, s.user, "call", call_arg.clone())
        .unwrap();

    let a_after = (s.ic.cycle_balance(a), s.ic.metrics(a));
    let b_after = (s.ic.cycle_balance(b), s.ic.metrics(b));
    let (da, db) = (&a_after.1, &b_after.1);

    let executions = da.executions - a_before.1.executions;
    assert_eq!(executions, 3, "echo, call, and the call's reply callback");
    let instructions = u128::from(da.instructions - a_before.1.instructions);
    let ingress = fees.ingress(("echo".len() + echo_arg.len()) as u64)
        + fees.ingress(("call".len() + call_arg.len()) as u64);
    let request_bytes = ("echo".len() + inner.len()) as u128;
    let response_bytes = inner.len() as u128; // the callee echoes its argument
    let storage = da.cycles_burned.storage - a_before.1.cycles_burned.storage;
    let expected = ingress
        + u128::from(executions) * fees.update_message_execution
        + instructions * fees.ten_update_instructions / 10
        + fees.xnet_call
        + fees.xnet_byte_transmission * (request_bytes + response_bytes)
        + storage;
    let spent = a_before.0 - a_after.0;
    assert_eq!(spent, expected, "caller: {:?}", da.cycles_burned);
    assert_eq!(
        da.cycles_burned.ingress - a_before.1.cycles_burned.ingress,
        ingress
    );
    assert_eq!(
        da.cycles_burned.calls - a_before.1.cycles_burned.calls,
        260_000
    );
    assert_eq!(
        da.cycles_burned.bytes - a_before.1.cycles_burned.bytes,
        1_000 * (request_bytes + response_bytes)
    );
    assert_eq!(
        spent,
        da.cycles_burned.total() - a_before.1.cycles_burned.total()
    );

    let b_instructions = u128::from(db.instructions - b_before.1.instructions);
    let b_storage = db.cycles_burned.storage - b_before.1.cycles_burned.storage;
    assert_eq!(
        b_before.0 - b_after.0,
        5_000_000 + b_instructions + b_storage,
        "callee: one execution"
    );
    // The costs the canister sees are the same table.
    let (cost_call, cost_create): (Nat, Nat) =
        s.ic.query_candid(a, s.user, "costs", (4u64, 110u64))
            .unwrap();
    assert_eq!(cost_call, Nat::from(fees.cost_call(4, 110)));
    assert_eq!(
        cost_call,
        Nat::from(fees.call_request(114) + fees.response_reservation())
    );
    assert_eq!(cost_create, Nat::from(500_000_000_000u64));

    println!(
        "known workload: caller paid {spent} cycles (ingress {ingress}, {executions} executions, {instructions} instructions, 1 call, {} bytes, storage {storage}); callee paid {}",
        request_bytes + response_bytes,
        b_before.0 - b_after.0
    );
}

/// Storage is charged per GiB-second of simulated time, on all of the canister's memory.
#[test]
fn storage_is_charged_per_gib_second() {
    let mut s = Setup::new(HarnessBuilder::new(), 1);
    let c = s.install_on(0, None);
    let _: u64 = s.update1(c, "fill_stable", (4_000_000u64, 3u64));
    s.ic.tick();
    let memory = s.ic.memory_bytes(c);
    let before = s.ic.cycle_balance(c);
    s.ic.advance_time(std::time::Duration::from_secs(86_400 - 1));
    s.ic.tick(); // one round adds the last second
    let charged = before - s.ic.cycle_balance(c);
    let day = s.ic.fee_schedule().idle_burn_per_day(memory);
    assert!(
        charged.abs_diff(day) <= 1,
        "charged {charged}, a day costs {day}"
    );
    let status = s.ic.canister_status(c, Some(s.controller)).unwrap();
    assert_eq!(status.idle_cycles_burned_per_day, Nat::from(day));
    println!("storage: {memory} bytes for one day cost {charged} cycles");
}

/// Freezing: a canister whose balance is below its freezing reserve refuses ingress and
/// calls with SYS_TRANSIENT; a call that would dip into the reserve fails in
/// `call_perform` (code 2) with its attached cycles back, and ic-cdk refuses it earlier.
#[test]
fn frozen_canister_refuses_calls_and_calls_cannot_dip_below_the_reserve() {
    let mut s = Setup::new(HarnessBuilder::new(), 1);
    let f = s.install_on(0, None);
    let g = s.install_on(0, None);
    let _: Vec<u32> = s.update1(f, "raw_calls", (g, "inc_heap", 0u32, Nat::from(0u8)));
    s.ic.run_until_idle(100).unwrap();

    let set_threshold = |s: &mut Setup, seconds: u64| {
        s.ic.update_canister_settings(
            f,
            Some(s.controller),
            CanisterSettings {
                freezing_threshold: Some(Nat::from(seconds)),
                ..CanisterSettings::default()
            },
        )
        .unwrap();
    };
    // A threshold whose reserve exceeds the balance freezes the canister.
    set_threshold(&mut s, u64::MAX / 4);
    let refused =
        s.ic.update_call(f, s.user, "inc_heap", no_args())
            .expect_err("ingress to a frozen canister");
    assert_eq!(refused.code, RejectCode::SysTransient, "{refused:?}");
    assert!(refused.message.contains("out of cycles"), "{refused:?}");
    let (outcome, _): (Result<ByteBuf, (u32, String)>, Nat) = s.update(
        g,
        "call",
        (
            f,
            "inc_heap",
            ByteBuf::from(no_args()),
            Nat::from(0u8),
            true,
        ),
    );
    assert_eq!(
        outcome.unwrap_err().0,
        2,
        "a call to a frozen canister: SYS_TRANSIENT"
    );

    // A reserve that leaves 41B liquid: enough to prepay an execution at the instruction
    // limit (40B + 5M), so not frozen, but a call (cost_call ≈ 42.1B) would dip into it.
    // During the execution about 1B is liquid (the prepayment is withdrawn first).
    set_threshold(&mut s, 2_592_000);
    let fees = s.ic.fee_schedule().clone();
    let target_reserve = s.ic.cycle_balance(f) - 41_000_000_000;
    // The reserve is the idle burn (storage and base fee) over the threshold.
    let seconds = target_reserve * 86_400 / fees.idle_burn_per_day(s.ic.memory_bytes(f));
    set_threshold(&mut s, u64::try_from(seconds).unwrap());
    let reserve = s.ic.freezing_reserve(f);
    let liquid = s.ic.cycle_balance(f) - reserve;
    assert!(liquid < fees.cost_call(8, 6) && liquid > fees.execution(40_000_000_000));

    let before = s.ic.cycle_balance(f);
    let codes: Vec<u32> = s.update1(
        f,
        "raw_calls",
        (g, "inc_heap", 1u32, Nat::from(500_000_000u64)),
    );
    assert_eq!(codes, vec![2], "call_perform refuses the call");
    let paid = before - s.ic.cycle_balance(f);
    assert!(
        paid < 500_000_000,
        "attached cycles came back; paid only fees: {paid}"
    );
    let (outcome, _): (Result<ByteBuf, (u32, String)>, Nat) = s.update(
        f,
        "call",
        (
            g,
            "inc_heap",
            ByteBuf::from(no_args()),
            Nat::from(0u8),
            true,
        ),
    );
    assert_eq!(
        outcome.unwrap_err().0,
        0,
        "ic-cdk sees too few liquid cycles first"
    );
    assert_eq!(
        s.update1::<u64>(f, "inc_heap", ()),
        1,
        "not frozen: it still executes"
    );
}

/// `call_perform` returns 2 once 500 requests to one callee are outstanding.
#[test]
fn call_perform_fails_past_500_outstanding_calls_per_pair() {
    let mut s = Setup::new(HarnessBuilder::new(), 2);
    let a = s.install_on(0, None);
    let b = s.install_on(1, None);
    let codes: Vec<u32> = s.update1(a, "raw_calls", (b, "inc_heap", 501u32, Nat::from(0u8)));
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 500);
    assert_eq!(codes[500], 2);
    s.ic.run_until_idle(100).unwrap();
    assert_eq!(s.query1::<u64>(b, "get_heap", ()), 500);
}

// ---------------------------------------------------------------------------------------
// Instruction metering
// ---------------------------------------------------------------------------------------

/// As on the IC, `memory.copy` costs one instruction per byte on top of its 100 (Rust
/// compiles a slice copy to one `memory.copy`; the harness's fuel table,
/// `weights::operator_cost`, charges bulk-memory operators per byte). The counter read
/// itself adds `performance_counter`'s 200 and a few operators.
#[test]
fn bulk_memory_copies_are_charged_per_byte() {
    let mut s = Setup::new(HarnessBuilder::new(), 1);
    let c = s.install_on(0, None);
    let small: u64 = s.update1(c, "copy_cost", (1_000u64,));
    let large: u64 = s.update1(c, "copy_cost", (1_000_000u64,));
    assert_eq!(large - small, 999_000, "exactly one instruction per byte");
    assert!(
        (1_000 + 100 + 200..1_000 + 100 + 200 + 100).contains(&small),
        "1 KB copy: {small}"
    );
}
