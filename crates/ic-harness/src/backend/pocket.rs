//! [`IcBackend`] on a real PocketIC server through the `pocket-ic` client crate.
//!
//! Build with `--features pocket-ic`; run where `POCKET_IC_BIN` points to a PocketIC
//! server 16.x (see the README). Rejects keep their code and message; management types
//! cross from `ic-management-canister-types` 0.7 to pocket-ic's 0.8 and back through
//! their candid encoding.

use std::time::Duration;

use candid::Principal;
use ic_management_canister_types::{CanisterSettings, CanisterStatusResult, Snapshot};
use pocket_ic::common::rest::{BlobCompression, RawMessageId};
use pocket_ic::{PocketIc, RejectResponse};

use super::IcBackend;
use crate::types::{CanisterId, Reject, RejectCode, SubnetId};

/// Converts between two candid-compatible types (the same record in two crate versions).
///
/// # Panics
/// If the encodings disagree, which would be a version mismatch worth failing loudly on.
fn convert<A: candid::CandidType, B: for<'de> candid::Deserialize<'de> + candid::CandidType>(
    a: &A,
) -> B {
    let bytes = candid::encode_one(a).expect("candid encodes");
    candid::decode_one(&bytes).expect("the 0.7 and 0.8 management types share their candid")
}

fn reject(r: RejectResponse) -> Reject {
    let code = RejectCode::from_u32(r.reject_code as u32).unwrap_or(RejectCode::SysFatal);
    Reject::new(code, r.reject_message)
}

impl IcBackend for PocketIc {
    type MessageId = RawMessageId;

    fn app_subnets(&self) -> Vec<SubnetId> {
        self.topology().get_app_subnets()
    }
    fn get_subnet(&self, canister: CanisterId) -> Option<SubnetId> {
        PocketIc::get_subnet(self, canister)
    }
    fn create_canister_on_subnet(
        &mut self,
        sender: Option<Principal>,
        settings: Option<CanisterSettings>,
        subnet: SubnetId,
    ) -> CanisterId {
        let settings = settings.as_ref().map(convert);
        PocketIc::create_canister_on_subnet(self, sender, settings, subnet)
    }
    fn install_canister(
        &mut self,
        canister: CanisterId,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) {
        PocketIc::install_canister(self, canister, wasm, arg, sender);
    }
    fn upgrade_canister(
        &mut self,
        canister: CanisterId,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), Reject> {
        PocketIc::upgrade_canister(self, canister, wasm, arg, sender).map_err(reject)
    }
    fn reinstall_canister(
        &mut self,
        canister: CanisterId,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), Reject> {
        PocketIc::reinstall_canister(self, canister, wasm, arg, sender).map_err(reject)
    }
    fn update_call(
        &mut self,
        canister: CanisterId,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, Reject> {
        PocketIc::update_call(self, canister, sender, method, arg).map_err(reject)
    }
    fn query_call(
        &mut self,
        canister: CanisterId,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, Reject> {
        PocketIc::query_call(self, canister, sender, method, arg).map_err(reject)
    }
    fn submit_call(
        &mut self,
        canister: CanisterId,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<RawMessageId, Reject> {
        PocketIc::submit_call(self, canister, sender, method, arg).map_err(reject)
    }
    fn await_call(&mut self, id: RawMessageId) -> Result<Vec<u8>, Reject> {
        PocketIc::await_call(self, id).map_err(reject)
    }
    fn tick(&mut self) {
        PocketIc::tick(self);
    }
    fn advance_time(&mut self, duration: Duration) {
        PocketIc::advance_time(self, duration);
    }
    fn time_nanos(&self) -> u64 {
        self.get_time().as_nanos_since_unix_epoch()
    }
    fn get_stable_memory(&self, canister: CanisterId) -> Vec<u8> {
        PocketIc::get_stable_memory(self, canister)
    }
    fn set_stable_memory(&mut self, canister: CanisterId, data: Vec<u8>) {
        PocketIc::set_stable_memory(self, canister, data, BlobCompression::NoCompression);
    }
    fn cycle_balance(&self, canister: CanisterId) -> u128 {
        PocketIc::cycle_balance(self, canister)
    }
    fn add_cycles(&mut self, canister: CanisterId, amount: u128) -> u128 {
        PocketIc::add_cycles(self, canister, amount)
    }
    fn stop_canister(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<(), Reject> {
        PocketIc::stop_canister(self, canister, sender).map_err(reject)
    }
    fn start_canister(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<(), Reject> {
        PocketIc::start_canister(self, canister, sender).map_err(reject)
    }
    fn delete_canister(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<(), Reject> {
        PocketIc::delete_canister(self, canister, sender).map_err(reject)
    }
    fn canister_status(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<CanisterStatusResult, Reject> {
        PocketIc::canister_status(self, canister, sender)
            .map(|s| convert(&s))
            .map_err(reject)
    }
    fn take_canister_snapshot(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
        replace_snapshot: Option<Vec<u8>>,
    ) -> Result<Snapshot, Reject> {
        PocketIc::take_canister_snapshot(self, canister, sender, replace_snapshot)
            .map(|s| convert(&s))
            .map_err(reject)
    }
    fn load_canister_snapshot(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
        snapshot_id: Vec<u8>,
    ) -> Result<(), Reject> {
        PocketIc::load_canister_snapshot(self, canister, sender, snapshot_id).map_err(reject)
    }
    fn list_canister_snapshots(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<Vec<Snapshot>, Reject> {
        PocketIc::list_canister_snapshots(self, canister, sender)
            .map(|v| v.iter().map(convert).collect())
            .map_err(reject)
    }
    fn delete_canister_snapshot(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
        snapshot_id: Vec<u8>,
    ) -> Result<(), Reject> {
        PocketIc::delete_canister_snapshot(self, canister, sender, snapshot_id).map_err(reject)
    }
}
