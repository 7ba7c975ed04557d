//! Endpoint arguments are decoded within `canvault_protocol::decode`'s quotas on real
//! wasm (issue #10, finding 12): the vault, the factory and the kit's endpoints in the
//! example app refuse, before the method runs, a message whose candid header declares
//! more types than any canvault message needs (`MAX_TYPE_TABLE_LEN`), which ic-cdk's
//! default decoding accepts; the same argument with a plain header is answered. The
//! decoding-work quota itself is covered by `crates/protocol` (`decode::tests`,
//! `tests/fuzz_candid.rs`); this file proves the endpoints use that configuration.
//! Build the wasm first: `scripts/build-wasm.sh`.

use candid::{Encode, Principal};
use canvault_factory_api::FactoryInit;
use canvault_protocol::decode::MAX_TYPE_TABLE_LEN;
use canvault_scenarios::app::AppScenario;
use canvault_scenarios::{install, principal};
use ic_harness::Harness;

/// A one-`nat64` argument whose type table also declares `extra` unused empty records.
fn nat64_with_extra_types(value: u64, extra: usize) -> Vec<u8> {
    let mut out = b"DIDL".to_vec();
    leb128(&mut out, extra as u64);
    for _ in 0..extra {
        out.extend_from_slice(&[0x6c, 0x00]);
    }
    out.extend_from_slice(&[0x01, 0x78]);
    out.extend_from_slice(&value.to_le_bytes());
    out
}

fn leb128(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// `method(nat64)` on `canister` is answered with a plain header and refused, with the
/// decoder's reason, when the header declares too many types.
fn assert_refuses_an_oversized_type_table(
    ic: &mut Harness,
    canister: Principal,
    caller: Principal,
    method: &str,
    query: bool,
) {
    let mut call = |arg: Vec<u8>| {
        if query {
            ic.query_call(canister, caller, method, arg)
        } else {
            ic.update_call(canister, caller, method, arg)
        }
    };
    let plain = nat64_with_extra_types(7, 0);
    assert_eq!(
        plain,
        Encode!(&7u64).unwrap(),
        "the plain header is candid's"
    );
    call(plain).unwrap_or_else(|e| panic!("{method} answers a plain argument: {e:?}"));
    let ok = call(nat64_with_extra_types(7, MAX_TYPE_TABLE_LEN - 1));
    ok.unwrap_or_else(|e| panic!("{method} answers a header within the bound: {e:?}"));
    let refused = call(nat64_with_extra_types(7, MAX_TYPE_TABLE_LEN + 1))
        .expect_err("a header past the bound is refused before the method runs");
    assert!(
        refused.message.contains("argument refused"),
        "{method}: {}",
        refused.message
    );
}

#[test]
fn endpoints_decode_arguments_within_the_protocol_quotas() {
    let mut s = AppScenario::new();
    let (vault, app, admin) = (s.vault, s.app, s.admin);
    // The vault: a reader's query and an owner's update.
    assert_refuses_an_oversized_type_table(&mut s.ic, vault, admin, "get_snapshot", true);
    assert_refuses_an_oversized_type_table(&mut s.ic, vault, admin, "restore_status", true);
    // The kit's endpoint in the example app, called by the vault it armed.
    let arm = canvault_kit::ArmRestoreRequest {
        vault,
        snapshot_id: 7,
        expected_root: None,
    };
    let (armed,): (Result<(), canvault_kit::KitError>,) =
        s.ic.update_candid(app, admin, "canvault_arm_restore", (arm,))
            .unwrap();
    armed.unwrap();
    assert_refuses_an_oversized_type_table(&mut s.ic, app, vault, "canvault_restore_finish", false);
    // The factory.
    let factory_admin = principal("factory admin");
    let init = FactoryInit {
        admins: vec![factory_admin],
        config: None,
    };
    let factory = install(
        &mut s.ic,
        1,
        "canvault_factory",
        Encode!(&init).unwrap(),
        factory_admin,
    );
    assert_refuses_an_oversized_type_table(
        &mut s.ic,
        factory,
        factory_admin,
        "get_deployment",
        true,
    );
}
