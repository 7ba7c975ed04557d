//! How the outcome of a canister job's call moves the job on.

use std::time::Duration;

use canvault_protocol::canister_image::{
    CANISTER_IMAGE_CHUNK_SIZE, CanisterImageLayout, CanisterJobKind, CanisterJobState, Part,
};
use canvault_protocol::vault_api::{
    BeginSnapshotRequest, ChunkPut, PutChunksRequest, SnapshotKind,
};
use ic_management_canister_types::CanisterStatusType;
use ic_stable_structures::Memory;
use serde_bytes::ByteBuf;

use super::plan::{Phase, after_stop, decode_metadata, owner, phase};
use super::{CHUNK, CanisterJobRecord, retry_delay};
use crate::restore_job::Failure;
use crate::vault::Vault;

/// How a step's call ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The canister's status (`canister_status`).
    Status(CanisterStatusType),
    /// Stop, start, load or delete succeeded.
    Acked,
    /// The snapshot a take or metadata upload created (or a lost reply's, found again).
    Created(ByteBuf),
    /// A take or upload failed after listing the canister's snapshots (`known`).
    NotCreated {
        /// The canister's snapshots before the attempt.
        known: Vec<ByteBuf>,
        /// Why it failed.
        failure: Failure,
    },
    /// The candid reply of `read_canister_snapshot_metadata`.
    Metadata(ByteBuf),
    /// The answers of a step's reads, in order.
    Read(Vec<Result<ByteBuf, Failure>>),
    /// The answers of a step's uploads, in order.
    Uploaded(Vec<Result<(), Failure>>),
    /// The call failed.
    Failed(Failure),
}

/// How far a step's progress went, and the failure after it.
struct Progress {
    done: u64,
    bytes: u64,
    failure: Option<Failure>,
}

impl<M: Memory> Vault<M> {
    /// Records how the step of canister job `id` ended; returns the delay before the
    /// next step, or `None` when the job is over.
    pub fn canister_record(&mut self, id: u64, outcome: Outcome, now_ns: u64) -> Option<Duration> {
        let mut r = self.canister_jobs.map.get(&id)?;
        let phase = phase(&r)?;
        let progress = |done| Progress {
            done,
            bytes: 0,
            failure: None,
        };
        let result: Result<Progress, Failure> = match (phase, outcome) {
            (Phase::Status, Outcome::Status(status)) => {
                r.found = Some(status);
                Ok(progress(1))
            }
            (Phase::Stop, Outcome::Acked) => {
                r.job.state = after_stop(&r.job.kind);
                Ok(progress(1))
            }
            (Phase::Start, Outcome::Acked) => {
                r.stopped = false;
                Ok(progress(1))
            }
            (Phase::Load, Outcome::Acked) => {
                r.loaded = true;
                Ok(progress(1))
            }
            (Phase::DeleteNative, Outcome::Acked) => {
                r.native = None;
                Ok(progress(1))
            }
            (Phase::DeleteCheck, Outcome::Acked) => {
                r.check = None;
                Ok(progress(1))
            }
            (Phase::Take | Phase::TakeCheck | Phase::UploadMetadata, Outcome::Created(snap)) => {
                r.known = None;
                match phase {
                    Phase::Take => {
                        r.native = Some(snap);
                        r.job.state = CanisterJobState::ReadingMetadata;
                    }
                    Phase::TakeCheck => {
                        r.check = Some(snap);
                        r.job.state = CanisterJobState::Verifying { next_index: 0 };
                    }
                    _ => {
                        r.native = Some(snap);
                        r.job.state = CanisterJobState::Uploading { next_index: 0 };
                    }
                }
                Ok(progress(1))
            }
            (
                Phase::Take | Phase::TakeCheck | Phase::UploadMetadata,
                Outcome::NotCreated { known, failure },
            ) => {
                r.known.get_or_insert(known);
                Err(failure)
            }
            (Phase::ReadMetadata, Outcome::Metadata(bytes)) => {
                self.begin_copy(&mut r, bytes, now_ns).map(|()| progress(1))
            }
            (Phase::VerifyMetadata, Outcome::Metadata(bytes)) => {
                verify_metadata(&r, &bytes).map(|()| {
                    r.job.state = CanisterJobState::CleaningUp;
                    progress(1)
                })
            }
            (Phase::Read(next), Outcome::Read(results)) => {
                let p = self.store_read(&mut r, next, results, now_ns);
                r.job.state = CanisterJobState::Copying {
                    next_index: next + p.done,
                };
                Ok(p)
            }
            (Phase::Verify(next), Outcome::Read(results)) => {
                let p = self.verify_read(&r, next, results);
                r.job.state = CanisterJobState::Verifying {
                    next_index: next + p.done,
                };
                Ok(p)
            }
            (Phase::Upload(next), Outcome::Uploaded(results)) => {
                let header = r
                    .layout
                    .as_ref()
                    .map_or(0, CanisterImageLayout::header_index);
                let mut p = progress(0);
                for result in results {
                    if let Err(f) = result {
                        p.failure = Some(f);
                        break;
                    }
                    p.done += 1;
                }
                p.bytes = p.done * u64::from(CANISTER_IMAGE_CHUNK_SIZE);
                let next_index = next + p.done;
                r.job.state = if next_index >= header {
                    CanisterJobState::Stopping
                } else {
                    CanisterJobState::Uploading { next_index }
                };
                Ok(p)
            }
            (_, Outcome::Failed(failure)) => Err(failure),
            (phase, outcome) => Err(Failure::Permanent(format!(
                "internal error: outcome {outcome:?} in phase {phase:?}"
            ))),
        };
        let failure = match result {
            Ok(p) => {
                r.job.bytes += p.bytes;
                if p.done > 0 {
                    r.consecutive_failures = 0;
                }
                p.failure
            }
            Err(f) => Some(f),
        };
        // Starting the canister and deleting the job's snapshots are retried whatever
        // the reject (up to MAX_RETRIES in a row): giving up leaves the app stopped or
        // its snapshot budget spent.
        let failure = match (phase, failure) {
            (
                Phase::Start | Phase::DeleteNative | Phase::DeleteCheck,
                Some(Failure::Permanent(m)),
            ) => Some(Failure::Retry(m)),
            (_, f) => f,
        };
        r.updated_at_ns = now_ns;
        self.canister_jobs.map.insert(id, r.clone());
        match failure {
            None => Some(Duration::ZERO),
            Some(Failure::Retry(reason)) => {
                r.job.retries += 1;
                r.consecutive_failures += 1;
                r.job.last_error = Some(reason.clone());
                let failures = r.consecutive_failures;
                self.canister_jobs.map.insert(id, r);
                match retry_delay(failures) {
                    Some(delay) => Some(delay),
                    None => {
                        self.canister_give_up(
                            id,
                            format!("gave up after {failures} failures in a row; last: {reason}"),
                            now_ns,
                        );
                        Some(Duration::ZERO)
                    }
                }
            }
            Some(Failure::Permanent(reason)) => {
                r.job.last_error = Some(reason.clone());
                self.canister_jobs.map.insert(id, r);
                self.canister_give_up(id, reason, now_ns);
                Some(Duration::ZERO)
            }
        }
    }

    /// Lays the image out from the metadata and begins its catalogue snapshot.
    fn begin_copy(
        &mut self,
        r: &mut CanisterJobRecord,
        bytes: ByteBuf,
        now_ns: u64,
    ) -> Result<(), Failure> {
        let m = decode_metadata(&bytes).map_err(Failure::Permanent)?;
        let CanisterJobKind::Backup(req) = &r.job.kind else {
            unreachable!("only backups read their snapshot's metadata first")
        };
        let layout = CanisterImageLayout {
            wasm_module_bytes: m.wasm_module_size,
            wasm_memory_bytes: m.wasm_memory_size,
            stable_memory_bytes: m.stable_memory_size,
            wasm_chunks: u32::try_from(m.wasm_chunk_store.len())
                .map_err(|_| Failure::Permanent("too many wasm chunks".into()))?,
        };
        let begin = BeginSnapshotRequest {
            parent: None,
            image_size: layout.image_size(),
            chunk_size: CANISTER_IMAGE_CHUNK_SIZE,
            nonce: r.job.id,
            label: req.label.clone(),
            source: Some(req.canister),
        };
        let caller = owner(r);
        let begun = self
            .begin_snapshot(caller, begin, None, now_ns, &|| true)
            .map_err(|e| Failure::Permanent(format!("begin_snapshot: {e}")))?;
        let mut record = self.catalogue.get(begun.snapshot_id).expect("just begun");
        record.info.kind = Some(SnapshotKind::WholeCanister(layout.clone()));
        self.catalogue.save(record);
        r.job.snapshot_id = Some(begun.snapshot_id);
        r.metadata = Some(bytes);
        r.layout = Some(layout);
        r.job.state = CanisterJobState::Copying { next_index: 0 };
        Ok(())
    }

    /// Stores the image chunks read from `next` on, in order, up to the first failure.
    fn store_read(
        &mut self,
        r: &mut CanisterJobRecord,
        next: u64,
        results: Vec<Result<ByteBuf, Failure>>,
        now_ns: u64,
    ) -> Progress {
        let layout = r.layout.clone().expect("copying a laid-out image");
        let snapshot_id = r.job.snapshot_id.expect("begun");
        let mut p = Progress {
            done: 0,
            bytes: 0,
            failure: None,
        };
        for (i, result) in (next..).zip(results) {
            let data = match result {
                Ok(data) => data,
                Err(f) => {
                    p.failure = Some(f);
                    break;
                }
            };
            let piece = layout.piece(i).expect("reads stop before the header");
            let expected = match piece.part {
                Part::WasmChunk(_) => data.len() <= CHUNK && !data.is_empty(),
                _ => data.len() as u64 == piece.len,
            };
            if !expected {
                p.failure = Some(Failure::Permanent(format!(
                    "image chunk {i}: read {} bytes of {:?}, expected {}",
                    data.len(),
                    piece.part,
                    piece.len
                )));
                break;
            }
            if let Part::WasmChunk(_) = piece.part {
                r.wasm_chunk_lengths.push(data.len() as u32);
            }
            let mut raw = data.into_vec();
            let read = raw.len() as u64;
            raw.resize(CHUNK, 0);
            let index = u32::try_from(i).expect("at most MAX_SNAPSHOT_CHUNKS");
            let put = ChunkPut::with_bytes(index, &raw);
            let hash = put.hash;
            let req = PutChunksRequest {
                snapshot_id,
                chunks: vec![put],
            };
            if let Err(e) = self.put_chunks(owner(r), &req, now_ns) {
                p.failure = Some(Failure::Permanent(format!("storing chunk {i}: {e}")));
                break;
            }
            r.root.push(hash);
            p.done += 1;
            p.bytes += read;
        }
        p
    }

    /// Compares the image chunks read back from `next` on with the stored ones.
    fn verify_read(
        &self,
        r: &CanisterJobRecord,
        next: u64,
        results: Vec<Result<ByteBuf, Failure>>,
    ) -> Progress {
        let layout = r.layout.as_ref().expect("restores are laid out");
        let snapshot_id = r.job.snapshot_id.expect("restores read a snapshot");
        let mut p = Progress {
            done: 0,
            bytes: 0,
            failure: None,
        };
        for (i, result) in (next..).zip(results) {
            let mut raw = match result {
                Ok(data) => data.into_vec(),
                Err(f) => {
                    p.failure = Some(f);
                    break;
                }
            };
            raw.resize(CHUNK, 0);
            let index = u32::try_from(i).expect("at most MAX_SNAPSHOT_CHUNKS");
            let stored = self.catalogue.entry(snapshot_id, index).map(|e| e.hash);
            let loaded = ChunkPut::with_bytes(index, &raw).hash;
            if stored != Some(loaded) {
                let part = layout.piece(i).map(|p| p.part);
                p.failure = Some(Failure::Permanent(format!(
                    "verification: image chunk {i} ({part:?}) of the loaded canister differs from the snapshot"
                )));
                break;
            }
            p.done += 1;
        }
        p
    }
}

/// Compares the loaded canister's snapshot metadata with the stored one: sizes, globals,
/// certified data, timer and chunk store.
fn verify_metadata(r: &CanisterJobRecord, bytes: &[u8]) -> Result<(), Failure> {
    let stored = decode_metadata(r.metadata.as_ref().expect("restores carry the metadata"))
        .map_err(Failure::Permanent)?;
    let loaded = decode_metadata(bytes).map_err(Failure::Permanent)?;
    fn enc<T: candid::CandidType>(v: &T) -> Vec<u8> {
        candid::encode_one(v).unwrap_or_default()
    }
    let hashes = |m: &ic_management_canister_types::ReadCanisterSnapshotMetadataResult| {
        let mut h: Vec<Vec<u8>> = m.wasm_chunk_store.iter().map(|c| c.hash.clone()).collect();
        h.sort();
        h
    };
    let mut differs = Vec::new();
    if (
        stored.wasm_module_size,
        stored.wasm_memory_size,
        stored.stable_memory_size,
    ) != (
        loaded.wasm_module_size,
        loaded.wasm_memory_size,
        loaded.stable_memory_size,
    ) {
        differs.push("sizes");
    }
    if enc(&stored.globals) != enc(&loaded.globals) {
        differs.push("globals");
    }
    if stored.certified_data != loaded.certified_data {
        differs.push("certified data");
    }
    if enc(&stored.global_timer) != enc(&loaded.global_timer) {
        differs.push("global timer");
    }
    if hashes(&stored) != hashes(&loaded) {
        differs.push("wasm chunk store");
    }
    if differs.is_empty() {
        Ok(())
    } else {
        Err(Failure::Permanent(format!(
            "verification: the loaded canister's {} differ from the snapshot",
            differs.join(", ")
        )))
    }
}
