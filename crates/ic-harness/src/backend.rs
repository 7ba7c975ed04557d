//! The scenario-facing API as a trait, so one scenario runs on the in-process [`Harness`]
//! and on a real PocketIC server (`pocket_ic::PocketIc`, behind the cargo feature
//! `pocket-ic`).
//!
//! Types are ic-harness's (`Reject`, and `ic-management-canister-types` 0.7's
//! `CanisterSettings`, `CanisterStatusResult` and `Snapshot`); the PocketIC
//! implementation converts (pocket-ic 16 uses the 0.8 types: converted through their
//! candid encoding, which both versions share for these records).
//!
//! Everything here is PocketIC-shaped: methods, argument order and `Option<Principal>`
//! senders (`None` is the anonymous principal) follow `pocket_ic::PocketIc`.

use std::time::Duration;

use candid::Principal;
use ic_management_canister_types::{CanisterSettings, CanisterStatusResult, Snapshot};

use crate::Harness;
use crate::types::{CanisterId, MessageId, Reject, SubnetId};

/// An Internet Computer that scenario tests drive: the in-process [`Harness`], or a
/// PocketIC instance (feature `pocket-ic`).
pub trait IcBackend {
    /// Identifies a submitted ingress message.
    type MessageId: Clone;

    /// The application subnets, in creation order.
    fn app_subnets(&self) -> Vec<SubnetId>;
    /// The subnet hosting `canister`.
    fn get_subnet(&self, canister: CanisterId) -> Option<SubnetId>;
    /// Creates an empty canister on `subnet` (100T cycles, like PocketIC).
    fn create_canister_on_subnet(
        &mut self,
        sender: Option<Principal>,
        settings: Option<CanisterSettings>,
        subnet: SubnetId,
    ) -> CanisterId;
    /// Installs `wasm`; panics on failure (like PocketIC).
    fn install_canister(
        &mut self,
        canister: CanisterId,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    );
    /// Upgrades the canister.
    ///
    /// # Errors
    /// The management canister's reject.
    fn upgrade_canister(
        &mut self,
        canister: CanisterId,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), Reject>;
    /// Reinstalls the canister.
    ///
    /// # Errors
    /// The management canister's reject.
    fn reinstall_canister(
        &mut self,
        canister: CanisterId,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), Reject>;
    /// An ingress update call, awaited.
    ///
    /// # Errors
    /// The call's reject.
    fn update_call(
        &mut self,
        canister: CanisterId,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, Reject>;
    /// An ingress query.
    ///
    /// # Errors
    /// The call's reject.
    fn query_call(
        &mut self,
        canister: CanisterId,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, Reject>;
    /// Submits an ingress update call without waiting.
    ///
    /// # Errors
    /// The ingress was refused before execution.
    fn submit_call(
        &mut self,
        canister: CanisterId,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Self::MessageId, Reject>;
    /// Executes rounds until the submitted call `id` is answered.
    ///
    /// # Errors
    /// The call's reject.
    fn await_call(&mut self, id: Self::MessageId) -> Result<Vec<u8>, Reject>;
    /// One round.
    fn tick(&mut self);
    /// Moves time forward without executing anything.
    fn advance_time(&mut self, duration: Duration);
    /// The current time, nanoseconds since the epoch.
    fn time_nanos(&self) -> u64;
    /// The canister's stable memory.
    fn get_stable_memory(&self, canister: CanisterId) -> Vec<u8>;
    /// Replaces the canister's stable memory.
    fn set_stable_memory(&mut self, canister: CanisterId, data: Vec<u8>);
    /// The canister's cycle balance.
    fn cycle_balance(&self, canister: CanisterId) -> u128;
    /// Adds cycles; returns the new balance.
    fn add_cycles(&mut self, canister: CanisterId, amount: u128) -> u128;
    /// Stops the canister (waits until stopped).
    ///
    /// # Errors
    /// The management canister's reject.
    fn stop_canister(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<(), Reject>;
    /// Starts the canister.
    ///
    /// # Errors
    /// The management canister's reject.
    fn start_canister(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<(), Reject>;
    /// Deletes a stopped canister.
    ///
    /// # Errors
    /// The management canister's reject.
    fn delete_canister(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<(), Reject>;
    /// `canister_status`.
    ///
    /// # Errors
    /// The management canister's reject.
    fn canister_status(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<CanisterStatusResult, Reject>;
    /// Takes a native snapshot.
    ///
    /// # Errors
    /// The management canister's reject.
    fn take_canister_snapshot(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
        replace_snapshot: Option<Vec<u8>>,
    ) -> Result<Snapshot, Reject>;
    /// Loads a native snapshot.
    ///
    /// # Errors
    /// The management canister's reject.
    fn load_canister_snapshot(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
        snapshot_id: Vec<u8>,
    ) -> Result<(), Reject>;
    /// Lists native snapshots.
    ///
    /// # Errors
    /// The management canister's reject.
    fn list_canister_snapshots(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<Vec<Snapshot>, Reject>;
    /// Deletes a native snapshot.
    ///
    /// # Errors
    /// The management canister's reject.
    fn delete_canister_snapshot(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
        snapshot_id: Vec<u8>,
    ) -> Result<(), Reject>;
}

impl IcBackend for Harness {
    type MessageId = MessageId;

    fn app_subnets(&self) -> Vec<SubnetId> {
        self.topology().app_subnets
    }
    fn get_subnet(&self, canister: CanisterId) -> Option<SubnetId> {
        Harness::get_subnet(self, canister)
    }
    fn create_canister_on_subnet(
        &mut self,
        sender: Option<Principal>,
        settings: Option<CanisterSettings>,
        subnet: SubnetId,
    ) -> CanisterId {
        Harness::create_canister_on_subnet(self, sender, settings, subnet)
    }
    fn install_canister(
        &mut self,
        canister: CanisterId,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) {
        Harness::install_canister(self, canister, wasm, arg, sender);
    }
    fn upgrade_canister(
        &mut self,
        canister: CanisterId,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), Reject> {
        Harness::upgrade_canister(self, canister, wasm, arg, sender)
    }
    fn reinstall_canister(
        &mut self,
        canister: CanisterId,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), Reject> {
        Harness::reinstall_canister(self, canister, wasm, arg, sender)
    }
    fn update_call(
        &mut self,
        canister: CanisterId,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, Reject> {
        Harness::update_call(self, canister, sender, method, arg)
    }
    fn query_call(
        &mut self,
        canister: CanisterId,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, Reject> {
        Harness::query_call(self, canister, sender, method, arg)
    }
    fn submit_call(
        &mut self,
        canister: CanisterId,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<MessageId, Reject> {
        Harness::submit_call(self, canister, sender, method, arg)
    }
    fn await_call(&mut self, id: MessageId) -> Result<Vec<u8>, Reject> {
        Harness::await_call(self, id)
    }
    fn tick(&mut self) {
        Harness::tick(self);
    }
    fn advance_time(&mut self, duration: Duration) {
        Harness::advance_time(self, duration);
    }
    fn time_nanos(&self) -> u64 {
        Harness::time_nanos(self)
    }
    fn get_stable_memory(&self, canister: CanisterId) -> Vec<u8> {
        Harness::get_stable_memory(self, canister)
    }
    fn set_stable_memory(&mut self, canister: CanisterId, data: Vec<u8>) {
        Harness::set_stable_memory(self, canister, data);
    }
    fn cycle_balance(&self, canister: CanisterId) -> u128 {
        Harness::cycle_balance(self, canister)
    }
    fn add_cycles(&mut self, canister: CanisterId, amount: u128) -> u128 {
        Harness::add_cycles(self, canister, amount)
    }
    fn stop_canister(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<(), Reject> {
        Harness::stop_canister(self, canister, sender)
    }
    fn start_canister(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<(), Reject> {
        Harness::start_canister(self, canister, sender)
    }
    fn delete_canister(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<(), Reject> {
        Harness::delete_canister(self, canister, sender)
    }
    fn canister_status(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<CanisterStatusResult, Reject> {
        Harness::canister_status(self, canister, sender)
    }
    fn take_canister_snapshot(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
        replace_snapshot: Option<Vec<u8>>,
    ) -> Result<Snapshot, Reject> {
        Harness::take_canister_snapshot(self, canister, sender, replace_snapshot)
    }
    fn load_canister_snapshot(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
        snapshot_id: Vec<u8>,
    ) -> Result<(), Reject> {
        Harness::load_canister_snapshot(self, canister, sender, snapshot_id)
    }
    fn list_canister_snapshots(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<Vec<Snapshot>, Reject> {
        Harness::list_canister_snapshots(self, canister, sender)
    }
    fn delete_canister_snapshot(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
        snapshot_id: Vec<u8>,
    ) -> Result<(), Reject> {
        Harness::delete_canister_snapshot(self, canister, sender, snapshot_id)
    }
}

#[cfg(feature = "pocket-ic")]
mod pocket;
