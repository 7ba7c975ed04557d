//! One scenario written against [`ic_harness::IcBackend`], run on the in-process harness
//! always, and on a real PocketIC server when the crate is built with `--features
//! pocket-ic` and `POCKET_IC_BIN` points to a PocketIC 16.x server.
//!
//! Build the canisters first: `scripts/build-wasm.sh`.

mod common;

use candid::{Decode, Encode, Principal};
use common::{no_args, platform_wasm};
use ic_harness::{HarnessBuilder, IcBackend, RejectCode};

/// Install, call, snapshot, roll back, stable memory, cycles and lifecycle, on any backend.
fn scenario<B: IcBackend>(ic: &mut B) {
    let admin = Principal::self_authenticating(b"backend scenario admin");
    let subnet = ic.app_subnets()[0];
    let c = ic.create_canister_on_subnet(Some(admin), None, subnet);
    assert_eq!(ic.get_subnet(c), Some(subnet));
    ic.install_canister(c, platform_wasm(), no_args(), Some(admin));

    let inc = |ic: &mut B| -> u64 {
        Decode!(
            &ic.update_call(c, admin, "inc_heap", no_args()).unwrap(),
            u64
        )
        .unwrap()
    };
    let heap = |ic: &mut B| -> u64 {
        Decode!(
            &ic.query_call(c, admin, "get_heap", no_args()).unwrap(),
            u64
        )
        .unwrap()
    };
    assert_eq!(inc(ic), 1);
    let id = ic.submit_call(c, admin, "inc_heap", no_args()).unwrap();
    assert_eq!(Decode!(&ic.await_call(id).unwrap(), u64).unwrap(), 2);

    let filled = ic
        .update_call(
            c,
            admin,
            "fill_stable",
            Encode!(&100_000u64, &5u64).unwrap(),
        )
        .unwrap();
    assert_eq!(Decode!(&filled, u64).unwrap(), 131_072);
    let stable = ic.get_stable_memory(c);

    let snapshot = ic.take_canister_snapshot(c, Some(admin), None).unwrap();
    assert_eq!(inc(ic), 3);
    ic.set_stable_memory(c, vec![1; 65_536]);
    ic.stop_canister(c, Some(admin)).unwrap();
    ic.load_canister_snapshot(c, Some(admin), snapshot.id.clone())
        .unwrap();
    ic.start_canister(c, Some(admin)).unwrap();
    assert_eq!(heap(ic), 2, "the heap rolled back");
    assert_eq!(ic.get_stable_memory(c), stable, "stable memory rolled back");
    assert_eq!(ic.list_canister_snapshots(c, Some(admin)).unwrap().len(), 1);
    ic.delete_canister_snapshot(c, Some(admin), snapshot.id)
        .unwrap();

    let t0 = ic.time_nanos();
    ic.advance_time(std::time::Duration::from_secs(10));
    ic.tick();
    assert!(ic.time_nanos() >= t0 + 10_000_000_000);

    let balance = ic.cycle_balance(c);
    assert!(ic.add_cycles(c, 1_000) >= balance);
    let status = ic.canister_status(c, Some(admin)).unwrap();
    assert_eq!(status.settings.controllers, vec![admin]);

    let upgraded = ic.upgrade_canister(c, platform_wasm(), no_args(), Some(admin));
    assert!(upgraded.is_ok(), "{upgraded:?}");
    assert_eq!(heap(ic), 0, "an upgrade starts a fresh heap");
    let stranger = Principal::self_authenticating(b"stranger");
    let denied = ic.stop_canister(c, Some(stranger)).unwrap_err();
    assert_eq!(denied.code, RejectCode::CanisterError, "{denied:?}");
    ic.stop_canister(c, Some(admin)).unwrap();
    ic.delete_canister(c, Some(admin)).unwrap();
}

#[test]
fn scenario_on_the_in_process_harness() {
    let mut ic = HarnessBuilder::new().with_application_subnet().build();
    scenario(&mut ic);
}

#[cfg(feature = "pocket-ic")]
#[test]
fn scenario_on_pocket_ic() {
    if std::env::var_os("POCKET_IC_BIN").is_none() {
        println!("skipped: POCKET_IC_BIN is not set (see the README to run on a PocketIC server)");
        return;
    }
    let mut ic = pocket_ic::PocketIcBuilder::new()
        .with_application_subnet()
        .build();
    scenario(&mut ic);
}

#[cfg(not(feature = "pocket-ic"))]
#[test]
fn scenario_on_pocket_ic() {
    println!(
        "skipped: built without the `pocket-ic` feature (cargo test -p ic-harness --features pocket-ic --test backend, with POCKET_IC_BIN set)"
    );
}
