//! `snapshot verify`: checks a snapshot file offline, with no network and no vault.
//!
//! Every record must decode to its length and digest, indices must run in order, the
//! trailer must close the file, and the digests must recompute the header's root.

use std::path::Path;

use canvault_protocol::merkle;

use crate::error::{CliError, CliResult};
use crate::file_format::{ChunkRecord, RecordBody, SnapshotMeta, SnapshotReader};
use crate::progress::ProgressMode;

/// Most chunk digests reserved before the records that carry them are read.
const PREALLOCATED_DIGESTS: u32 = 1 << 16;

/// What a verified file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The header's metadata.
    pub meta: SnapshotMeta,
    /// Chunks with bytes.
    pub data_chunks: u32,
    /// All-zero chunks.
    pub zero_chunks: u32,
    /// Encoded bytes of the data chunks.
    pub encoded_bytes: u64,
    /// Uncompressed bytes of the data chunks.
    pub data_bytes: u64,
}

/// Verifies `path`, calling `each` with every verified record and its uncompressed
/// bytes (for exports that read the image while verifying it).
///
/// # Errors
/// [`CliError::BadFile`] for a malformed file, [`CliError::Integrity`] for a chunk or
/// root that does not verify.
pub fn verify_with(
    path: &Path,
    progress: ProgressMode,
    mut each: impl FnMut(&ChunkRecord, &[u8]) -> CliResult<()>,
) -> CliResult<VerifyReport> {
    let mut reader = SnapshotReader::open(path)?;
    let meta = reader.meta.clone();
    let root = meta.root_hash().map_err(|e| CliError::bad_file(path, e))?;
    let bar = progress.bytes(meta.image_size, "verify");
    let mut report = VerifyReport {
        meta: meta.clone(),
        data_chunks: 0,
        zero_chunks: 0,
        encoded_bytes: 0,
        data_bytes: 0,
    };
    // The header's chunk count is a claim until the records arrive: reserve for a
    // bounded number (a consistent header may declare 2^32 - 1 chunks: 128 GiB of digests).
    let mut hashes = Vec::with_capacity(meta.chunk_count.min(PREALLOCATED_DIGESTS) as usize);
    while let Some(record) = reader.next_record()? {
        let bytes = record.decode().map_err(|e| {
            CliError::Integrity(format!(
                "chunk {} of {} does not verify: {e}",
                record.index,
                path.display()
            ))
        })?;
        match &record.body {
            RecordBody::Data { bytes: encoded, .. } => {
                report.data_chunks += 1;
                report.encoded_bytes += encoded.len() as u64;
                report.data_bytes += u64::from(record.len);
            }
            RecordBody::Zero => report.zero_chunks += 1,
        }
        each(&record, &bytes)?;
        hashes.push(record.hash);
        bar.inc(u64::from(record.len));
    }
    reader.finish()?;
    let computed = merkle::image_root(meta.image_size, meta.chunk_size, hashes);
    if computed != root {
        return Err(CliError::Integrity(format!(
            "the chunks of {} recompute the root {computed}, but its header says {root}",
            path.display()
        )));
    }
    bar.finish_and_clear();
    Ok(report)
}

/// Verifies `path`.
///
/// # Errors
/// As [`verify_with`].
pub fn verify(path: &Path, progress: ProgressMode) -> CliResult<VerifyReport> {
    verify_with(path, progress, |_, _| Ok(()))
}
