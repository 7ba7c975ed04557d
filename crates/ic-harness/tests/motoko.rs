//! A real Motoko canister in the harness: `test-canisters/motoko/store.mo`, compiled by
//! moc from the `motoko` npm package (4.10.0) with its default settings, i.e. a
//! `persistent actor` with enhanced orthogonal persistence and a 64-bit heap.
//!
//! `test-canisters/motoko/moc.js` installs the package into `<target>/motoko` on first
//! use and caches the module there, keyed by a hash of the source, so only the first run
//! pays for npm and moc. The test is skipped, with a message, only when `npm` is missing.
//! It also needs the platform canister: `scripts/build-wasm.sh`.

mod common;

use candid::Nat;
use common::Setup;
use ic_harness::{HarnessBuilder, RejectCode};
use ic_management_canister_types::{UpgradeFlags, WasmMemoryPersistence};
use serde_bytes::ByteBuf;

/// The compiled store canister, or `None` (with a message) when npm is not installed.
fn store_wasm() -> Option<Vec<u8>> {
    ic_harness::motoko::compile(std::path::Path::new(ic_harness::motoko::STORE_SOURCE))
}

fn nat(n: u64) -> Nat {
    Nat::from(n)
}

fn flags(persistence: Option<WasmMemoryPersistence>) -> UpgradeFlags {
    UpgradeFlags {
        skip_pre_upgrade: None,
        wasm_memory_persistence: persistence,
    }
}

#[test]
fn motoko_persistent_actor_upgrades_with_keep_and_moves_to_another_subnet() {
    let Some(wasm) = store_wasm() else { return };
    let prepared = ic_harness::module::prepare(&wasm).expect("moc's module is a valid canister");
    assert!(prepared.memory64, "moc's default output is a 64-bit module");
    assert!(prepared.enhanced_orthogonal_persistence);

    let mut s = Setup::new(HarnessBuilder::new(), 2);
    // A copier on subnet 1 that controls both the Motoko canister (subnet 0) and the target.
    let copier = s.install_on(1, None);
    let subnet0 = s.ic.topology().app_subnets[0];
    let subnet1 = s.ic.topology().app_subnets[1];
    let both = ic_management_canister_types::CanisterSettings {
        controllers: Some(vec![s.controller, copier]),
        ..Default::default()
    };
    let store =
        s.ic.create_canister_on_subnet(Some(s.controller), Some(both.clone()), subnet0);
    let no_args = candid::encode_args(()).expect("encode ()");
    s.ic.install_canister(store, wasm.clone(), no_args.clone(), Some(s.controller));

    assert_eq!(s.update1::<Nat>(store, "put", ("alpha", nat(1))), nat(1));
    assert_eq!(s.update1::<Nat>(store, "put", ("beta", nat(2))), nat(2));
    let counters = |s: &mut Setup, c| {
        s.ic.query_candid::<_, (Nat, Nat, Nat)>(c, s.user, "counters", ())
            .expect("counters")
    };
    assert_eq!(counters(&mut s, store), (nat(2), nat(2), nat(2)));

    // Without the option, the replica refuses to upgrade an EOP canister.
    let refused =
        s.ic.upgrade_canister_with_flags(
            store,
            wasm.clone(),
            no_args.clone(),
            Some(s.controller),
            flags(None),
        )
        .expect_err("EOP needs wasm_memory_persistence");
    assert_eq!(refused.code, RejectCode::CanisterError);
    assert!(
        refused.message.contains("Missing upgrade option"),
        "{refused}"
    );
    assert_eq!(counters(&mut s, store), (nat(2), nat(2), nat(2)));

    // keep: stable state stays, the transient counter starts again at 0.
    s.ic.upgrade_canister_with_flags(
        store,
        wasm.clone(),
        no_args.clone(),
        Some(s.controller),
        flags(Some(WasmMemoryPersistence::Keep)),
    )
    .expect("keep upgrade");
    assert_eq!(counters(&mut s, store), (nat(2), nat(0), nat(2)));
    assert_eq!(
        s.query1::<Option<Nat>>(store, "get", ("alpha",)),
        Some(nat(1))
    );
    assert_eq!(s.update1::<Nat>(store, "put", ("gamma", nat(3))), nat(3));
    assert_eq!(counters(&mut s, store), (nat(3), nat(1), nat(3)));

    // A native snapshot, copied by the canister on subnet 1 through the download/upload
    // methods, loaded into a canister there: the copy answers the same queries.
    let snapshot =
        s.ic.take_canister_snapshot(store, Some(s.controller), None)
            .expect("take");
    let target =
        s.ic.create_canister_on_subnet(Some(s.controller), Some(both), subnet1);
    let (copy, _reads): (ByteBuf, u32) = s.update(
        copier,
        "copy_snapshot",
        (store, ByteBuf::from(snapshot.id), target),
    );
    s.ic.load_canister_snapshot(target, Some(s.controller), copy.into_vec())
        .expect("load the copy");
    assert_eq!(s.ic.get_subnet(target), Some(subnet1));
    assert_eq!(counters(&mut s, target), (nat(3), nat(1), nat(3)));
    for (key, value) in [
        ("alpha", Some(1)),
        ("beta", Some(2)),
        ("gamma", Some(3)),
        ("delta", None),
    ] {
        assert_eq!(
            s.query1::<Option<Nat>>(target, "get", (key,)),
            value.map(nat),
            "{key}"
        );
    }
    // The copy is a live Motoko canister: it writes, and upgrades with keep in turn.
    assert_eq!(s.update1::<Nat>(target, "put", ("delta", nat(4))), nat(4));
    s.ic.upgrade_canister_with_flags(
        target,
        wasm,
        no_args,
        Some(s.controller),
        flags(Some(WasmMemoryPersistence::Keep)),
    )
    .expect("keep upgrade of the copy");
    assert_eq!(counters(&mut s, target), (nat(4), nat(0), nat(4)));
    // The source is untouched by all this.
    assert_eq!(counters(&mut s, store), (nat(3), nat(1), nat(3)));
}
