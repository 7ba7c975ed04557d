//! `snapshot upload`: a snapshot file into a vault, as a new complete snapshot.
//!
//! The file is verified offline first, so a damaged copy is never sent. Then:
//! `begin_snapshot` (naming the source, which owners may do), `put_chunks` in batches of
//! at most `MAX_BATCH_PAYLOAD_BYTES` of chunk data, `commit_snapshot` with the file's
//! root (the vault recomputes it). The begin nonce is derived from the file's root and
//! source, so running an interrupted upload again continues the same snapshot: it reads
//! the snapshot's chunk table first and skips every chunk already recorded.
//!
//! Ingress costs the vault 2,000 cycles per byte, so a batch goes out first with every
//! data chunk as `Known` (digests only); the vault records those it already stores and
//! names the rest, whose bytes then follow. Uploading a copy of a snapshot the vault
//! still holds chunks of (a deleted snapshot, another source's identical data) sends
//! almost no chunk bytes.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use candid::Principal;
use canvault_protocol::Hash256;
use canvault_protocol::chunk::{ENTRY_OVERHEAD_BYTES, MAX_BATCH_PAYLOAD_BYTES};
use canvault_protocol::vault_api::{
    BeginSnapshotRequest, ChunkBody, ChunkPut, CommitSnapshotRequest, PutChunksRequest,
    SnapshotInfo, SnapshotState,
};
use serde_bytes::ByteBuf;

use canvault_protocol::canister_image::CANISTER_IMAGE_CHUNK_SIZE;

use crate::client::VaultClient;
use crate::error::{CliError, CliResult};
use crate::file_format::{RecordBody, SnapshotReader};
use crate::native_canister;
use crate::progress::ProgressMode;
use crate::verify;

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReport {
    /// The snapshot created in the vault.
    pub snapshot: SnapshotInfo,
    /// `put_chunks` calls made.
    pub batches: u32,
    /// Encoded chunk bytes sent.
    pub bytes_sent: u64,
    /// Chunks an earlier, interrupted run had already recorded (skipped).
    pub resumed_chunks: u32,
    /// Data chunks the vault already stored, recorded by digest without their bytes.
    pub deduplicated_chunks: u32,
}

/// The idempotency key of an upload: the same file to the same source gives the same key.
#[must_use]
pub fn upload_nonce(root: &Hash256, source: Principal) -> u64 {
    let h = Hash256::of_parts(&[b"canvault upload", &root.0, source.as_slice()]);
    u64::from_le_bytes(h.0[..8].try_into().expect("8 bytes"))
}

fn payload(put: &ChunkPut) -> usize {
    ENTRY_OVERHEAD_BYTES
        + match &put.body {
            ChunkBody::Data { bytes, .. } => bytes.len(),
            ChunkBody::Known | ChunkBody::Zero => 0,
        }
}

/// Sends one batch: digests first (every data chunk as `Known`), then the bytes of those
/// the vault does not store. Returns the decoded bytes the batch covers.
fn send(
    vault: &VaultClient<'_>,
    snapshot_id: u64,
    batch: Vec<ChunkPut>,
    report: &mut UploadReport,
) -> CliResult<u64> {
    let n = batch.len();
    let raw: u64 = batch.iter().map(|c| u64::from(c.len)).sum();
    let data_chunks = batch
        .iter()
        .filter(|c| matches!(c.body, ChunkBody::Data { .. }))
        .count();
    let digests: Vec<ChunkPut> = batch
        .iter()
        .map(|c| ChunkPut {
            index: c.index,
            hash: c.hash,
            len: c.len,
            body: match c.body {
                ChunkBody::Data { .. } => ChunkBody::Known,
                ChunkBody::Known => ChunkBody::Known,
                ChunkBody::Zero => ChunkBody::Zero,
            },
        })
        .collect();
    let first = vault.put_chunks(PutChunksRequest {
        snapshot_id,
        chunks: digests,
    })?;
    report.batches += 1;
    let missing: BTreeSet<u32> = first.missing.iter().copied().collect();
    if first.recorded as usize + missing.len() != n {
        return Err(short_batch(vault, first.recorded, n, &first.missing));
    }
    report.deduplicated_chunks += u32::try_from(data_chunks - missing.len()).expect("a batch");
    if missing.is_empty() {
        return Ok(raw);
    }
    let rest: Vec<ChunkPut> = batch
        .into_iter()
        .filter(|c| missing.contains(&c.index))
        .collect();
    let bytes: u64 = rest
        .iter()
        .map(|c| (payload(c) - ENTRY_OVERHEAD_BYTES) as u64)
        .sum();
    let second = vault.put_chunks(PutChunksRequest {
        snapshot_id,
        chunks: rest,
    })?;
    report.batches += 1;
    if !second.missing.is_empty() || second.recorded as usize != missing.len() {
        return Err(short_batch(
            vault,
            second.recorded,
            missing.len(),
            &second.missing,
        ));
    }
    report.bytes_sent += bytes;
    Ok(raw)
}

fn short_batch(vault: &VaultClient<'_>, recorded: u32, sent: usize, missing: &[u32]) -> CliError {
    CliError::Integrity(format!(
        "vault {} recorded {recorded} of {sent} chunks (missing {missing:?})",
        vault.id
    ))
}

/// Uploads `path` into `vault` as a snapshot of `source` (default: the file's source).
///
/// # Errors
/// The file does not verify; the caller is not an owner; a call failed (run it again to
/// continue); the vault refused a chunk or the root.
pub fn upload(
    vault: &VaultClient<'_>,
    path: &Path,
    source: Option<Principal>,
    label: Option<String>,
    progress: ProgressMode,
) -> CliResult<UploadReport> {
    // The last chunk says whether this is a whole-canister image (its header).
    let (mut last_index, mut last_chunk) = (None, Vec::new());
    let checked = verify::verify_with(path, progress, |record, bytes| {
        if last_index.is_none_or(|i| record.index > i) {
            last_index = Some(record.index);
            last_chunk.clear();
            last_chunk.extend_from_slice(bytes);
        }
        Ok(())
    })?;
    let meta = checked.meta;
    if meta.chunk_size == CANISTER_IMAGE_CHUNK_SIZE
        && native_canister::header_in_last_chunk(&last_chunk, meta.image_size).is_some()
    {
        return Err(CliError::Usage(format!(
            "{} is a whole-canister snapshot: a vault takes whole canisters from the canister itself (`canvault backup canister`), not from a file; load it with `canvault snapshot export` and `icp canister snapshot upload`",
            path.display()
        )));
    }
    let root = meta.root_hash().map_err(|e| CliError::bad_file(path, e))?;
    let source = match source {
        Some(s) => s,
        None => meta
            .source_principal()
            .map_err(|e| CliError::bad_file(path, e))?,
    };
    let label = label.or_else(|| match (&meta.vault, meta.snapshot_id) {
        (Some(v), Some(id)) => Some(format!("uploaded copy of snapshot {id} of vault {v}")),
        _ => meta.label.clone(),
    });
    let begun = vault.begin_snapshot(BeginSnapshotRequest {
        parent: None,
        image_size: meta.image_size,
        chunk_size: meta.chunk_size,
        nonce: upload_nonce(&root, source),
        label,
        source: Some(source),
    })?;
    let snapshot_id = begun.snapshot_id;
    let existing = vault.get_snapshot(snapshot_id)?;
    if existing.state == SnapshotState::Complete && existing.root == Some(root) {
        // This file was uploaded before (same caller, same source, same root).
        return Ok(UploadReport {
            snapshot: existing,
            batches: 0,
            bytes_sent: 0,
            resumed_chunks: 0,
            deduplicated_chunks: 0,
        });
    }

    let recorded: HashMap<u32, Hash256> = vault
        .manifest(snapshot_id)?
        .into_iter()
        .map(|e| (e.index, e.hash))
        .collect();
    let bar = progress.bytes(meta.image_size, "upload");
    let mut report = UploadReport {
        snapshot: existing,
        batches: 0,
        bytes_sent: 0,
        resumed_chunks: 0,
        deduplicated_chunks: 0,
    };
    let mut reader = SnapshotReader::open(path)?;
    let mut batch: Vec<ChunkPut> = Vec::new();
    let mut batch_bytes = 0usize;
    while let Some(record) = reader.next_record()? {
        if recorded.get(&record.index) == Some(&record.hash) {
            report.resumed_chunks += 1;
            bar.inc(u64::from(record.len));
            continue;
        }
        let body = match record.body {
            RecordBody::Data { codec, bytes } => ChunkBody::Data {
                codec,
                bytes: ByteBuf::from(bytes),
            },
            RecordBody::Zero => ChunkBody::Zero,
        };
        let put = ChunkPut {
            index: record.index,
            hash: record.hash,
            len: record.len,
            body,
        };
        let size = payload(&put);
        if !batch.is_empty() && batch_bytes + size > MAX_BATCH_PAYLOAD_BYTES {
            bar.inc(send(
                vault,
                snapshot_id,
                std::mem::take(&mut batch),
                &mut report,
            )?);
            batch_bytes = 0;
        }
        batch_bytes += size;
        batch.push(put);
    }
    if !batch.is_empty() {
        bar.inc(send(vault, snapshot_id, batch, &mut report)?);
    }
    report.snapshot = vault.commit_snapshot(CommitSnapshotRequest { snapshot_id, root })?;
    bar.finish_and_clear();
    Ok(report)
}
