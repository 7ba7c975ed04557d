//! The canvault snapshot file: one snapshot, self-describing, verifiable offline.
//!
//! The header comes first, so a tool reads the metadata (source, time, size, root)
//! without scanning the file. Chunks follow in index order, as the vault stores them
//! (frames stay encoded); all-zero chunks take a record with no bytes. A trailer closes
//! the file, so a truncated copy is told apart from a complete one. All integers are
//! little-endian.
//!
//! ```text
//! offset      size  field
//! 0           8     magic "CANVAULT"
//! 8           2     format version (u16) = 2 (version 1 hashed decoded bytes; refused)
//! 10          4     metadata length M (u32)
//! 14          M     metadata: UTF-8 JSON object (see `SnapshotMeta`)
//! 14+M        ...   chunk records, indices 0 .. chunk_count-1 in order:
//!                   ┌────────┬────────┬───────────┬──────────┬─────────────┬─────────────┐
//!                   │ index  │ len    │ hash      │ codec    │ encoded len │ bytes       │
//!                   │ u32    │ u32    │ [u8; 32]  │ u8       │ u32 = E     │ E bytes     │
//!                   └────────┴────────┴───────────┴──────────┴─────────────┴─────────────┘
//!                   len: decoded length; hash: the frame digest (`chunk::frame_hash`), or
//!                   `chunk::zero_hash(len)` for a zero chunk;
//!                   codec: 0 raw, 1 deflate (the `Codec::tag`), 2 all zeros (E = 0, no bytes)
//! end-12      12    trailer: magic "CVTRAILR" + chunk count (u32)
//! ```
//!
//! A file is valid when every record's frame hashes to `hash` and decodes to `len` bytes, indices
//! run 0..chunk_count, each `len` matches the geometry, the trailer count matches, and
//! the Merkle root of the hashes (`merkle::image_root`) equals the metadata's `root`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use candid::Principal;
use canvault_protocol::chunk::{self, ChunkError};
use canvault_protocol::vault_api::{ChunkBody, ChunkPut, SnapshotId, SnapshotInfo};
use canvault_protocol::{Codec, Hash256};
use serde::{Deserialize, Serialize};

use crate::error::{CliError, CliResult};

/// The file's first eight bytes.
pub const MAGIC: &[u8; 8] = b"CANVAULT";
/// The layout version written by this code.
pub const VERSION: u16 = 2;
/// The trailer's magic.
pub const TRAILER_MAGIC: &[u8; 8] = b"CVTRAILR";
/// Bytes before a record's encoded bytes.
pub const RECORD_HEADER_BYTES: u64 = 4 + 4 + 32 + 1 + 4;
/// The codec byte of a zero chunk's record (data records carry `Codec::tag`).
const ZERO_RECORD: u8 = 2;
/// Bytes of the trailer.
pub const TRAILER_BYTES: u64 = 12;
/// Largest metadata block accepted (a sanity bound against garbage).
const MAX_META_BYTES: u32 = 1 << 20;

/// What the header says about the snapshot.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The canister whose image this is (text form).
    pub source: String,
    /// The vault it came from (text form), if downloaded from one.
    pub vault: Option<String>,
    /// The snapshot's id in that vault.
    pub snapshot_id: Option<SnapshotId>,
    /// When the snapshot was taken (ns since the epoch).
    pub created_at_ns: u64,
    /// Its label, if any.
    pub label: Option<String>,
    /// Image size in bytes.
    pub image_size: u64,
    /// Chunk size in bytes.
    pub chunk_size: u32,
    /// Number of chunks.
    pub chunk_count: u32,
    /// The image root, 64 hex digits.
    pub root: String,
}

impl SnapshotMeta {
    /// The metadata of a complete snapshot downloaded from `vault`.
    ///
    /// # Errors
    /// [`CliError::Usage`] if the snapshot is not complete (it has no root yet).
    pub fn from_info(info: &SnapshotInfo, vault: Principal) -> CliResult<Self> {
        let root = info.root.ok_or_else(|| {
            CliError::Usage(format!(
                "snapshot {} is not complete yet ({:?}): only complete snapshots can be downloaded",
                info.id, info.state
            ))
        })?;
        Ok(Self {
            source: info.source.to_text(),
            vault: Some(vault.to_text()),
            snapshot_id: Some(info.id),
            created_at_ns: info.created_at_ns,
            label: info.label.clone(),
            image_size: info.image_size,
            chunk_size: info.chunk_size,
            chunk_count: info.chunk_count,
            root: root.to_hex(),
        })
    }

    /// The root as a digest.
    ///
    /// # Errors
    /// When `root` is not 64 hex digits.
    pub fn root_hash(&self) -> Result<Hash256, String> {
        Hash256::from_hex(&self.root).map_err(|e| format!("root: {e}"))
    }

    /// The source as a principal.
    ///
    /// # Errors
    /// When `source` is not a principal.
    pub fn source_principal(&self) -> Result<Principal, String> {
        Principal::from_text(&self.source).map_err(|e| format!("source {:?}: {e}", self.source))
    }

    /// Checks the geometry: chunk size, chunk count against image size, root syntax.
    ///
    /// # Errors
    /// The first inconsistency.
    pub fn check(&self) -> Result<(), String> {
        if !chunk::valid_chunk_size(self.chunk_size) {
            return Err(format!(
                "chunk size {} is not a multiple of 64 KiB up to 1 MiB",
                self.chunk_size
            ));
        }
        if self.image_size.div_ceil(u64::from(self.chunk_size)) != u64::from(self.chunk_count) {
            return Err(format!(
                "{} chunks of {} bytes cannot hold an image of {} bytes",
                self.chunk_count, self.chunk_size, self.image_size
            ));
        }
        self.root_hash().map(drop)?;
        self.source_principal().map(drop)
    }
}

/// A chunk's content in a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordBody {
    /// Encoded bytes.
    Data {
        /// Their codec.
        codec: Codec,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// All zeros; no bytes.
    Zero,
}

/// One chunk record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRecord {
    /// Index in the image.
    pub index: u32,
    /// Decoded length.
    pub len: u32,
    /// The frame digest, or `chunk::zero_hash(len)` for a zero chunk.
    pub hash: Hash256,
    /// The content.
    pub body: RecordBody,
}

impl ChunkRecord {
    /// The record of `raw` at `index`, sealed as a kit seals it.
    #[must_use]
    pub fn of_bytes(index: u32, raw: &[u8]) -> Self {
        let put = ChunkPut::with_bytes(index, raw);
        let body = match put.body {
            ChunkBody::Data { codec, bytes } => RecordBody::Data {
                codec,
                bytes: bytes.into_vec(),
            },
            ChunkBody::Zero => RecordBody::Zero,
            ChunkBody::Known => unreachable!("a put made from bytes carries them"),
        };
        Self {
            index,
            len: put.len,
            hash: put.hash,
            body,
        }
    }

    /// Bytes the record takes in the file.
    #[must_use]
    pub fn file_bytes(&self) -> u64 {
        RECORD_HEADER_BYTES
            + match &self.body {
                RecordBody::Data { bytes, .. } => bytes.len() as u64,
                RecordBody::Zero => 0,
            }
    }

    /// Verifies and decodes the content; returns the decoded bytes.
    ///
    /// # Errors
    /// Corrupt bytes, a wrong length or a hash mismatch.
    pub fn decode(&self) -> Result<Vec<u8>, ChunkError> {
        match &self.body {
            RecordBody::Data { codec, bytes } => chunk::open(*codec, bytes, self.len, &self.hash),
            RecordBody::Zero => {
                let expected = chunk::zero_hash(self.len);
                if expected == self.hash {
                    Ok(vec![0; self.len as usize])
                } else {
                    Err(ChunkError::HashMismatch {
                        expected: self.hash,
                        actual: expected,
                    })
                }
            }
        }
    }
}

/// Writes a snapshot file (header, records, trailer).
pub struct SnapshotWriter {
    out: BufWriter<File>,
    path: String,
    written: u32,
}

fn write_err(path: &str, e: &std::io::Error) -> CliError {
    CliError::Io {
        action: "write",
        path: path.to_string(),
        reason: e.to_string(),
    }
}

impl SnapshotWriter {
    /// Creates `path` (truncating it) and writes the header.
    ///
    /// # Errors
    /// The file cannot be created or written.
    pub fn create(path: &Path, meta: &SnapshotMeta) -> CliResult<Self> {
        let file = File::create(path).map_err(|e| CliError::io("create", path, &e))?;
        let mut w = Self {
            out: BufWriter::with_capacity(1 << 20, file),
            path: path.display().to_string(),
            written: 0,
        };
        let json = serde_json::to_vec(meta).map_err(|e| CliError::bad_file(path, e.to_string()))?;
        let len = u32::try_from(json.len())
            .map_err(|_| CliError::bad_file(path, "metadata too large"))?;
        w.put(MAGIC)?;
        w.put(&VERSION.to_le_bytes())?;
        w.put(&len.to_le_bytes())?;
        w.put(&json)?;
        Ok(w)
    }

    /// Continues a partial file whose valid records end at `end` (`records` of them).
    ///
    /// # Errors
    /// The file cannot be opened, truncated or positioned.
    pub fn resume(path: &Path, end: u64, records: u32) -> CliResult<Self> {
        let mut file = File::options()
            .write(true)
            .open(path)
            .map_err(|e| CliError::io("open", path, &e))?;
        file.set_len(end)
            .map_err(|e| CliError::io("truncate", path, &e))?;
        file.seek(SeekFrom::Start(end))
            .map_err(|e| CliError::io("seek in", path, &e))?;
        Ok(Self {
            out: BufWriter::with_capacity(1 << 20, file),
            path: path.display().to_string(),
            written: records,
        })
    }

    fn put(&mut self, bytes: &[u8]) -> CliResult<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| write_err(&self.path, &e))
    }

    /// Appends the next record (its index must be the next one).
    ///
    /// # Errors
    /// Out of order, or the write failed.
    pub fn append(&mut self, r: &ChunkRecord) -> CliResult<()> {
        if r.index != self.written {
            return Err(CliError::Usage(format!(
                "chunk {} written out of order (expected {})",
                r.index, self.written
            )));
        }
        let (codec, bytes): (u8, &[u8]) = match &r.body {
            RecordBody::Data { codec, bytes } => (codec.tag(), bytes),
            RecordBody::Zero => (ZERO_RECORD, &[]),
        };
        let encoded_len =
            u32::try_from(bytes.len()).map_err(|_| CliError::Usage("chunk too large".into()))?;
        self.put(&r.index.to_le_bytes())?;
        self.put(&r.len.to_le_bytes())?;
        self.put(&r.hash.0)?;
        self.put(&[codec])?;
        self.put(&encoded_len.to_le_bytes())?;
        self.put(bytes)?;
        self.written += 1;
        Ok(())
    }

    /// Flushes buffered records to the OS (call before reporting progress as durable).
    ///
    /// # Errors
    /// The write failed.
    pub fn flush(&mut self) -> CliResult<()> {
        self.out.flush().map_err(|e| write_err(&self.path, &e))
    }

    /// Writes the trailer, flushes and syncs.
    ///
    /// # Errors
    /// The write failed.
    pub fn finish(mut self) -> CliResult<()> {
        self.put(TRAILER_MAGIC)?;
        let count = self.written.to_le_bytes();
        self.put(&count)?;
        self.flush()?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(|e| write_err(&self.path, &e))
    }
}

/// Reads a snapshot file front to back.
pub struct SnapshotReader {
    input: BufReader<File>,
    path: String,
    /// The header's metadata.
    pub meta: SnapshotMeta,
    next: u32,
    offset: u64,
}

fn read_exact_or(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    match input.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

impl SnapshotReader {
    /// Opens `path` and reads its header.
    ///
    /// # Errors
    /// Not a canvault file, another version, malformed metadata, or an I/O failure.
    pub fn open(path: &Path) -> CliResult<Self> {
        let file = File::open(path).map_err(|e| CliError::io("open", path, &e))?;
        let mut input = BufReader::with_capacity(1 << 20, file);
        let bad = |reason: String| CliError::bad_file(path, reason);
        let io = |e: std::io::Error| CliError::io("read", path, &e);
        let mut head = [0u8; 14];
        if !read_exact_or(&mut input, &mut head).map_err(io)? || &head[..8] != MAGIC {
            return Err(bad("it does not start with the CANVAULT magic".into()));
        }
        let version = u16::from_le_bytes([head[8], head[9]]);
        if version != VERSION {
            return Err(bad(format!(
                "format version {version} is not supported (this canvault reads version {VERSION})"
            )));
        }
        let meta_len = u32::from_le_bytes([head[10], head[11], head[12], head[13]]);
        if meta_len > MAX_META_BYTES {
            return Err(bad(format!(
                "metadata block of {meta_len} bytes is implausible"
            )));
        }
        let mut json = vec![0u8; meta_len as usize];
        if !read_exact_or(&mut input, &mut json).map_err(io)? {
            return Err(bad("the file ends inside the metadata block".into()));
        }
        let meta: SnapshotMeta =
            serde_json::from_slice(&json).map_err(|e| bad(format!("metadata: {e}")))?;
        meta.check().map_err(|e| bad(format!("metadata: {e}")))?;
        Ok(Self {
            input,
            path: path.display().to_string(),
            meta,
            next: 0,
            offset: 14 + u64::from(meta_len),
        })
    }

    /// Offset just past the header or the last record read.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record, or `None` once `chunk_count` records were read (or the file
    /// ends cleanly between two records, as a partial download does).
    ///
    /// # Errors
    /// A record cut short, out of order, or malformed.
    pub fn next_record(&mut self) -> CliResult<Option<ChunkRecord>> {
        if self.next >= self.meta.chunk_count {
            return Ok(None);
        }
        let path = Path::new(&self.path).to_path_buf();
        let bad = |reason: String| CliError::bad_file(&path, reason);
        let mut h = [0u8; RECORD_HEADER_BYTES as usize];
        if !read_exact_or(&mut self.input, &mut h).map_err(|e| CliError::io("read", &path, &e))? {
            return Ok(None);
        }
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let (index, len, encoded_len) = (u32_at(0), u32_at(4), u32_at(41));
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&h[8..40]);
        if index != self.next {
            return Err(bad(format!(
                "record {} holds chunk {index}: chunks must be in index order",
                self.next
            )));
        }
        let expected_len = chunk::chunk_len(index, self.meta.image_size, self.meta.chunk_size);
        if len != expected_len {
            return Err(bad(format!(
                "chunk {index} claims {len} bytes; the geometry says {expected_len}"
            )));
        }
        if encoded_len > self.meta.chunk_size.saturating_mul(2) {
            return Err(bad(format!(
                "chunk {index} claims {encoded_len} encoded bytes"
            )));
        }
        let body = match h[40] {
            ZERO_RECORD if encoded_len == 0 => RecordBody::Zero,
            ZERO_RECORD => {
                return Err(bad(format!(
                    "zero chunk {index} carries {encoded_len} bytes"
                )));
            }
            c => {
                let codec = Codec::from_tag(c)
                    .ok_or_else(|| bad(format!("chunk {index} has unknown codec {c}")))?;
                let mut bytes = vec![0u8; encoded_len as usize];
                if !read_exact_or(&mut self.input, &mut bytes)
                    .map_err(|e| CliError::io("read", &path, &e))?
                {
                    return Ok(None);
                }
                RecordBody::Data { codec, bytes }
            }
        };
        let record = ChunkRecord {
            index,
            len,
            hash: Hash256(hash),
            body,
        };
        self.offset += record.file_bytes();
        self.next += 1;
        Ok(Some(record))
    }

    /// Records read so far.
    #[must_use]
    pub fn records_read(&self) -> u32 {
        self.next
    }

    /// After the last record: checks the trailer and that nothing follows it.
    ///
    /// # Errors
    /// A missing or wrong trailer, or trailing bytes.
    pub fn finish(mut self) -> CliResult<()> {
        let path = Path::new(&self.path).to_path_buf();
        let mut t = [0u8; TRAILER_BYTES as usize];
        if self.next != self.meta.chunk_count
            || !read_exact_or(&mut self.input, &mut t)
                .map_err(|e| CliError::io("read", &path, &e))?
        {
            return Err(CliError::bad_file(
                &path,
                format!(
                    "it is truncated: {} of {} chunks and no trailer",
                    self.next, self.meta.chunk_count
                ),
            ));
        }
        let count = u32::from_le_bytes([t[8], t[9], t[10], t[11]]);
        if &t[..8] != TRAILER_MAGIC || count != self.meta.chunk_count {
            return Err(CliError::bad_file(&path, "the trailer is damaged"));
        }
        let mut extra = [0u8; 1];
        match self.input.read(&mut extra) {
            Ok(0) => Ok(()),
            Ok(_) => Err(CliError::bad_file(&path, "bytes follow the trailer")),
            Err(e) => Err(CliError::io("read", &path, &e)),
        }
    }
}

#[cfg(test)]
mod tests;
