//! Chunked code install: `upload_chunk`, `stored_chunks`, `clear_chunk_store` and
//! `install_chunked_code`.
//!
//! Invariants: a chunk is at most [`MAX_CHUNK_BYTES`] and is stored under its SHA-256;
//! the store holds at most [`MAX_CHUNK_STORE_BYTES`] and counts toward the canister's
//! memory; `install_chunked_code` installs the concatenation of the listed chunks only if
//! every chunk is present and the whole hashes to `wasm_module_hash`, and otherwise
//! changes nothing.

use candid::Principal;
use ic_management_canister_types::{
    CanisterIdRecord, ChunkHash, InstallChunkedCodeArgs, InstallCodeArgs, UploadChunkArgs,
};
use sha2::{Digest, Sha256};

use super::Harness;
use super::management::{decode, encode, not_found, reject};
use crate::limits::{MAX_CHUNK_BYTES, MAX_CHUNK_STORE_BYTES};
use crate::types::{CanisterId, Reject, RejectCode};

impl Harness {
    /// Handles a chunk-store method; `None` if `method` is not one.
    pub(super) fn handle_chunk_method(
        &mut self,
        sender: Principal,
        method: &str,
        arg: &[u8],
    ) -> Option<Result<Vec<u8>, Reject>> {
        Some(match method {
            "upload_chunk" => decode::<UploadChunkArgs>(method, arg)
                .and_then(|a| self.upload_chunk_to(sender, a.canister_id, a.chunk))
                .map(|hash| encode(&ChunkHash { hash })),
            "stored_chunks" => decode::<CanisterIdRecord>(method, arg)
                .and_then(|a| self.stored_chunks_of(sender, a.canister_id))
                .map(|hashes| encode(&hashes)),
            "clear_chunk_store" => decode::<CanisterIdRecord>(method, arg).and_then(|a| {
                self.store_access(sender, a.canister_id, method)?;
                let c = self.canisters.get_mut(&a.canister_id).expect("checked");
                c.chunk_store.clear();
                Ok(encode(&()))
            }),
            "install_chunked_code" => decode::<InstallChunkedCodeArgs>(method, arg)
                .and_then(|a| self.install_chunked_code(sender, a))
                .map(|()| encode(&())),
            _ => return None,
        })
    }

    /// Controllers of `id`, or `id` itself, may use its chunk store.
    fn store_access(&self, sender: Principal, id: CanisterId, method: &str) -> Result<(), Reject> {
        let c = self.canisters.get(&id).ok_or_else(|| not_found(&id))?;
        if sender == id || c.is_controller(&sender) {
            Ok(())
        } else {
            self.controlled(sender, id, method).map(drop)
        }
    }

    /// Stores `chunk` in the chunk store of `id`; returns its SHA-256.
    pub(crate) fn upload_chunk_to(
        &mut self,
        sender: Principal,
        id: CanisterId,
        chunk: Vec<u8>,
    ) -> Result<Vec<u8>, Reject> {
        self.store_access(sender, id, "upload_chunk")?;
        if chunk.len() > MAX_CHUNK_BYTES {
            return Err(reject(
                RejectCode::CanisterReject,
                format!(
                    "Wasm chunk size {} exceeds the maximum chunk size of {MAX_CHUNK_BYTES} bytes.",
                    chunk.len()
                ),
            ));
        }
        let hash: [u8; 32] = Sha256::digest(&chunk).into();
        let c = self.canisters.get_mut(&id).expect("checked");
        if !c.chunk_store.contains_key(&hash)
            && c.chunk_store_bytes() as usize + chunk.len() > MAX_CHUNK_STORE_BYTES
        {
            return Err(reject(
                RejectCode::CanisterReject,
                format!(
                    "Wasm chunk store of canister {id} is full ({MAX_CHUNK_STORE_BYTES} bytes)."
                ),
            ));
        }
        c.chunk_store.insert(hash, chunk);
        Ok(hash.to_vec())
    }

    fn stored_chunks_of(
        &self,
        sender: Principal,
        id: CanisterId,
    ) -> Result<Vec<ChunkHash>, Reject> {
        self.store_access(sender, id, "stored_chunks")?;
        Ok(self.canisters[&id]
            .chunk_store
            .keys()
            .map(|h| ChunkHash { hash: h.to_vec() })
            .collect())
    }

    /// `install_chunked_code`: assembles the module from the store canister's chunks,
    /// checks its hash, then installs it like `install_code`.
    pub(crate) fn install_chunked_code(
        &mut self,
        sender: Principal,
        args: InstallChunkedCodeArgs,
    ) -> Result<(), Reject> {
        let target = args.target_canister;
        let target_subnet = self
            .controlled(sender, target, "install_chunked_code")?
            .subnet;
        let store_id = args.store_canister.unwrap_or(target);
        let store = self
            .canisters
            .get(&store_id)
            .ok_or_else(|| not_found(&store_id))?;
        if store.subnet != target_subnet {
            return Err(reject(
                RejectCode::CanisterReject,
                format!(
                    "The store canister {store_id} must be on the same subnet as the target canister {target}."
                ),
            ));
        }
        if store_id != target {
            self.store_access(sender, store_id, "install_chunked_code")?;
        }
        let mut wasm = Vec::new();
        for ChunkHash { hash } in &args.chunk_hashes_list {
            let chunk = <[u8; 32]>::try_from(hash.as_slice())
                .ok()
                .and_then(|key| store.chunk_store.get(&key))
                .ok_or_else(|| {
                    reject(
                        RejectCode::CanisterReject,
                        format!(
                            "Chunk {} is not in the chunk store of canister {store_id}.",
                            hex::encode(hash)
                        ),
                    )
                })?;
            wasm.extend_from_slice(chunk);
        }
        let actual = Sha256::digest(&wasm);
        if actual.as_slice() != args.wasm_module_hash.as_slice() {
            return Err(reject(
                RejectCode::CanisterReject,
                format!(
                    "Wasm module hash {} does not match the hash of the concatenated chunks {}.",
                    hex::encode(&args.wasm_module_hash),
                    hex::encode(actual)
                ),
            ));
        }
        self.install_code(
            sender,
            InstallCodeArgs {
                mode: args.mode,
                canister_id: target,
                wasm_module: wasm,
                arg: args.arg,
                sender_canister_version: args.sender_canister_version,
            },
        )
    }
}
