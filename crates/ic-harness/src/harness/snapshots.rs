//! Native canister snapshots, as the management canister offers them: take (with
//! `replace_snapshot` and `uninstall_code`), load, list, delete, and the download/upload
//! API (`read_canister_snapshot_metadata`/`_data`, `upload_canister_snapshot_metadata`/`_data`).
//!
//! Invariants:
//! - a snapshot belongs to one canister and lives in its memory: it counts toward the
//!   canister's memory (storage fees, freezing reserve) and disappears with it (deletion,
//!   running out of cycles);
//! - at most [`MAX_SNAPSHOTS`] per canister; a full canister can only take or upload with
//!   `replace_snapshot`, which deletes the replaced one after the new one exists;
//! - list and read (metadata, data) are for controllers and for the callers the canister's
//!   `snapshot_visibility` admits (see `visibility.rs`); take, load, delete and upload are
//!   for controllers only; `load` needs control of both the target and the snapshot's
//!   owner, and both on the same subnet;
//! - every method accepts a sender on another subnet (the replica's
//!   `allow_remote_subnet_sender` in `ic00_permissions.rs`): a management call is routed
//!   to the subnet of the canister it names;
//! - a read returns at most [`MAX_SLICE_BYTES`] and never past the end of its blob; an
//!   upload writes only into a snapshot made by `upload_canister_snapshot_metadata`, and
//!   only within the sizes that metadata declared;
//! - a failed load leaves the target unchanged.
//!
//! A snapshot id is the owner's principal bytes followed by the 8-byte big-endian local id,
//! so any canister on the subnet can name it.

use std::collections::BTreeMap;

use candid::{Nat, Principal};
use ic_management_canister_types::{
    CanisterTimer, ChunkHash, DeleteCanisterSnapshotArgs, LoadCanisterSnapshotArgs,
    ReadCanisterSnapshotDataArgs, ReadCanisterSnapshotDataResult, ReadCanisterSnapshotMetadataArgs,
    ReadCanisterSnapshotMetadataResult, Snapshot, SnapshotDataKind, SnapshotDataOffset,
    SnapshotMetadataGlobal, SnapshotSource, TakeCanisterSnapshotArgs,
    UploadCanisterSnapshotDataArgs, UploadCanisterSnapshotMetadataArgs,
    UploadCanisterSnapshotMetadataResult,
};
use sha2::{Digest, Sha256};
use wasmtime::Val;

use super::Harness;
use super::management::{decode, encode, not_found, reject};
use crate::execution::InstalledCode;
use crate::limits::{MAX_CHUNK_BYTES, MAX_SLICE_BYTES, MAX_SNAPSHOTS};
use crate::module::MAX_WASM_MODULE_BYTES;
use crate::runtime;
use crate::stable_memory::{MAX_STABLE_PAGES, StableMemory, WASM_PAGE_BYTES};
use crate::types::{CanisterId, Reject, RejectCode};

/// Largest wasm heap an uploaded snapshot may declare: the larger of the wasm32 and wasm64
/// heap limits (the module, hence the mode, is only known at load, which checks the heap
/// against the module's own limit).
const MAX_WASM_MEMORY_BYTES: u64 = crate::limits::MAX_WASM64_HEAP_BYTES;

/// Where a snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// `take_canister_snapshot`.
    Taken,
    /// `upload_canister_snapshot_metadata` (then filled by `upload_canister_snapshot_data`).
    Uploaded,
}

/// Everything a snapshot holds: module, heap, globals, stable memory, chunk store,
/// certified data, timer and version.
#[derive(Debug, Clone)]
pub(crate) struct CanisterSnapshot {
    pub source: Source,
    pub taken_at: u64,
    pub wasm_module: Vec<u8>,
    pub heap: Vec<u8>,
    pub globals: Vec<SnapshotMetadataGlobal>,
    pub stable: StableMemory,
    pub chunk_store: BTreeMap<[u8; 32], Vec<u8>>,
    pub certified_data: Vec<u8>,
    /// Global timer; 0 is inactive.
    pub timer: u64,
    pub canister_version: u64,
}

impl CanisterSnapshot {
    /// Bytes the snapshot occupies in its canister's memory.
    pub(crate) fn total_size(&self) -> u64 {
        self.wasm_module.len() as u64
            + self.heap.len() as u64
            + self.stable.size_bytes()
            + self
                .chunk_store
                .values()
                .map(|c| c.len() as u64)
                .sum::<u64>()
            + self.certified_data.len() as u64
            + 8 * self.globals.len() as u64
    }
}

/// The id of snapshot `local` of `owner`.
fn snapshot_id(owner: CanisterId, local: u64) -> Vec<u8> {
    let mut id = owner.as_slice().to_vec();
    id.extend_from_slice(&local.to_be_bytes());
    id
}

/// Splits a snapshot id into its owner and local id.
fn parse_id(id: &[u8]) -> Result<(CanisterId, u64), Reject> {
    let invalid = || {
        reject(
            RejectCode::CanisterReject,
            format!("Invalid snapshot id {}.", hex::encode(id)),
        )
    };
    if id.len() < 9 || id.len() > 8 + crate::limits::MAX_PRINCIPAL_BYTES {
        return Err(invalid());
    }
    let (owner, local) = id.split_at(id.len() - 8);
    let owner = Principal::try_from_slice(owner).map_err(|_| invalid())?;
    let local = u64::from_be_bytes(local.try_into().map_err(|_| invalid())?);
    Ok((owner, local))
}

fn snapshot_not_found(id: &[u8], canister: &CanisterId) -> Reject {
    reject(
        RejectCode::DestinationInvalid,
        format!(
            "Could not find the snapshot ID {} for canister {canister}.",
            hex::encode(id)
        ),
    )
}

fn bad_request(msg: impl Into<String>) -> Reject {
    reject(RejectCode::CanisterReject, msg)
}

fn to_metadata_global(v: &Val) -> SnapshotMetadataGlobal {
    match v {
        Val::I32(x) => SnapshotMetadataGlobal::I32(*x),
        Val::I64(x) => SnapshotMetadataGlobal::I64(*x),
        Val::F32(bits) => SnapshotMetadataGlobal::F32(f32::from_bits(*bits)),
        Val::F64(bits) => SnapshotMetadataGlobal::F64(f64::from_bits(*bits)),
        Val::V128(x) => SnapshotMetadataGlobal::V128(Nat::from(x.as_u128())),
        other => unreachable!("exported mutable globals are numeric, got {other:?}"),
    }
}

fn to_val(g: &SnapshotMetadataGlobal) -> Result<Val, Reject> {
    Ok(match g {
        SnapshotMetadataGlobal::I32(x) => Val::I32(*x),
        SnapshotMetadataGlobal::I64(x) => Val::I64(*x),
        SnapshotMetadataGlobal::F32(x) => Val::F32(x.to_bits()),
        SnapshotMetadataGlobal::F64(x) => Val::F64(x.to_bits()),
        SnapshotMetadataGlobal::V128(n) => {
            let v = u128::try_from(&n.0)
                .map_err(|_| bad_request(format!("v128 global {n} does not fit in 128 bits")))?;
            Val::V128(v.into())
        }
    })
}

/// A `[offset, offset + size)` range of a blob of `len` bytes, checked.
fn slice(len: u64, offset: u64, size: u64, what: &str) -> Result<std::ops::Range<usize>, Reject> {
    if size > MAX_SLICE_BYTES {
        return Err(bad_request(format!(
            "Requested {size} bytes of the {what}, more than the maximum slice of {MAX_SLICE_BYTES} bytes."
        )));
    }
    match offset.checked_add(size) {
        Some(end) if end <= len => Ok(offset as usize..end as usize),
        _ => Err(bad_request(format!(
            "Invalid slice of the {what}: offset {offset} + size {size} exceeds its {len} bytes."
        ))),
    }
}

impl Harness {
    /// Handles a snapshot method; `None` if `method` is not one.
    pub(super) fn handle_snapshot_method(
        &mut self,
        sender: Principal,
        method: &str,
        arg: &[u8],
    ) -> Option<Result<Vec<u8>, Reject>> {
        Some(match method {
            "take_canister_snapshot" => decode::<TakeCanisterSnapshotArgs>(method, arg)
                .and_then(|a| self.take_snapshot(sender, a))
                .map(|s| encode(&s)),
            "load_canister_snapshot" => decode::<LoadCanisterSnapshotArgs>(method, arg)
                .and_then(|a| self.load_snapshot(sender, a.canister_id, &a.snapshot_id))
                .map(|()| encode(&())),
            "list_canister_snapshots" => {
                decode::<ic_management_canister_types::CanisterIdRecord>(method, arg)
                    .and_then(|a| self.list_snapshots(sender, a.canister_id))
                    .map(|s| encode(&s))
            }
            "delete_canister_snapshot" => decode::<DeleteCanisterSnapshotArgs>(method, arg)
                .and_then(|a| self.delete_snapshot(sender, a.canister_id, &a.snapshot_id))
                .map(|()| encode(&())),
            "read_canister_snapshot_metadata" => {
                decode::<ReadCanisterSnapshotMetadataArgs>(method, arg)
                    .and_then(|a| self.snapshot_metadata(sender, a.canister_id, &a.snapshot_id))
                    .map(|m| encode(&m))
            }
            "read_canister_snapshot_data" => decode::<ReadCanisterSnapshotDataArgs>(method, arg)
                .and_then(|a| self.read_snapshot_data(sender, a))
                .map(|chunk| encode(&ReadCanisterSnapshotDataResult { chunk })),
            "upload_canister_snapshot_metadata" => {
                decode::<UploadCanisterSnapshotMetadataArgs>(method, arg)
                    .and_then(|a| self.upload_snapshot_metadata(sender, a))
                    .map(|snapshot_id| {
                        encode(&UploadCanisterSnapshotMetadataResult { snapshot_id })
                    })
            }
            "upload_canister_snapshot_data" => {
                decode::<UploadCanisterSnapshotDataArgs>(method, arg)
                    .and_then(|a| self.upload_snapshot_data(sender, a))
                    .map(|()| encode(&()))
            }
            _ => return None,
        })
    }

    /// The local id of `id` if it names an existing snapshot of `canister`.
    fn own_snapshot(&self, canister: CanisterId, id: &[u8]) -> Result<u64, Reject> {
        let (owner, local) = parse_id(id)?;
        let c = self
            .canisters
            .get(&canister)
            .ok_or_else(|| not_found(&canister))?;
        if owner != canister || !c.snapshots.contains_key(&local) {
            return Err(snapshot_not_found(id, &canister));
        }
        Ok(local)
    }

    /// Room for one more snapshot of `canister`, or the snapshot `replace` (checked) to delete.
    fn room_for_snapshot(
        &self,
        canister: CanisterId,
        replace: Option<&[u8]>,
    ) -> Result<Option<u64>, Reject> {
        let replaced = replace
            .map(|id| self.own_snapshot(canister, id))
            .transpose()?;
        let count = self.canisters[&canister].snapshots.len();
        if replaced.is_none() && count >= MAX_SNAPSHOTS {
            return Err(bad_request(format!(
                "Canister {canister} has reached the maximum number of snapshots allowed: {MAX_SNAPSHOTS}."
            )));
        }
        Ok(replaced)
    }

    /// Stores `snapshot` as the newest of `canister`, deleting `replaced`; returns its local id.
    fn store_snapshot(
        &mut self,
        canister: CanisterId,
        snapshot: CanisterSnapshot,
        replaced: Option<u64>,
    ) -> u64 {
        let c = self.canisters.get_mut(&canister).expect("checked");
        let local = c.next_snapshot;
        c.next_snapshot += 1;
        c.snapshots.insert(local, snapshot);
        if let Some(old) = replaced {
            c.snapshots.remove(&old);
        }
        local
    }

    fn take_snapshot(
        &mut self,
        sender: Principal,
        args: TakeCanisterSnapshotArgs,
    ) -> Result<Snapshot, Reject> {
        let id = args.canister_id;
        self.controlled(sender, id, "take_canister_snapshot")?;
        let replaced = self.room_for_snapshot(id, args.replace_snapshot.as_deref())?;
        let now = self.time;
        let c = self.canisters.get_mut(&id).expect("checked");
        let Some(code) = c.code.as_mut() else {
            return Err(reject(
                RejectCode::CanisterError,
                format!("Canister {id} is empty: it contains no Wasm module to snapshot. (IC0537)"),
            ));
        };
        let snapshot = CanisterSnapshot {
            source: Source::Taken,
            taken_at: now,
            wasm_module: c.wasm_module.clone(),
            heap: code.heap_copy(),
            globals: code
                .global_values()
                .iter()
                .map(to_metadata_global)
                .collect(),
            stable: c.stable.clone(),
            chunk_store: c.chunk_store.clone(),
            certified_data: c.certified_data.clone(),
            timer: c.timer,
            canister_version: c.version,
        };
        let total_size = snapshot.total_size();
        let local = self.store_snapshot(id, snapshot, replaced);
        if args.uninstall_code == Some(true) {
            self.uninstall_code(sender, id)?;
        }
        Ok(Snapshot {
            id: snapshot_id(id, local),
            taken_at_timestamp: now,
            total_size,
        })
    }

    /// Loads snapshot `snapshot_id` onto `target`: module, heap, globals, stable memory,
    /// chunk store, certified data and timer are replaced; the version goes up by one.
    pub(crate) fn load_snapshot(
        &mut self,
        sender: Principal,
        target: CanisterId,
        snapshot_id: &[u8],
    ) -> Result<(), Reject> {
        let target_subnet = self
            .controlled(sender, target, "load_canister_snapshot")?
            .subnet;
        let (owner, local) = parse_id(snapshot_id)?;
        let owner_canister = self
            .canisters
            .get(&owner)
            .ok_or_else(|| snapshot_not_found(snapshot_id, &owner))?;
        if owner_canister.subnet != target_subnet {
            return Err(bad_request(format!(
                "Snapshot {} belongs to canister {owner} on subnet {}; it can only be loaded onto a canister of the same subnet, and {target} is on {target_subnet}.",
                hex::encode(snapshot_id),
                owner_canister.subnet
            )));
        }
        self.controlled(sender, owner, "load_canister_snapshot")?;
        let snap = self.canisters[&owner]
            .snapshots
            .get(&local)
            .ok_or_else(|| snapshot_not_found(snapshot_id, &owner))?
            .clone();
        let invalid = |e: String| {
            reject(
                RejectCode::CanisterError,
                format!(
                    "Error from Canister {target}: cannot load snapshot {}: {e}. (IC0505)",
                    hex::encode(snapshot_id)
                ),
            )
        };
        let compiled = runtime::compile(&snap.wasm_module).map_err(|e| invalid(e.to_string()))?;
        let globals = snap
            .globals
            .iter()
            .map(to_val)
            .collect::<Result<Vec<_>, _>>()?;
        let code = InstalledCode::from_snapshot(compiled, &snap.heap, &globals).map_err(invalid)?;
        let c = self.canisters.get_mut(&target).expect("checked");
        c.code = Some(code);
        c.wasm_module = snap.wasm_module;
        c.stable = snap.stable;
        c.chunk_store = snap.chunk_store;
        c.certified_data = snap.certified_data;
        c.timer = snap.timer;
        c.version += 1;
        Ok(())
    }

    fn list_snapshots(&self, sender: Principal, id: CanisterId) -> Result<Vec<Snapshot>, Reject> {
        let c = self.snapshot_reader(sender, id, "list_canister_snapshots")?;
        Ok(c.snapshots
            .iter()
            .map(|(local, s)| Snapshot {
                id: snapshot_id(id, *local),
                taken_at_timestamp: s.taken_at,
                total_size: s.total_size(),
            })
            .collect())
    }

    fn delete_snapshot(
        &mut self,
        sender: Principal,
        id: CanisterId,
        snapshot_id: &[u8],
    ) -> Result<(), Reject> {
        self.controlled(sender, id, "delete_canister_snapshot")?;
        let local = self.own_snapshot(id, snapshot_id)?;
        self.canisters
            .get_mut(&id)
            .expect("checked")
            .snapshots
            .remove(&local);
        Ok(())
    }

    fn snapshot_of(
        &self,
        sender: Principal,
        id: CanisterId,
        snapshot_id: &[u8],
        method: &str,
    ) -> Result<&CanisterSnapshot, Reject> {
        self.snapshot_reader(sender, id, method)?;
        let local = self.own_snapshot(id, snapshot_id)?;
        Ok(&self.canisters[&id].snapshots[&local])
    }

    fn snapshot_metadata(
        &self,
        sender: Principal,
        id: CanisterId,
        snapshot_id: &[u8],
    ) -> Result<ReadCanisterSnapshotMetadataResult, Reject> {
        let s = self.snapshot_of(sender, id, snapshot_id, "read_canister_snapshot_metadata")?;
        Ok(ReadCanisterSnapshotMetadataResult {
            source: Some(match s.source {
                Source::Taken => SnapshotSource::TakenFromCanister(Default::default()),
                Source::Uploaded => SnapshotSource::MetadataUpload(Default::default()),
            }),
            taken_at_timestamp: s.taken_at,
            wasm_module_size: s.wasm_module.len() as u64,
            globals: s.globals.iter().cloned().map(Some).collect(),
            wasm_memory_size: s.heap.len() as u64,
            stable_memory_size: s.stable.size_bytes(),
            wasm_chunk_store: s
                .chunk_store
                .keys()
                .map(|h| ChunkHash { hash: h.to_vec() })
                .collect(),
            canister_version: s.canister_version,
            certified_data: s.certified_data.clone(),
            global_timer: Some(if s.timer == 0 {
                CanisterTimer::Inactive
            } else {
                CanisterTimer::Active(s.timer)
            }),
            on_low_wasm_memory_hook_status: None,
        })
    }

    fn read_snapshot_data(
        &self,
        sender: Principal,
        args: ReadCanisterSnapshotDataArgs,
    ) -> Result<Vec<u8>, Reject> {
        let s = self.snapshot_of(
            sender,
            args.canister_id,
            &args.snapshot_id,
            "read_canister_snapshot_data",
        )?;
        Ok(match args.kind {
            SnapshotDataKind::WasmModule { offset, size } => {
                let len = s.wasm_module.len() as u64;
                s.wasm_module[slice(len, offset, size, "wasm module")?].to_vec()
            }
            SnapshotDataKind::WasmMemory { offset, size } => {
                let len = s.heap.len() as u64;
                s.heap[slice(len, offset, size, "wasm memory")?].to_vec()
            }
            SnapshotDataKind::StableMemory { offset, size } => {
                let range = slice(s.stable.size_bytes(), offset, size, "stable memory")?;
                let mut out = vec![0; range.len()];
                s.stable
                    .read(offset, &mut out)
                    .expect("the range was checked against the size");
                out
            }
            SnapshotDataKind::WasmChunk { hash } => {
                let key: [u8; 32] = hash.as_slice().try_into().map_err(|_| {
                    bad_request(format!("Invalid chunk hash {}.", hex::encode(&hash)))
                })?;
                s.chunk_store.get(&key).cloned().ok_or_else(|| {
                    bad_request(format!(
                        "The snapshot's chunk store has no chunk with hash {}.",
                        hex::encode(&hash)
                    ))
                })?
            }
        })
    }

    fn upload_snapshot_metadata(
        &mut self,
        sender: Principal,
        args: UploadCanisterSnapshotMetadataArgs,
    ) -> Result<Vec<u8>, Reject> {
        let id = args.canister_id;
        self.controlled(sender, id, "upload_canister_snapshot_metadata")?;
        let replaced = self.room_for_snapshot(id, args.replace_snapshot.as_deref())?;
        if args.wasm_module_size > MAX_WASM_MODULE_BYTES as u64 {
            return Err(bad_request(format!(
                "The wasm module size {} exceeds the {MAX_WASM_MODULE_BYTES}-byte limit.",
                args.wasm_module_size
            )));
        }
        for (what, size, max) in [
            ("wasm memory", args.wasm_memory_size, MAX_WASM_MEMORY_BYTES),
            (
                "stable memory",
                args.stable_memory_size,
                MAX_STABLE_PAGES * WASM_PAGE_BYTES,
            ),
        ] {
            if !size.is_multiple_of(WASM_PAGE_BYTES) || size > max {
                return Err(bad_request(format!(
                    "The {what} size {size} must be a multiple of {WASM_PAGE_BYTES} bytes and at most {max}."
                )));
            }
        }
        if args.certified_data.len() > 32 {
            return Err(bad_request("Certified data is at most 32 bytes."));
        }
        let mut stable = StableMemory::new_in(&self.config.stable_storage);
        stable.grow(args.stable_memory_size / WASM_PAGE_BYTES, MAX_STABLE_PAGES);
        let timer = match args.global_timer {
            Some(CanisterTimer::Active(t)) => t,
            Some(CanisterTimer::Inactive) | None => 0,
        };
        let version = self.canisters[&id].version;
        let snapshot = CanisterSnapshot {
            source: Source::Uploaded,
            taken_at: self.time,
            wasm_module: vec![0; args.wasm_module_size as usize],
            heap: vec![0; args.wasm_memory_size as usize],
            globals: args.globals,
            stable,
            chunk_store: BTreeMap::new(),
            certified_data: args.certified_data,
            timer,
            canister_version: version,
        };
        let local = self.store_snapshot(id, snapshot, replaced);
        Ok(snapshot_id(id, local))
    }

    fn upload_snapshot_data(
        &mut self,
        sender: Principal,
        args: UploadCanisterSnapshotDataArgs,
    ) -> Result<(), Reject> {
        let id = args.canister_id;
        self.controlled(sender, id, "upload_canister_snapshot_data")?;
        let local = self.own_snapshot(id, &args.snapshot_id)?;
        let c = self.canisters.get_mut(&id).expect("checked");
        let s = c.snapshots.get_mut(&local).expect("checked");
        if s.source != Source::Uploaded {
            return Err(bad_request(format!(
                "Snapshot {} was taken from the canister; data can only be uploaded into a snapshot created by upload_canister_snapshot_metadata.",
                hex::encode(&args.snapshot_id)
            )));
        }
        let chunk = args.chunk;
        let len = chunk.len() as u64;
        let range = |blob_len: u64, offset: u64, what: &str| match offset.checked_add(len) {
            Some(end) if end <= blob_len => Ok(offset as usize..end as usize),
            _ => Err(bad_request(format!(
                "Invalid upload into the {what}: offset {offset} + {len} bytes exceeds its declared size of {blob_len} bytes."
            ))),
        };
        match args.kind {
            SnapshotDataOffset::WasmModule { offset } => {
                let r = range(s.wasm_module.len() as u64, offset, "wasm module")?;
                s.wasm_module[r].copy_from_slice(&chunk);
            }
            SnapshotDataOffset::WasmMemory { offset } => {
                let r = range(s.heap.len() as u64, offset, "wasm memory")?;
                s.heap[r].copy_from_slice(&chunk);
            }
            SnapshotDataOffset::StableMemory { offset } => {
                range(s.stable.size_bytes(), offset, "stable memory")?;
                s.stable
                    .write(offset, &chunk)
                    .expect("the range was checked against the size");
            }
            SnapshotDataOffset::WasmChunk => {
                if chunk.len() > MAX_CHUNK_BYTES {
                    return Err(bad_request(format!(
                        "A wasm chunk is at most {MAX_CHUNK_BYTES} bytes, got {}.",
                        chunk.len()
                    )));
                }
                let hash: [u8; 32] = Sha256::digest(&chunk).into();
                s.chunk_store.insert(hash, chunk);
            }
        }
        Ok(())
    }
}
