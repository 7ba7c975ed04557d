//! `snapshot download`: a vault snapshot into a local snapshot file, resumable and
//! verified.
//!
//! The file is written as `<FILE>.partial` and renamed only once complete and verified.
//! Every chunk is checked against its manifest digest (`chunk::decode_verified`) before
//! it is written, and the image root is recomputed at the end (`merkle::image_root`); a
//! mismatch is an error and the file stays `.partial`. An interrupted download (network
//! error, Ctrl-C, a corrupt chunk) is resumed by running the same command again: the
//! records already in the partial file are re-verified and the download continues from
//! the first missing index.

use std::path::{Path, PathBuf};

use canvault_protocol::Hash256;
use canvault_protocol::chunk::{self, chunk_len};
use canvault_protocol::merkle;
use canvault_protocol::vault_api::{ManifestEntry, SnapshotId, SnapshotInfo};

use crate::client::VaultClient;
use crate::error::{CliError, CliResult};
use crate::file_format::{ChunkRecord, RecordBody, SnapshotMeta, SnapshotReader, SnapshotWriter};
use crate::progress::ProgressMode;

/// How long a download pins the snapshot against retention (renewed by each run).
pub const LEASE_SECONDS: u64 = 6 * 3600;
/// Records between two flushes of the partial file.
const FLUSH_EVERY: u32 = 16;

/// What a download did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadReport {
    /// The snapshot.
    pub snapshot: SnapshotInfo,
    /// The complete file.
    pub path: PathBuf,
    /// Chunks already in a partial file from an earlier run (0 for a fresh download).
    pub resumed_from: u32,
    /// Chunks fetched by this run.
    pub fetched: u32,
    /// Encoded bytes fetched by this run.
    pub bytes_fetched: u64,
    /// All-zero chunks (no bytes).
    pub zero_chunks: u32,
    /// The file's size.
    pub file_bytes: u64,
}

/// The partial file next to `out`.
#[must_use]
pub fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_os_string();
    name.push(".partial");
    PathBuf::from(name)
}

/// Checks that the manifest describes exactly the snapshot's geometry.
fn check_manifest(info: &SnapshotInfo, entries: &[ManifestEntry]) -> CliResult<()> {
    if entries.len() != info.chunk_count as usize {
        return Err(CliError::Integrity(format!(
            "the vault listed {} chunks for snapshot {}, which has {}",
            entries.len(),
            info.id,
            info.chunk_count
        )));
    }
    for (i, e) in entries.iter().enumerate() {
        let expected = chunk_len(e.index, info.image_size, info.chunk_size);
        if e.index as usize != i || e.len != expected {
            return Err(CliError::Integrity(format!(
                "the vault's chunk table of snapshot {} is inconsistent at entry {i} (index {}, {} bytes)",
                info.id, e.index, e.len
            )));
        }
        if e.zero && e.hash != chunk::zero_hash(e.len) {
            return Err(CliError::Integrity(format!(
                "zero chunk {i} of snapshot {} has a non-zero digest",
                info.id
            )));
        }
    }
    Ok(())
}

/// Reads the verified prefix of a partial file; returns its digests and where it ends.
fn resume_point(
    partial: &Path,
    meta: &SnapshotMeta,
    entries: &[ManifestEntry],
) -> CliResult<(Vec<Hash256>, u64)> {
    let mut reader = SnapshotReader::open(partial)?;
    if &reader.meta != meta {
        return Err(CliError::Usage(format!(
            "{} is a partial download of another snapshot (source {}, snapshot {:?}); remove it or choose another output file",
            partial.display(),
            reader.meta.source,
            reader.meta.snapshot_id
        )));
    }
    let mut hashes = Vec::new();
    loop {
        let end = reader.offset();
        let record = match reader.next_record() {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => return Ok((hashes, end)),
        };
        let expected = &entries[record.index as usize];
        if record.hash != expected.hash || record.decode().is_err() {
            return Ok((hashes, end));
        }
        hashes.push(record.hash);
    }
}

/// Downloads snapshot `id` of `vault` into `out`.
///
/// # Errors
/// `out` exists; the snapshot is not complete; a call failed (the partial file keeps
/// every verified chunk); a chunk or the root failed verification.
pub fn download(
    vault: &VaultClient<'_>,
    id: SnapshotId,
    out: &Path,
    progress: ProgressMode,
) -> CliResult<DownloadReport> {
    if out.exists() {
        return Err(CliError::Usage(format!(
            "{} already exists (check it with `canvault snapshot verify {}`, or remove it to download again)",
            out.display(),
            out.display()
        )));
    }
    let info = vault.get_snapshot(id)?;
    let meta = SnapshotMeta::from_info(&info, vault.id)?;
    let root = meta.root_hash().map_err(CliError::Integrity)?;
    vault.open_download(id, LEASE_SECONDS)?;
    let entries = vault.manifest(id)?;
    check_manifest(&info, &entries)?;

    let partial = partial_path(out);
    let (mut hashes, mut writer) = if partial.exists() {
        let (hashes, end) = resume_point(&partial, &meta, &entries)?;
        let count = u32::try_from(hashes.len()).expect("fewer chunks than the manifest");
        (hashes, SnapshotWriter::resume(&partial, end, count)?)
    } else {
        (Vec::new(), SnapshotWriter::create(&partial, &meta)?)
    };
    let resumed_from = u32::try_from(hashes.len()).expect("fewer chunks than the manifest");
    let bar = progress.bytes(info.image_size, "download");
    bar.set_position(
        entries[..hashes.len()]
            .iter()
            .map(|e| u64::from(e.len))
            .sum(),
    );

    let mut report = DownloadReport {
        snapshot: info.clone(),
        path: out.to_path_buf(),
        resumed_from,
        fetched: 0,
        bytes_fetched: 0,
        zero_chunks: 0,
        file_bytes: 0,
    };
    for e in &entries[hashes.len()..] {
        let body = if e.zero {
            report.zero_chunks += 1;
            RecordBody::Zero
        } else {
            let c = vault.get_chunk(e.hash)?;
            if let Err(why) = chunk::open(c.codec, &c.bytes, e.len, &e.hash) {
                writer.flush()?;
                return Err(CliError::Integrity(format!(
                    "chunk {} of snapshot {id} from vault {} is corrupt ({why}); the {} chunks verified so far are kept in {}: run the same command again to resume",
                    e.index,
                    vault.id,
                    e.index,
                    partial.display()
                )));
            }
            report.bytes_fetched += c.bytes.len() as u64;
            RecordBody::Data {
                codec: c.codec,
                bytes: c.bytes.into_vec(),
            }
        };
        writer.append(&ChunkRecord {
            index: e.index,
            len: e.len,
            hash: e.hash,
            body,
        })?;
        hashes.push(e.hash);
        report.fetched += 1;
        if report.fetched.is_multiple_of(FLUSH_EVERY) {
            writer.flush()?;
        }
        bar.inc(u64::from(e.len));
    }
    writer.flush()?;

    let computed = merkle::image_root(info.image_size, info.chunk_size, hashes);
    if computed != root {
        return Err(CliError::Integrity(format!(
            "the chunks of snapshot {id} recompute the root {computed}, not the vault's {root}; the file is kept as {}",
            partial.display()
        )));
    }
    writer.finish()?;
    std::fs::rename(&partial, out).map_err(|e| CliError::io("rename", &partial, &e))?;
    bar.finish_and_clear();
    report.file_bytes = std::fs::metadata(out)
        .map_err(|e| CliError::io("read", out, &e))?
        .len();
    Ok(report)
}
