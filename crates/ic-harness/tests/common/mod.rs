//! Shared setup of the platform, fault and backend test binaries.

#![allow(dead_code)] // each test binary uses a different part

use std::sync::OnceLock;

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Encode, Principal};
use ic_harness::{CanisterId, Harness, HarnessBuilder, load_canister_wasm};
use ic_management_canister_types::CanisterSettings;
use serde::de::DeserializeOwned;

/// The platform test canister (`test-canisters/platform`).
pub const PLATFORM: &str = "harness_platform_canister";

/// The platform canister's module, read once per test binary.
pub fn platform_wasm() -> Vec<u8> {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| load_canister_wasm(PLATFORM)).clone()
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
    /// `builder` plus `subnets` more application subnets.
    pub fn new(mut builder: HarnessBuilder, subnets: usize) -> Self {
        for _ in 0..subnets {
            builder = builder.with_application_subnet();
        }
        Self {
            ic: builder.build(),
            controller: Principal::self_authenticating(b"platform controller"),
            user: Principal::self_authenticating(b"platform user"),
        }
    }

    /// Creates a canister on the `subnet`-th subnet (controllers: `controllers`, else the
    /// controller) and installs the platform canister.
    pub fn install_on(&mut self, subnet: usize, controllers: Option<Vec<Principal>>) -> CanisterId {
        let subnet_id = self.ic.topology().app_subnets[subnet];
        let settings = controllers.map(|c| CanisterSettings {
            controllers: Some(c),
            ..CanisterSettings::default()
        });
        let id = self
            .ic
            .create_canister_on_subnet(Some(self.controller), settings, subnet_id);
        self.ic
            .install_canister(id, platform_wasm(), no_args(), Some(self.controller));
        id
    }

    /// An ingress update from the user that must succeed; several return values.
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

    /// An ingress update from the user that must succeed; one return value.
    pub fn update1<R: CandidType + DeserializeOwned>(
        &mut self,
        canister: CanisterId,
        method: &str,
        args: impl ArgumentEncoder,
    ) -> R {
        self.update::<_, (R,)>(canister, method, args).0
    }

    /// An ingress query from the user that must succeed; one return value.
    pub fn query1<R: CandidType + DeserializeOwned>(
        &mut self,
        canister: CanisterId,
        method: &str,
        args: impl ArgumentEncoder,
    ) -> R {
        self.ic
            .query_candid::<_, (R,)>(canister, self.user, method, args)
            .unwrap_or_else(|e| panic!("query {method} on {canister} failed: {e:?}"))
            .0
    }
}
