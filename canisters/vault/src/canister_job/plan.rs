//! What a canister job does next: the phase its record is in, the local work done
//! at once (writing the header chunk, committing, finishing), and the call to make.

use std::time::Duration;

use candid::Principal;
use canvault_protocol::canister_image::{
    CanisterImageHeader, CanisterJobKind, CanisterJobState, Part,
};
use canvault_protocol::vault_api::{
    ChunkPut, CommitSnapshotRequest, PutChunksRequest, SnapshotState, VaultError,
};
use ic_management_canister_types::{
    CanisterStatusType, ReadCanisterSnapshotMetadataResult, SnapshotDataKind, SnapshotDataOffset,
    UploadCanisterSnapshotDataArgs, UploadCanisterSnapshotMetadataArgs,
};
use ic_stable_structures::Memory;
use serde_bytes::ByteBuf;

use super::{CHUNK, CanisterJobRecord, canister_of};
use crate::backup::MAX_REASON_BYTES;
use crate::catalogue::Budget;
use crate::roles::Caller;
use crate::vault::Vault;

/// The call a step makes.
#[derive(Debug, Clone)]
pub enum Step {
    /// `canister_status` (before a stop: is it running?).
    Status(Principal),
    /// `stop_canister`.
    Stop(Principal),
    /// `start_canister`.
    Start(Principal),
    /// `list_canister_snapshots`, then: adopt a snapshot not in `known` (a take whose
    /// reply was lost) if `known` is set, else `take_canister_snapshot`.
    Take {
        /// The canister.
        canister: Principal,
        /// Its snapshots before the job's first attempt.
        known: Option<Vec<ByteBuf>>,
    },
    /// Like `Take`, creating the snapshot with `upload_canister_snapshot_metadata`.
    UploadMetadata {
        /// Snapshots before the first attempt.
        known: Option<Vec<ByteBuf>>,
        /// The argument.
        args: UploadCanisterSnapshotMetadataArgs,
    },
    /// `read_canister_snapshot_metadata`.
    ReadMetadata {
        /// The canister.
        canister: Principal,
        /// Its snapshot.
        snapshot: ByteBuf,
    },
    /// `read_canister_snapshot_data` calls, made concurrently, answered in order.
    Read {
        /// The canister.
        canister: Principal,
        /// Its snapshot.
        snapshot: ByteBuf,
        /// One read per image chunk, from the job's next index on.
        kinds: Vec<SnapshotDataKind>,
    },
    /// `upload_canister_snapshot_data` calls, made concurrently; `None` for an image
    /// chunk with nothing to upload (all zeros in a memory: the snapshot starts zeroed).
    Upload(Vec<Option<UploadCanisterSnapshotDataArgs>>),
    /// `load_canister_snapshot`.
    Load {
        /// The target.
        canister: Principal,
        /// The uploaded snapshot.
        snapshot: ByteBuf,
    },
    /// `delete_canister_snapshot` (an unknown snapshot counts as deleted).
    Delete {
        /// The canister.
        canister: Principal,
        /// Its snapshot.
        snapshot: ByteBuf,
    },
}

/// What the driver does next for a job.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Make this call, then record its outcome.
    Call(Step),
    /// Nothing to call now: plan again after this delay (a commit walk left work).
    Later(Duration),
    /// The job is over.
    Over,
}

/// Where a job stands; computed from its record, by the planner and by the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Status,
    Stop,
    Start,
    Take,
    ReadMetadata,
    Read(u64),
    PutHeader,
    Commit,
    UploadMetadata,
    Upload(u64),
    Load,
    TakeCheck,
    Verify(u64),
    VerifyMetadata,
    DeleteNative,
    DeleteCheck,
    Finish,
}

/// The phase of an active job; `None` once it is done or failed.
pub(super) fn phase(r: &CanisterJobRecord) -> Option<Phase> {
    use CanisterJobState as S;
    let header = r.layout.as_ref().map_or(0, |l| l.header_index());
    Some(match &r.job.state {
        S::Done | S::Failed { .. } => return None,
        S::CleaningUp => cleanup(r),
        _ if r.failure.is_some() => cleanup(r),
        S::Stopping if r.found.is_none() && !r.stopped => Phase::Status,
        S::Stopping => Phase::Stop,
        S::Taking => Phase::Take,
        S::ReadingMetadata | S::Copying { .. } | S::Committing if r.stopped => Phase::Start,
        S::ReadingMetadata => Phase::ReadMetadata,
        S::Copying { next_index } if *next_index >= header => Phase::PutHeader,
        S::Copying { next_index } => Phase::Read(*next_index),
        S::Committing => Phase::Commit,
        S::UploadingMetadata => Phase::UploadMetadata,
        S::Uploading { next_index } => Phase::Upload(*next_index),
        S::Loading if r.loaded => Phase::TakeCheck,
        S::Loading => Phase::Load,
        S::Verifying { .. } if r.stopped => Phase::Start,
        S::Verifying { next_index } if *next_index >= header => Phase::VerifyMetadata,
        S::Verifying { next_index } => Phase::Verify(*next_index),
    })
}

/// The state a job moves to once its canister is stopped: a backup takes its snapshot,
/// a restore loads.
pub(super) fn after_stop(kind: &CanisterJobKind) -> CanisterJobState {
    match kind {
        CanisterJobKind::Backup(_) => CanisterJobState::Taking,
        CanisterJobKind::Restore(_) => CanisterJobState::Loading,
    }
}

/// The next cleanup phase: start the canister, delete the job's native snapshots, finish.
fn cleanup(r: &CanisterJobRecord) -> Phase {
    if r.stopped {
        Phase::Start
    } else if r.native.is_some() && !r.keep_native {
        Phase::DeleteNative
    } else if r.check.is_some() {
        Phase::DeleteCheck
    } else {
        Phase::Finish
    }
}

impl<M: Memory> Vault<M> {
    /// Plans the next step of canister job `id`, doing local work (header chunk,
    /// commit, finish) at once. Marks the canister as possibly stopped before a stop is
    /// planned. At most `parallel` reads or uploads go in one step.
    pub fn canister_step(
        &mut self,
        id: u64,
        parallel: usize,
        now_ns: u64,
        budget: Budget<'_>,
    ) -> Plan {
        loop {
            let Some(mut r) = self.canister_jobs.map.get(&id) else {
                return Plan::Over;
            };
            let Some(phase) = phase(&r) else {
                return Plan::Over;
            };
            let canister = canister_of(&r.job.kind);
            let native = || r.native.clone().expect("phase implies the snapshot");
            let step = match phase {
                Phase::Status => Step::Status(canister),
                Phase::Stop => match r.found {
                    // Already stopped: nothing to stop, nothing to start afterwards.
                    Some(CanisterStatusType::Stopped) => {
                        r.job.state = after_stop(&r.job.kind);
                        r.updated_at_ns = now_ns;
                        self.canister_jobs.map.insert(id, r);
                        continue;
                    }
                    // Stopping: the stop call waits for it; it stays stopped afterwards.
                    Some(CanisterStatusType::Stopping) => Step::Stop(canister),
                    _ => {
                        r.stopped = true;
                        self.canister_jobs.map.insert(id, r);
                        Step::Stop(canister)
                    }
                },
                Phase::Start => Step::Start(canister),
                Phase::Take | Phase::TakeCheck => Step::Take {
                    canister,
                    known: r.known.clone(),
                },
                Phase::ReadMetadata => Step::ReadMetadata {
                    canister,
                    snapshot: native(),
                },
                Phase::VerifyMetadata => Step::ReadMetadata {
                    canister,
                    snapshot: r.check.clone().expect("verifying a check snapshot"),
                },
                Phase::Read(next) => Step::Read {
                    canister,
                    snapshot: native(),
                    kinds: self.read_kinds(&r, next, parallel),
                },
                Phase::Verify(next) => Step::Read {
                    canister,
                    snapshot: r.check.clone().expect("verifying a check snapshot"),
                    kinds: self.read_kinds(&r, next, parallel),
                },
                Phase::UploadMetadata => match upload_metadata_args(&r, canister) {
                    Ok(args) => Step::UploadMetadata {
                        known: r.known.clone(),
                        args,
                    },
                    Err(e) => {
                        self.canister_give_up(id, e, now_ns);
                        continue;
                    }
                },
                Phase::Upload(next) => match self.uploads(&r, canister, next, parallel) {
                    Ok(uploads) => Step::Upload(uploads),
                    Err(e) => {
                        self.canister_give_up(id, e, now_ns);
                        continue;
                    }
                },
                Phase::Load => Step::Load {
                    canister,
                    snapshot: native(),
                },
                Phase::DeleteNative => Step::Delete {
                    canister,
                    snapshot: native(),
                },
                Phase::DeleteCheck => Step::Delete {
                    canister,
                    snapshot: r.check.clone().expect("phase implies the snapshot"),
                },
                Phase::PutHeader => {
                    if let Err(e) = self.put_header(&mut r, now_ns) {
                        self.canister_give_up(id, e, now_ns);
                        continue;
                    }
                    r.job.state = CanisterJobState::Committing;
                    r.updated_at_ns = now_ns;
                    self.canister_jobs.map.insert(id, r);
                    continue;
                }
                Phase::Commit => {
                    let layout = r.layout.clone().expect("committing a laid-out image");
                    let root = r
                        .root
                        .image_root(
                            layout.image_size(),
                            canvault_protocol::canister_image::CANISTER_IMAGE_CHUNK_SIZE,
                        )
                        .expect("every chunk was pushed");
                    let req = CommitSnapshotRequest {
                        snapshot_id: r.job.snapshot_id.expect("begun"),
                        root,
                    };
                    match self.commit_snapshot(owner(&r), &req, now_ns, budget) {
                        Ok(_) => {
                            // The cleanup calls start in a message of their own.
                            r.job.state = CanisterJobState::CleaningUp;
                            r.updated_at_ns = now_ns;
                            self.canister_jobs.map.insert(id, r);
                            return Plan::Later(Duration::ZERO);
                        }
                        Err(VaultError::InUse(_)) => return Plan::Later(Duration::ZERO),
                        Err(e) => {
                            self.canister_give_up(id, format!("commit: {e}"), now_ns);
                            continue;
                        }
                    }
                }
                Phase::Finish => {
                    self.canister_finish(r, now_ns);
                    return Plan::Over;
                }
            };
            return Plan::Call(step);
        }
    }

    /// The reads of up to `parallel` image chunks from `next` on, stopping before the
    /// header chunk.
    fn read_kinds(
        &self,
        r: &CanisterJobRecord,
        next: u64,
        parallel: usize,
    ) -> Vec<SnapshotDataKind> {
        let layout = r.layout.as_ref().expect("reading a laid-out image");
        let hashes = r
            .metadata
            .as_ref()
            .and_then(|m| decode_metadata(m).ok())
            .map(|m| m.wasm_chunk_store)
            .unwrap_or_default();
        (next..layout.header_index())
            .take(parallel)
            .map(|i| {
                let p = layout.piece(i).expect("below the header");
                let (offset, size) = (p.offset, p.len);
                match p.part {
                    Part::WasmModule => SnapshotDataKind::WasmModule { offset, size },
                    Part::WasmMemory => SnapshotDataKind::WasmMemory { offset, size },
                    Part::StableMemory => SnapshotDataKind::StableMemory { offset, size },
                    Part::WasmChunk(n) => SnapshotDataKind::WasmChunk {
                        hash: hashes
                            .get(n as usize)
                            .map(|h| h.hash.clone())
                            .unwrap_or_default(),
                    },
                    Part::Header => unreachable!("reads stop before the header"),
                }
            })
            .collect()
    }

    /// The uploads of up to `parallel` image chunks from `next` on, before the header.
    fn uploads(
        &self,
        r: &CanisterJobRecord,
        canister: Principal,
        next: u64,
        parallel: usize,
    ) -> Result<Vec<Option<UploadCanisterSnapshotDataArgs>>, String> {
        let layout = r.layout.as_ref().expect("restores are laid out");
        let snapshot = r.job.snapshot_id.expect("restores read a snapshot");
        let uploaded = r.native.clone().expect("uploading into a snapshot");
        let mut out = Vec::new();
        for i in (next..layout.header_index()).take(parallel) {
            let p = layout.piece(i).expect("below the header");
            let zero = self
                .catalogue
                .entry(snapshot, u32::try_from(i).map_err(|e| e.to_string())?)
                .is_some_and(|e| e.zero);
            if zero && !matches!(p.part, Part::WasmChunk(_) | Part::WasmModule) {
                out.push(None);
                continue;
            }
            let mut raw = self.image_chunk(snapshot, i)?;
            let (kind, len) = match p.part {
                Part::WasmModule => (SnapshotDataOffset::WasmModule { offset: p.offset }, p.len),
                Part::WasmMemory => (SnapshotDataOffset::WasmMemory { offset: p.offset }, p.len),
                Part::StableMemory => {
                    (SnapshotDataOffset::StableMemory { offset: p.offset }, p.len)
                }
                Part::WasmChunk(n) => (
                    SnapshotDataOffset::WasmChunk,
                    u64::from(r.wasm_chunk_lengths[n as usize]),
                ),
                Part::Header => unreachable!("uploads stop before the header"),
            };
            raw.truncate(usize::try_from(len).map_err(|e| e.to_string())?);
            out.push(Some(UploadCanisterSnapshotDataArgs {
                canister_id: canister,
                snapshot_id: uploaded.to_vec(),
                kind,
                chunk: raw,
            }));
        }
        Ok(out)
    }

    /// Writes the header chunk (the image's last) from the record.
    fn put_header(&mut self, r: &mut CanisterJobRecord, now_ns: u64) -> Result<(), String> {
        let layout = r.layout.clone().expect("copying a laid-out image");
        let header = CanisterImageHeader {
            source: canister_of(&r.job.kind),
            layout: layout.clone(),
            wasm_chunk_lengths: r.wasm_chunk_lengths.clone(),
            metadata: r.metadata.clone().expect("read before copying"),
        };
        let raw = header.to_chunk().map_err(|e| e.to_string())?;
        let index = u32::try_from(layout.header_index()).map_err(|e| e.to_string())?;
        let put = ChunkPut::with_bytes(index, &raw);
        r.root.push(put.hash);
        let req = PutChunksRequest {
            snapshot_id: r.job.snapshot_id.expect("begun"),
            chunks: vec![put],
        };
        self.put_chunks(owner(r), &req, now_ns)
            .map_err(|e| format!("storing the header: {e}"))?;
        debug_assert!(raw.len() == CHUNK);
        Ok(())
    }

    /// Ends a job whose cleanup is done: `Done`, or `Failed` with its catalogue snapshot
    /// (if still in progress) aborted.
    fn canister_finish(&mut self, mut r: CanisterJobRecord, now_ns: u64) {
        r.job.state = match r.failure.take() {
            None => CanisterJobState::Done,
            Some(reason) => {
                let backup = matches!(r.job.kind, CanisterJobKind::Backup(_));
                if let Some(id) = r.job.snapshot_id.filter(|_| backup)
                    && self
                        .catalogue
                        .get(id)
                        .is_some_and(|s| s.info.state == SnapshotState::InProgress)
                {
                    let mut why = reason.clone();
                    why.truncate(MAX_REASON_BYTES);
                    let _ = self.abort_snapshot(owner(&r), id, why, now_ns);
                }
                CanisterJobState::Failed { reason }
            }
        };
        r.updated_at_ns = now_ns;
        self.canister_jobs.map.insert(r.job.id, r);
    }

    /// Moves job `id` into cleanup with `reason` (or, for a cleanup step, drops it).
    pub(super) fn canister_give_up(&mut self, id: u64, reason: String, now_ns: u64) {
        let Some(mut r) = self.canister_jobs.map.get(&id) else {
            return;
        };
        let cleaning = r.failure.is_some() || r.job.state == CanisterJobState::CleaningUp;
        match phase(&r) {
            Some(Phase::Start) => {
                r.stopped = false;
                note(&mut r, format!("could not start the canister: {reason}"));
            }
            Some(Phase::DeleteNative) if cleaning => {
                r.native = None;
                note(
                    &mut r,
                    format!("could not delete a native snapshot: {reason}"),
                );
            }
            Some(Phase::DeleteCheck) if cleaning => {
                r.check = None;
                note(
                    &mut r,
                    format!("could not delete a native snapshot: {reason}"),
                );
            }
            _ => {
                r.failure = Some(reason);
                r.job.state = CanisterJobState::CleaningUp;
            }
        }
        r.consecutive_failures = 0;
        r.updated_at_ns = now_ns;
        self.canister_jobs.map.insert(id, r);
    }
}

/// Adds `what` to the job's failure reason.
fn note(r: &mut CanisterJobRecord, what: String) {
    r.failure = Some(match r.failure.take() {
        Some(reason) => format!("{reason}; {what}"),
        None => what,
    });
}

/// The vault acting on its own catalogue snapshots.
pub(super) fn owner(r: &CanisterJobRecord) -> Caller {
    Caller {
        principal: r.creator,
        is_owner: true,
    }
}

/// Decodes a stored `read_canister_snapshot_metadata` reply.
pub(super) fn decode_metadata(bytes: &[u8]) -> Result<ReadCanisterSnapshotMetadataResult, String> {
    canvault_protocol::decode::decode_one(bytes).map_err(|e| format!("snapshot metadata: {e}"))
}

/// The `upload_canister_snapshot_metadata` argument that recreates the stored metadata.
fn upload_metadata_args(
    r: &CanisterJobRecord,
    canister: Principal,
) -> Result<UploadCanisterSnapshotMetadataArgs, String> {
    let m = decode_metadata(r.metadata.as_ref().expect("restores carry the metadata"))?;
    Ok(UploadCanisterSnapshotMetadataArgs {
        canister_id: canister,
        replace_snapshot: None,
        wasm_module_size: m.wasm_module_size,
        globals: m.globals.into_iter().flatten().collect(),
        wasm_memory_size: m.wasm_memory_size,
        stable_memory_size: m.stable_memory_size,
        certified_data: m.certified_data,
        global_timer: m.global_timer,
        on_low_wasm_memory_hook_status: m.on_low_wasm_memory_hook_status,
    })
}
