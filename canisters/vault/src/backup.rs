//! The backup protocol: begin, put chunks, commit (or abort).
//!
//! Invariants:
//! - a batch is validated entirely before anything is written, so a bad chunk anywhere
//!   in it changes nothing;
//! - every stored chunk decoded to its announced length and hash on arrival;
//! - an index sent for this snapshot (`set_here`) never changes hash; re-sending the
//!   same `(index, hash)` is a no-op;
//! - a snapshot becomes complete only when every index has an entry and the image root
//!   recomputed from them equals the one sent; otherwise it stays in progress.

use std::collections::{BTreeMap, BTreeSet};

use canvault_protocol::chunk::{chunk_count, chunk_len, valid_chunk_size, verify_frame, zero_hash};
use canvault_protocol::vault_api::{
    BeginSnapshotRequest, BeginSnapshotResponse, ChunkBody, ChunkPut, CommitSnapshotRequest,
    PutChunksRequest, PutChunksResponse, SnapshotId, SnapshotInfo, SnapshotKind, SnapshotState,
    VaultError,
};
use canvault_protocol::{Codec, Hash256};
use ic_stable_structures::Memory;

use crate::catalogue::{Budget, CommitWalk, SnapshotRecord, TableEntry};
use crate::roles::Caller;
use crate::vault::Vault;

/// Largest image accepted (1 TiB, beyond the largest stable memory).
pub const MAX_IMAGE_SIZE: u64 = 1 << 40;
/// Most chunks in one snapshot: 2^23, a 512 GiB image at 64 KiB chunks (the IC's
/// 500 GiB stable-memory limit fits; 1 TiB from 128 KiB chunks). A table never holds
/// more entries than its geometry's chunk count, and every walk over a table is
/// budgeted (`catalogue::chores`), so this bounds the storage one snapshot's table
/// takes (about 0.6 GB), not the work of one message.
pub const MAX_SNAPSHOT_CHUNKS: u32 = 1 << 23;
/// Most entries in one `put_chunks`.
pub const MAX_BATCH_ENTRIES: usize = 10_000;
/// Most encoded bytes in one `put_chunks` (the message limit is 2 MiB anyway).
pub const MAX_BATCH_DATA_BYTES: usize = 2 * 1024 * 1024;
/// Longest label, in bytes.
pub const MAX_LABEL_BYTES: usize = 256;
/// Longest abort reason, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;
/// Most snapshots in progress per source: a writer begins one at a time (a retry with
/// the same nonce is the same snapshot); a few more allow for a kit whose state was reset.
pub const MAX_OPEN_PER_SOURCE: u32 = 4;

/// What applying one validated chunk does.
enum Action<'a> {
    /// Store (or deduplicate) verified bytes.
    Store { codec: Codec, bytes: &'a [u8] },
    /// Reference a chunk the store holds.
    Reference,
    /// Record an all-zero chunk.
    Zero,
    /// Already recorded with this hash: nothing to do.
    Repeat,
    /// `Known`, but the store lacks it: report it missing.
    Missing,
}

struct Planned<'a> {
    index: u32,
    hash: Hash256,
    len: u32,
    action: Action<'a>,
}

impl<M: Memory> Vault<M> {
    /// Begins a snapshot (or returns the one this `(caller, nonce)` began).
    ///
    /// # Errors
    /// `InvalidRequest` for a bad geometry (over [`MAX_SNAPSHOT_CHUNKS`] chunks too) or
    /// label, a writer naming a source, a nonce reused with other parameters, or a
    /// source with [`MAX_OPEN_PER_SOURCE`] snapshots in progress.
    ///
    /// With a parent, the child's table starts as a copy of the parent's, made within
    /// `budget` here and continued by [`Vault::collect`] or `commit_snapshot`; the parent
    /// is pinned until the copy is done.
    ///
    /// `dataset` names the app-defined data set the snapshot backs up (`None`: the
    /// source's image); retention keeps snapshots per (source, data set), and a parent
    /// must be of the same data set.
    pub fn begin_snapshot(
        &mut self,
        caller: Caller,
        req: BeginSnapshotRequest,
        dataset: Option<String>,
        now_ns: u64,
        budget: Budget<'_>,
    ) -> Result<BeginSnapshotResponse, VaultError> {
        let source = match req.source {
            None => caller.principal,
            Some(source) if caller.is_owner => source,
            Some(_) => return Err(invalid("only owners may name a source (uploading a copy)")),
        };
        if !valid_chunk_size(req.chunk_size) {
            return Err(invalid(format!(
                "chunk size {} is not a multiple of 64 KiB between 64 KiB and 1 MiB",
                req.chunk_size
            )));
        }
        if req.image_size > MAX_IMAGE_SIZE {
            return Err(invalid(format!(
                "image size {} exceeds {MAX_IMAGE_SIZE}",
                req.image_size
            )));
        }
        let count = chunk_count(req.image_size, req.chunk_size);
        if count > MAX_SNAPSHOT_CHUNKS {
            return Err(invalid(format!(
                "{count} chunks in one image, at most {MAX_SNAPSHOT_CHUNKS}: use larger chunks"
            )));
        }
        if req
            .label
            .as_ref()
            .is_some_and(|l| l.len() > MAX_LABEL_BYTES)
        {
            return Err(invalid(format!(
                "label longer than {MAX_LABEL_BYTES} bytes"
            )));
        }
        if dataset.as_ref().is_some_and(|d| d.len() > MAX_LABEL_BYTES) {
            return Err(invalid(format!(
                "data set name longer than {MAX_LABEL_BYTES} bytes"
            )));
        }
        if let Some(id) = self.catalogue.by_nonce(caller.principal, req.nonce) {
            let info = self
                .catalogue
                .get(id)
                .expect("the nonce index names live snapshots")
                .info;
            if (info.source, info.image_size, info.chunk_size, &info.dataset)
                != (source, req.image_size, req.chunk_size, &dataset)
            {
                return Err(invalid(format!(
                    "nonce {} already began snapshot {id} with other parameters",
                    req.nonce
                )));
            }
            return Ok(BeginSnapshotResponse {
                snapshot_id: id,
                parent: info.parent,
            });
        }
        if self.catalogue.open_count(source) >= MAX_OPEN_PER_SOURCE {
            return Err(invalid(format!(
                "{source} already has {MAX_OPEN_PER_SOURCE} snapshots in progress: commit or abort one"
            )));
        }
        let parent = req
            .parent
            .and_then(|p| self.catalogue.get(p))
            .filter(|p| {
                p.info.state == SnapshotState::Complete
                    && p.info.source == source
                    && p.info.dataset == dataset
                    && p.info.chunk_size == req.chunk_size
            })
            .map(|p| p.info.id);
        let id = self.next_id(|c| &mut c.next_snapshot_id);
        self.catalogue.create(SnapshotRecord {
            info: SnapshotInfo {
                id,
                source,
                parent,
                state: SnapshotState::InProgress,
                created_at_ns: now_ns,
                completed_at_ns: None,
                image_size: req.image_size,
                chunk_size: req.chunk_size,
                chunk_count: count,
                root: None,
                new_bytes: 0,
                label: req.label,
                dataset,
                kind: Some(SnapshotKind::KitImage),
            },
            creator: caller.principal,
            nonce: req.nonce,
            updated_at_ns: now_ns,
        });
        if let Some(parent) = parent {
            self.catalogue.start_inherit(parent, id);
            self.catalogue.advance_inherit(&mut self.store, id, budget);
        }
        Ok(BeginSnapshotResponse {
            snapshot_id: id,
            parent,
        })
    }

    /// Verifies and records a batch of chunks, all or nothing.
    ///
    /// # Errors
    /// `SnapshotNotFound`, `NotYourSnapshot`, `WrongState` (not in progress),
    /// `InvalidRequest` (oversize batch), `BadChunk`, `ConflictingChunk`.
    pub fn put_chunks(
        &mut self,
        caller: Caller,
        req: &PutChunksRequest,
        now_ns: u64,
    ) -> Result<PutChunksResponse, VaultError> {
        let mut record = self.writable(caller, req.snapshot_id)?;
        if req.chunks.len() > MAX_BATCH_ENTRIES {
            return Err(invalid(format!(
                "more than {MAX_BATCH_ENTRIES} chunks in one batch"
            )));
        }
        let data_bytes: usize = req
            .chunks
            .iter()
            .map(|c| match &c.body {
                ChunkBody::Data { bytes, .. } => bytes.len(),
                ChunkBody::Known | ChunkBody::Zero => 0,
            })
            .sum();
        if data_bytes > MAX_BATCH_DATA_BYTES {
            return Err(invalid(format!(
                "{data_bytes} bytes of chunk data in one batch, at most {MAX_BATCH_DATA_BYTES}"
            )));
        }
        let plan = self.plan_batch(&record.info, &req.chunks)?;

        let mut response = PutChunksResponse::default();
        let mut new_bytes = 0;
        let mut released = Vec::new();
        for p in plan {
            let entry = |zero| TableEntry {
                hash: p.hash,
                len: p.len,
                zero,
                set_here: true,
            };
            let (entry, data) = match p.action {
                Action::Store { codec, bytes } => (entry(false), Some((codec, bytes))),
                Action::Reference => (entry(false), None),
                Action::Zero => (entry(true), None),
                Action::Repeat => {
                    response.recorded += 1;
                    continue;
                }
                Action::Missing => {
                    response.missing.push(p.index);
                    continue;
                }
            };
            new_bytes += self.catalogue.set_entry(
                &mut self.store,
                record.info.source,
                record.info.id,
                p.index,
                entry,
                data,
                &mut released,
            );
            response.recorded += 1;
        }
        // After every addition: a `Known` entry of this batch may name a chunk whose
        // last other reference this batch replaced.
        self.catalogue
            .release_all(&mut self.store, record.info.source, &released);
        self.catalogue.reset_commit(record.info.id);
        record.info.new_bytes += new_bytes;
        record.updated_at_ns = now_ns;
        self.catalogue.save(record);
        Ok(response)
    }

    /// Completes a snapshot once every chunk is present and the root recomputes.
    /// Committing a complete snapshot again with the same root succeeds.
    ///
    /// The table walk runs within `budget` and resumes at the next call when it runs
    /// out (a put in between starts it over); meanwhile, and while the parent's table is
    /// still being copied, the answer is the retryable `InUse`.
    ///
    /// # Errors
    /// `SnapshotNotFound`, `NotYourSnapshot`, `WrongState` (failed), `InUse` (work left:
    /// call again), `MissingChunks`, `RootMismatch` (the snapshot stays in progress).
    pub fn commit_snapshot(
        &mut self,
        caller: Caller,
        req: &CommitSnapshotRequest,
        now_ns: u64,
        budget: Budget<'_>,
    ) -> Result<SnapshotInfo, VaultError> {
        let mut record = self.owned_by(caller, req.snapshot_id)?;
        match &record.info.state {
            SnapshotState::InProgress => {}
            SnapshotState::Complete => {
                let root = record.info.root.expect("complete snapshots have a root");
                return if root == req.root {
                    Ok(record.info)
                } else {
                    Err(VaultError::RootMismatch {
                        sent: req.root,
                        computed: root,
                    })
                };
            }
            SnapshotState::Failed { .. } => return Err(wrong_state(&record.info, "InProgress")),
        }
        let (id, count) = (record.info.id, record.info.chunk_count);
        if !self.catalogue.advance_inherit(&mut self.store, id, budget) {
            return Err(VaultError::InUse(id));
        }
        let walked = match self.catalogue.walk_for_commit(id, count, budget) {
            CommitWalk::Partial => return Err(VaultError::InUse(id)),
            CommitWalk::Done(walked) => walked,
        };
        self.catalogue.reset_commit(id);
        if let Some(first) = walked.first_missing {
            return Err(VaultError::MissingChunks {
                missing: walked.missing,
                first,
            });
        }
        let computed = walked
            .root
            .image_root(record.info.image_size, record.info.chunk_size)
            .expect("one digest per index walked");
        if computed != req.root {
            return Err(VaultError::RootMismatch {
                sent: req.root,
                computed,
            });
        }
        record.info.state = SnapshotState::Complete;
        record.info.completed_at_ns = Some(now_ns);
        record.info.root = Some(computed);
        record.updated_at_ns = now_ns;
        self.catalogue.save(record.clone());
        Ok(record.info)
    }

    /// Gives up a snapshot in progress; it stays listed as failed until retention
    /// removes it.
    ///
    /// # Errors
    /// `SnapshotNotFound`, `NotYourSnapshot`, `WrongState` (not in progress),
    /// `InvalidRequest` (a reason over [`MAX_REASON_BYTES`]).
    pub fn abort_snapshot(
        &mut self,
        caller: Caller,
        id: SnapshotId,
        reason: String,
        now_ns: u64,
    ) -> Result<(), VaultError> {
        let mut record = self.writable(caller, id)?;
        if reason.len() > MAX_REASON_BYTES {
            return Err(invalid(format!(
                "reason longer than {MAX_REASON_BYTES} bytes"
            )));
        }
        record.info.state = SnapshotState::Failed { reason };
        record.updated_at_ns = now_ns;
        self.catalogue.reset_commit(id);
        self.catalogue.save(record);
        Ok(())
    }

    /// The record of a snapshot the caller may write to (its own, or any for owners).
    fn owned_by(&self, caller: Caller, id: SnapshotId) -> Result<SnapshotRecord, VaultError> {
        let record = self
            .catalogue
            .get(id)
            .ok_or(VaultError::SnapshotNotFound(id))?;
        if !caller.is_owner && record.info.source != caller.principal {
            return Err(VaultError::NotYourSnapshot {
                id,
                owner: record.info.source,
            });
        }
        Ok(record)
    }

    /// Like `owned_by`, and the snapshot must be in progress.
    fn writable(&self, caller: Caller, id: SnapshotId) -> Result<SnapshotRecord, VaultError> {
        let record = self.owned_by(caller, id)?;
        if record.info.state != SnapshotState::InProgress {
            return Err(wrong_state(&record.info, "InProgress"));
        }
        Ok(record)
    }

    /// Validates every chunk of a batch against the snapshot and the store, without
    /// writing anything.
    fn plan_batch<'a>(
        &self,
        info: &SnapshotInfo,
        chunks: &'a [ChunkPut],
    ) -> Result<Vec<Planned<'a>>, VaultError> {
        let mut in_batch: BTreeMap<u32, Hash256> = BTreeMap::new();
        let mut stored_in_batch: BTreeSet<Hash256> = BTreeSet::new();
        let mut plan = Vec::with_capacity(chunks.len());
        for c in chunks {
            let bad = |reason: String| VaultError::BadChunk {
                index: c.index,
                reason,
            };
            if c.index >= info.chunk_count {
                return Err(bad(format!(
                    "index out of range: the image has {} chunks",
                    info.chunk_count
                )));
            }
            let expected_len = chunk_len(c.index, info.image_size, info.chunk_size);
            if c.len != expected_len {
                return Err(bad(format!(
                    "length {} announced, chunk {} is {expected_len} bytes",
                    c.len, c.index
                )));
            }
            let recorded = in_batch.get(&c.index).copied().or_else(|| {
                self.catalogue
                    .entry(info.id, c.index)
                    .filter(|e| e.set_here)
                    .map(|e| e.hash)
            });
            if let Some(recorded) = recorded {
                if recorded != c.hash {
                    return Err(VaultError::ConflictingChunk {
                        index: c.index,
                        recorded,
                        sent: c.hash,
                    });
                }
                plan.push(Planned {
                    index: c.index,
                    hash: c.hash,
                    len: c.len,
                    action: Action::Repeat,
                });
                continue;
            }
            let action = match &c.body {
                ChunkBody::Data { codec, bytes } => {
                    if bytes.len() > c.len as usize {
                        return Err(bad(format!(
                            "{} encoded bytes for a {}-byte chunk: send it raw",
                            bytes.len(),
                            c.len
                        )));
                    }
                    verify_frame(*codec, bytes, c.len, &c.hash).map_err(|e| bad(e.to_string()))?;
                    stored_in_batch.insert(c.hash);
                    Action::Store {
                        codec: *codec,
                        bytes,
                    }
                }
                ChunkBody::Known if c.hash == zero_hash(c.len) => Action::Zero,
                // Only a chunk this snapshot's own source references (or this batch
                // stores): whether another source stored it is none of its business.
                ChunkBody::Known
                    if stored_in_batch.contains(&c.hash)
                        || self.catalogue.source_holds(info.source, &c.hash) =>
                {
                    Action::Reference
                }
                ChunkBody::Known => Action::Missing,
                ChunkBody::Zero => {
                    let zero = zero_hash(c.len);
                    if c.hash != zero {
                        return Err(bad(format!(
                            "a zero chunk of {} bytes hashes to {zero}, not {}",
                            c.len, c.hash
                        )));
                    }
                    Action::Zero
                }
            };
            if !matches!(action, Action::Missing) {
                in_batch.insert(c.index, c.hash);
            }
            plan.push(Planned {
                index: c.index,
                hash: c.hash,
                len: c.len,
                action,
            });
        }
        Ok(plan)
    }
}

fn invalid(reason: impl Into<String>) -> VaultError {
    VaultError::InvalidRequest(reason.into())
}

pub(crate) fn wrong_state(info: &SnapshotInfo, expected: &str) -> VaultError {
    VaultError::WrongState {
        id: info.id,
        state: info.state.clone(),
        expected: expected.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
