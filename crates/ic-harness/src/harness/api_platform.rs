//! Test-facing wrappers of the platform methods (snapshots, chunked install), named and
//! typed like PocketIC's. Each one is an ingress call to the management canister, so
//! routing, fees (ingress charged to the canister acted on) and faults apply as for any
//! user call.

use candid::Principal;
use candid::utils::ArgumentDecoder;
use ic_management_canister_types::{
    CanisterIdRecord, CanisterInstallMode, ChunkHash, DeleteCanisterSnapshotArgs,
    InstallChunkedCodeArgs, LoadCanisterSnapshotArgs, Snapshot, TakeCanisterSnapshotArgs,
    UploadChunkArgs,
};

use super::Harness;
use crate::types::{CallError, CanisterId, Reject};

/// The reject of a call whose reply did not decode (a harness bug, reported as a reject).
fn undecodable(method: &str, e: &CallError) -> Reject {
    Reject::new(
        crate::types::RejectCode::CanisterError,
        format!("the reply of management method {method} did not decode: {e}"),
    )
}

impl Harness {
    /// An ingress call to the management canister from `sender` (anonymous when `None`),
    /// with a candid argument and reply.
    ///
    /// # Errors
    /// The management canister's reject, or a candid failure.
    pub fn management_update<A, R>(
        &mut self,
        sender: Option<Principal>,
        method: &str,
        arg: &A,
    ) -> Result<R, CallError>
    where
        A: candid::CandidType,
        R: for<'de> ArgumentDecoder<'de>,
    {
        let bytes = candid::encode_one(arg).map_err(|e| CallError::Candid(e.to_string()))?;
        let reply = self.update_call(
            Principal::management_canister(),
            sender.unwrap_or_else(Principal::anonymous),
            method,
            bytes,
        )?;
        candid::decode_args(&reply).map_err(|e| CallError::Candid(e.to_string()))
    }

    fn management_reject<A, R>(
        &mut self,
        sender: Option<Principal>,
        method: &str,
        arg: &A,
    ) -> Result<R, Reject>
    where
        A: candid::CandidType,
        R: for<'de> ArgumentDecoder<'de>,
    {
        self.management_update(sender, method, arg)
            .map_err(|e| match e {
                CallError::Reject(r) => r,
                other => undecodable(method, &other),
            })
    }

    /// Takes a snapshot of `canister`, replacing `replace_snapshot` if given.
    ///
    /// # Errors
    /// Not a controller, no code, too many snapshots, unknown snapshot to replace.
    pub fn take_canister_snapshot(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
        replace_snapshot: Option<Vec<u8>>,
    ) -> Result<Snapshot, Reject> {
        let args = TakeCanisterSnapshotArgs {
            canister_id: canister,
            replace_snapshot,
            uninstall_code: None,
            sender_canister_version: None,
        };
        self.management_reject::<_, (Snapshot,)>(sender, "take_canister_snapshot", &args)
            .map(|(s,)| s)
    }

    /// Loads snapshot `snapshot_id` onto `canister` (same subnet as its owner).
    ///
    /// # Errors
    /// Not a controller (of the canister or the snapshot's owner), unknown snapshot,
    /// another subnet, invalid snapshot.
    pub fn load_canister_snapshot(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
        snapshot_id: Vec<u8>,
    ) -> Result<(), Reject> {
        let args = LoadCanisterSnapshotArgs {
            canister_id: canister,
            snapshot_id,
            sender_canister_version: None,
        };
        self.management_reject::<_, ()>(sender, "load_canister_snapshot", &args)
    }

    /// The snapshots of `canister`.
    ///
    /// # Errors
    /// Not a controller, unknown canister.
    pub fn list_canister_snapshots(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<Vec<Snapshot>, Reject> {
        let args = CanisterIdRecord {
            canister_id: canister,
        };
        self.management_reject::<_, (Vec<Snapshot>,)>(sender, "list_canister_snapshots", &args)
            .map(|(s,)| s)
    }

    /// Deletes snapshot `snapshot_id` of `canister`.
    ///
    /// # Errors
    /// Not a controller, unknown snapshot.
    pub fn delete_canister_snapshot(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
        snapshot_id: Vec<u8>,
    ) -> Result<(), Reject> {
        let args = DeleteCanisterSnapshotArgs {
            canister_id: canister,
            snapshot_id,
        };
        self.management_reject::<_, ()>(sender, "delete_canister_snapshot", &args)
    }

    /// Uploads `chunk` (at most 1 MiB) to the chunk store of `canister`; returns its SHA-256.
    ///
    /// # Errors
    /// Not a controller, chunk too large, store full.
    pub fn upload_chunk(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
        chunk: Vec<u8>,
    ) -> Result<Vec<u8>, Reject> {
        let args = UploadChunkArgs {
            canister_id: canister,
            chunk,
        };
        self.management_reject::<_, (ChunkHash,)>(sender, "upload_chunk", &args)
            .map(|(h,)| h.hash)
    }

    /// Installs on `canister` the module made of `chunk_hashes_list` from the chunk store of
    /// `store_canister`, if it hashes to `wasm_module_hash`.
    ///
    /// # Errors
    /// Not a controller, missing chunk, hash mismatch, or any `install_code` failure.
    #[allow(clippy::too_many_arguments)] // PocketIC's signature
    pub fn install_chunked_canister(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
        mode: CanisterInstallMode,
        store_canister: CanisterId,
        chunk_hashes_list: Vec<Vec<u8>>,
        wasm_module_hash: Vec<u8>,
        arg: Vec<u8>,
    ) -> Result<(), Reject> {
        let args = InstallChunkedCodeArgs {
            mode,
            target_canister: canister,
            store_canister: Some(store_canister),
            chunk_hashes_list: chunk_hashes_list
                .into_iter()
                .map(|hash| ChunkHash { hash })
                .collect(),
            wasm_module_hash,
            arg,
            sender_canister_version: None,
        };
        self.management_reject::<_, ()>(sender, "install_chunked_code", &args)
    }

    /// The freezing reserve of `canister` now: its memory's storage cost over its freezing
    /// threshold (what `canister_liquid_cycle_balance128` keeps back).
    ///
    /// # Panics
    /// If the canister does not exist.
    #[must_use]
    pub fn freezing_reserve(&self, canister: CanisterId) -> u128 {
        self.freeze_reserve(&self.canisters[&canister])
    }

    /// Memory `canister` is billed for, in bytes: heap, stable memory, module, chunk store
    /// and snapshots.
    ///
    /// # Panics
    /// If the canister does not exist.
    #[must_use]
    pub fn memory_bytes(&self, canister: CanisterId) -> u64 {
        self.canisters[&canister].memory_bytes()
    }

    /// The fee table in force at the reference size (13 nodes, wasm32).
    #[must_use]
    pub fn fee_schedule(&self) -> &crate::fees::FeeSchedule {
        &self.fees
    }

    /// The fee table `canister` pays: its subnet's size and its memory width applied.
    ///
    /// # Panics
    /// If the canister does not exist.
    #[must_use]
    pub fn fee_schedule_of(&self, canister: CanisterId) -> crate::fees::FeeSchedule {
        self.fees_of(&self.canisters[&canister])
    }
}
