//! Vault module versions, uploaded by admins in chunks and checked against their
//! declared SHA-256 at commit.
//!
//! An upload appends chunks of at most 1 MiB, each starting exactly where the bytes
//! received so far end (a re-sent chunk is answered with the expected offset, never
//! stored twice). Commit requires every declared byte, hashes the whole module, and on a
//! match re-cuts it into 1 MiB chunks under the version's own blob id (what
//! `install_chunked_code` needs: one `upload_chunk` per MiB, whatever the admin's chunk
//! sizes were), then drops the upload's chunks. On a mismatch the upload is discarded.
//!
//! Blob ids: an upload's chunks live under its id; a committed version's under
//! `upload id | VERSION_BLOB_BIT`. Chunks are keyed `(blob id, index)`.

use candid::{CandidType, Principal};
use canvault_factory_api::{
    BeginUploadRequest, FactoryError, MAX_MODULE_BYTES, MAX_UPLOAD_CHUNK_BYTES, UploadChunkRequest,
    UploadProgress, VersionInfo,
};
use canvault_protocol::Hash256;
use ic_stable_structures::{Memory, StableBTreeMap};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::memory::{self, Memories, Vm};
use crate::storable::candid_storable;

/// Set in the blob id of a committed version's chunks.
const VERSION_BLOB_BIT: u64 = 1 << 63;

/// Longest label.
const MAX_LABEL_CHARS: usize = 64;

/// An upload in progress.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    /// Its id (and blob id).
    pub id: u64,
    /// The label the version will get.
    pub label: String,
    /// Declared SHA-256 of the module.
    pub declared: Hash256,
    /// Declared size.
    pub size: u64,
    /// Bytes received.
    pub received: u64,
    /// Chunks received.
    pub chunks: u32,
    /// The admin who began it.
    pub started_by: Principal,
    /// When (ns).
    pub started_at_ns: u64,
}

candid_storable!(UploadRecord);

impl UploadRecord {
    fn progress(&self) -> UploadProgress {
        UploadProgress {
            upload_id: self.id,
            label: self.label.clone(),
            size: self.size,
            received: self.received,
        }
    }
}

/// A committed version.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// SHA-256 of the module.
    pub hash: Hash256,
    /// Its label.
    pub label: String,
    /// Module size.
    pub size: u64,
    /// Blob id of its 1 MiB chunks.
    pub blob: u64,
    /// SHA-256 of each chunk, in order.
    pub chunk_hashes: Vec<Hash256>,
    /// The admin who uploaded it.
    pub uploaded_by: Principal,
    /// When it was committed (ns).
    pub uploaded_at_ns: u64,
}

candid_storable!(VersionRecord);

impl VersionRecord {
    /// Its public form.
    #[must_use]
    pub fn info(&self, current: bool) -> VersionInfo {
        VersionInfo {
            hash: self.hash,
            label: self.label.clone(),
            size: self.size,
            chunks: self.chunk_hashes.len() as u32,
            uploaded_by: self.uploaded_by,
            uploaded_at_ns: self.uploaded_at_ns,
            current,
        }
    }
}

/// Uploads, module chunks and versions.
pub struct Versions<M: Memory> {
    uploads: StableBTreeMap<u64, UploadRecord, Vm<M>>,
    chunks: StableBTreeMap<(u64, u32), Vec<u8>, Vm<M>>,
    versions: StableBTreeMap<[u8; 32], VersionRecord, Vm<M>>,
}

fn invalid(msg: impl Into<String>) -> FactoryError {
    FactoryError::InvalidRequest(msg.into())
}

impl<M: Memory> Versions<M> {
    /// Loads (or creates) the structures.
    pub fn init(memories: &Memories<M>) -> Self {
        Self {
            uploads: StableBTreeMap::init(memories.get(memory::UPLOADS)),
            chunks: StableBTreeMap::init(memories.get(memory::CHUNKS)),
            versions: StableBTreeMap::init(memories.get(memory::VERSIONS)),
        }
    }

    /// Starts upload `id` (ids are never reused).
    ///
    /// # Errors
    /// A bad label or size, or a version with the same hash or label.
    pub fn begin(
        &mut self,
        id: u64,
        req: &BeginUploadRequest,
        caller: Principal,
        now: u64,
    ) -> Result<UploadProgress, FactoryError> {
        let label = req.label.trim();
        if label.is_empty()
            || label.chars().count() > MAX_LABEL_CHARS
            || label.chars().any(char::is_control)
        {
            return Err(invalid(format!(
                "a label is 1 to {MAX_LABEL_CHARS} printable characters"
            )));
        }
        if req.size == 0 || req.size > MAX_MODULE_BYTES {
            return Err(invalid(format!(
                "a module is 1 to {MAX_MODULE_BYTES} bytes, not {}",
                req.size
            )));
        }
        self.check_new(&req.sha256, label)?;
        assert!(id & VERSION_BLOB_BIT == 0, "upload ids stay below 2^63");
        let record = UploadRecord {
            id,
            label: label.to_string(),
            declared: req.sha256,
            size: req.size,
            received: 0,
            chunks: 0,
            started_by: caller,
            started_at_ns: now,
        };
        let progress = record.progress();
        self.uploads.insert(id, record);
        Ok(progress)
    }

    /// Errors if a version has `hash` or `label`.
    fn check_new(&self, hash: &Hash256, label: &str) -> Result<(), FactoryError> {
        let clash = self
            .versions
            .get(&hash.0)
            .or_else(|| self.versions.values().find(|v| v.label == label));
        match clash {
            Some(v) => Err(FactoryError::VersionExists {
                hash: v.hash,
                label: v.label,
            }),
            None => Ok(()),
        }
    }

    /// Appends a chunk.
    ///
    /// # Errors
    /// Unknown upload, empty or oversized chunk, wrong offset, more bytes than declared.
    pub fn append(&mut self, req: &UploadChunkRequest) -> Result<UploadProgress, FactoryError> {
        let mut record = self
            .uploads
            .get(&req.upload_id)
            .ok_or(FactoryError::UploadNotFound(req.upload_id))?;
        if req.offset != record.received {
            return Err(FactoryError::UnexpectedOffset {
                expected: record.received,
                got: req.offset,
            });
        }
        let len = req.bytes.len();
        if len == 0 || len > MAX_UPLOAD_CHUNK_BYTES {
            return Err(invalid(format!(
                "a chunk is 1 to {MAX_UPLOAD_CHUNK_BYTES} bytes, not {len}"
            )));
        }
        if record.received + len as u64 > record.size {
            return Err(invalid(format!(
                "{} bytes would exceed the declared size {}",
                record.received + len as u64,
                record.size
            )));
        }
        self.chunks
            .insert((record.id, record.chunks), req.bytes.to_vec());
        record.chunks += 1;
        record.received += len as u64;
        let progress = record.progress();
        self.uploads.insert(record.id, record);
        Ok(progress)
    }

    /// Commits an upload into a version.
    ///
    /// # Errors
    /// Unknown or incomplete upload; a hash mismatch (the upload is then discarded); a
    /// version with the same hash or label committed meanwhile.
    pub fn commit(&mut self, upload_id: u64, now: u64) -> Result<VersionRecord, FactoryError> {
        let record = self
            .uploads
            .get(&upload_id)
            .ok_or(FactoryError::UploadNotFound(upload_id))?;
        if record.received != record.size {
            return Err(FactoryError::UploadIncomplete {
                received: record.received,
                size: record.size,
            });
        }
        self.check_new(&record.declared, &record.label)?;
        let blob = upload_id | VERSION_BLOB_BIT;
        let mut whole = Sha256::new();
        let mut piece: Vec<u8> = Vec::with_capacity(MAX_UPLOAD_CHUNK_BYTES);
        let mut chunk_hashes = Vec::new();
        for index in 0..record.chunks {
            let bytes = self
                .chunks
                .get(&(upload_id, index))
                .expect("received chunk");
            whole.update(&bytes);
            let mut rest = bytes.as_slice();
            while !rest.is_empty() {
                let take = (MAX_UPLOAD_CHUNK_BYTES - piece.len()).min(rest.len());
                piece.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if piece.len() == MAX_UPLOAD_CHUNK_BYTES {
                    self.store_piece(blob, &mut chunk_hashes, &mut piece);
                }
            }
        }
        if !piece.is_empty() {
            self.store_piece(blob, &mut chunk_hashes, &mut piece);
        }
        let computed = Hash256(whole.finalize().into());
        self.drop_blob(upload_id, record.chunks);
        self.uploads.remove(&upload_id);
        if computed != record.declared {
            self.drop_blob(blob, chunk_hashes.len() as u32);
            return Err(FactoryError::HashMismatch {
                declared: record.declared,
                computed,
            });
        }
        let version = VersionRecord {
            hash: computed,
            label: record.label,
            size: record.size,
            blob,
            chunk_hashes,
            uploaded_by: record.started_by,
            uploaded_at_ns: now,
        };
        self.versions.insert(computed.0, version.clone());
        Ok(version)
    }

    fn store_piece(&mut self, blob: u64, hashes: &mut Vec<Hash256>, piece: &mut Vec<u8>) {
        hashes.push(Hash256::of(piece));
        self.chunks
            .insert((blob, hashes.len() as u32 - 1), std::mem::take(piece));
        piece.reserve(MAX_UPLOAD_CHUNK_BYTES);
    }

    fn drop_blob(&mut self, blob: u64, chunks: u32) {
        for index in 0..chunks {
            self.chunks.remove(&(blob, index));
        }
    }

    /// Discards an upload.
    ///
    /// # Errors
    /// Unknown upload.
    pub fn abort(&mut self, upload_id: u64) -> Result<(), FactoryError> {
        let record = self
            .uploads
            .remove(&upload_id)
            .ok_or(FactoryError::UploadNotFound(upload_id))?;
        self.drop_blob(upload_id, record.chunks);
        Ok(())
    }

    /// Uploads in progress.
    #[must_use]
    pub fn uploads(&self) -> Vec<UploadProgress> {
        self.uploads.values().map(|u| u.progress()).collect()
    }

    /// The version with `hash`.
    #[must_use]
    pub fn get(&self, hash: &Hash256) -> Option<VersionRecord> {
        self.versions.get(&hash.0)
    }

    /// Every version, by hash.
    #[must_use]
    pub fn list(&self) -> Vec<VersionRecord> {
        self.versions.values().collect()
    }

    /// Number of versions.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.versions.len()
    }

    /// True when no version is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// Deletes a version and its chunks (the caller checks it is not in use).
    ///
    /// # Errors
    /// Unknown version.
    pub fn remove(&mut self, hash: &Hash256) -> Result<VersionRecord, FactoryError> {
        let version = self
            .versions
            .remove(&hash.0)
            .ok_or(FactoryError::VersionNotFound(*hash))?;
        self.drop_blob(version.blob, version.chunk_hashes.len() as u32);
        Ok(version)
    }

    /// Chunk `index` of `version` (at most 1 MiB).
    ///
    /// # Panics
    /// If the chunk is missing: a committed version always has all of them.
    #[must_use]
    pub fn chunk(&self, version: &VersionRecord, index: u32) -> Vec<u8> {
        self.chunks
            .get(&(version.blob, index))
            .expect("a committed version has every chunk")
    }
}

#[cfg(test)]
mod tests;
