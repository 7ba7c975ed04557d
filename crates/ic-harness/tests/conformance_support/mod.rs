//! Shared setup of the test binaries that run the conformance canister
//! (`test-canisters/conformance`) outside `conformance.rs`: `inspect_message.rs` and
//! `system_faults.rs`.

#![allow(dead_code)] // each test binary uses a different part

use std::sync::OnceLock;

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{Encode, Principal};
use ic_harness::{CanisterId, Harness, HarnessBuilder, Reject, RejectCode, load_canister_wasm};

/// What the canister's calling endpoints answer: reply bytes, or (reject code, message).
pub type CallResult = Result<Vec<u8>, (u32, String)>;

/// The conformance canister's module, read once per test binary.
pub fn wasm() -> Vec<u8> {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| load_canister_wasm("harness_conformance_canister"))
        .clone()
}

/// Candid `()`.
pub fn no_args() -> Vec<u8> {
    Encode!().expect("encode ()")
}

/// A harness, a controller and a (non-controller) user.
pub struct Setup {
    pub ic: Harness,
    pub controller: Principal,
    pub user: Principal,
}

impl Setup {
    /// `builder` plus `subnets` application subnets.
    pub fn new(mut builder: HarnessBuilder, subnets: usize) -> Self {
        for _ in 0..subnets {
            builder = builder.with_application_subnet();
        }
        Self {
            ic: builder.build(),
            controller: Principal::self_authenticating(b"conformance controller"),
            user: Principal::self_authenticating(b"conformance user"),
        }
    }

    /// Creates a canister on the `subnet`-th subnet and installs the conformance canister.
    pub fn install_on(&mut self, subnet: usize) -> CanisterId {
        let subnet_id = self.ic.topology().app_subnets[subnet];
        let id = self
            .ic
            .create_canister_on_subnet(Some(self.controller), None, subnet_id);
        self.ic
            .install_canister(id, wasm(), no_args(), Some(self.controller));
        id
    }

    /// An ingress update from the user that must succeed.
    pub fn update<A: ArgumentEncoder, R: for<'de> ArgumentDecoder<'de>>(
        &mut self,
        canister: CanisterId,
        method: &str,
        args: A,
    ) -> R {
        self.ic
            .update_candid(canister, self.user, method, args)
            .unwrap_or_else(|e| panic!("update {method} on {canister} failed: {e:?}"))
    }

    /// An ingress update from the user that must be rejected.
    pub fn update_reject<A: ArgumentEncoder>(
        &mut self,
        canister: CanisterId,
        method: &str,
        args: A,
    ) -> Reject {
        let arg = candid::encode_args(args).expect("encode args");
        match self.ic.update_call(canister, self.user, method, arg) {
            Ok(reply) => panic!("update {method} on {canister} must be rejected, got {reply:?}"),
            Err(reject) => reject,
        }
    }

    /// An ingress query from the user that must succeed.
    pub fn query<A: ArgumentEncoder, R: for<'de> ArgumentDecoder<'de>>(
        &mut self,
        canister: CanisterId,
        method: &str,
        args: A,
    ) -> R {
        self.ic
            .query_candid(canister, self.user, method, args)
            .unwrap_or_else(|e| panic!("query {method} on {canister} failed: {e:?}"))
    }

    /// The canister's heap counter.
    pub fn heap(&mut self, canister: CanisterId) -> u64 {
        self.query::<_, (u64,)>(canister, "get_heap", ()).0
    }
}

/// Checks the reject's code and that its message contains `needle`.
pub fn assert_reject(reject: &Reject, code: RejectCode, needle: &str) {
    assert_eq!(reject.code, code, "unexpected reject: {reject:?}");
    assert!(
        reject.message.contains(needle),
        "reject message should mention {needle:?}: {reject:?}"
    );
}

/// Checks a canister-side `CallResult` error's code and that its message contains `needle`.
pub fn assert_call_err(result: &CallResult, code: RejectCode, needle: &str) {
    match result {
        Err((c, msg)) => {
            assert_eq!(*c, code.as_u32(), "unexpected reject: {result:?}");
            assert!(
                msg.contains(needle),
                "reject message should mention {needle:?}: {msg}"
            );
        }
        Ok(bytes) => panic!(
            "expected a {code:?} reject, got a reply of {} bytes",
            bytes.len()
        ),
    }
}
