//! Whole-canister images: how a native canister snapshot (module, heap, stable memory,
//! wasm chunk store and metadata) is laid out as one image of fixed chunks, so the
//! vault stores, deduplicates, lists, downloads and restores it like a kit image.
//!
//! ```text
//! chunk size 1 MiB; every part starts on a chunk boundary, zero-padded to the next one
//! | wasm module | wasm memory (heap) | stable memory | wasm chunk 0 | ... | wasm chunk n-1 | header |
//!                                                      one image chunk per chunk-store chunk   one chunk
//! header chunk = b"CVWC" | version u8 (1) | len u32 LE | candid CanisterImageHeader | zeros
//! ```
//!
//! The image root (`merkle::image_root`) covers every part and, through the header, the
//! snapshot's metadata exactly as `read_canister_snapshot_metadata` returned it. Parts
//! aligned on chunk boundaries make unchanged heap and stable pages hash the same in the
//! next backup (and match kit images of the same bytes), so they are stored once.
//! The candid types of the vault's canister-copy endpoints live here too.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::vault_api::SnapshotId;

/// Chunk size of every whole-canister image: 1 MiB, the largest wasm chunk-store chunk,
/// so each chunk-store chunk fits in one image chunk.
pub const CANISTER_IMAGE_CHUNK_SIZE: u32 = 1 << 20;
/// Most bytes one `read_canister_snapshot_data` may return (the platform's slice limit).
pub const MAX_READ_SLICE_BYTES: u64 = 2_000_000;
const MAGIC: &[u8; 4] = b"CVWC";
const HEADER_VERSION: u8 = 1;
const HEADER_PREFIX: usize = 9;

/// What a catalogue snapshot holds.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum SnapshotKind {
    /// A kit image, pushed by the kit embedded in the source.
    KitImage,
    /// A whole canister copied by the vault from a native snapshot.
    WholeCanister(CanisterImageLayout),
}

/// The sizes of the parts of a whole-canister image, in image order.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CanisterImageLayout {
    /// Wasm module bytes.
    pub wasm_module_bytes: u64,
    /// Wasm (main, heap) memory bytes.
    pub wasm_memory_bytes: u64,
    /// Stable memory bytes.
    pub stable_memory_bytes: u64,
    /// Chunks in the wasm chunk store (one image chunk each).
    pub wasm_chunks: u32,
}

/// Where an image chunk's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The wasm module.
    WasmModule,
    /// The wasm memory.
    WasmMemory,
    /// The stable memory.
    StableMemory,
    /// The chunk-store chunk with this position in the metadata's list.
    WasmChunk(u32),
    /// The header (the image's last chunk).
    Header,
}

/// One image chunk: a part, an offset in it and the bytes it holds (the rest of the
/// image chunk is zero). A `WasmChunk` piece's `len` is the chunk size (its real length
/// is only known once read, and is recorded in the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// The part.
    pub part: Part,
    /// Offset in the part.
    pub offset: u64,
    /// Bytes of the part in this image chunk.
    pub len: u64,
}

fn chunks_of(bytes: u64) -> u64 {
    bytes.div_ceil(u64::from(CANISTER_IMAGE_CHUNK_SIZE))
}

impl CanisterImageLayout {
    /// Image chunks of each data part, in order.
    fn part_chunks(&self) -> [(Part, u64, u64); 3] {
        [
            (
                Part::WasmModule,
                self.wasm_module_bytes,
                chunks_of(self.wasm_module_bytes),
            ),
            (
                Part::WasmMemory,
                self.wasm_memory_bytes,
                chunks_of(self.wasm_memory_bytes),
            ),
            (
                Part::StableMemory,
                self.stable_memory_bytes,
                chunks_of(self.stable_memory_bytes),
            ),
        ]
    }

    /// Image chunks in all (header included).
    #[must_use]
    pub fn chunk_count(&self) -> u64 {
        self.part_chunks().iter().map(|p| p.2).sum::<u64>() + u64::from(self.wasm_chunks) + 1
    }

    /// The image size: every chunk is full.
    #[must_use]
    pub fn image_size(&self) -> u64 {
        self.chunk_count() * u64::from(CANISTER_IMAGE_CHUNK_SIZE)
    }

    /// Index of the header chunk (the last one).
    #[must_use]
    pub fn header_index(&self) -> u64 {
        self.chunk_count() - 1
    }

    /// What image chunk `index` holds; `None` past the end.
    #[must_use]
    pub fn piece(&self, index: u64) -> Option<Piece> {
        let size = u64::from(CANISTER_IMAGE_CHUNK_SIZE);
        let mut first = 0;
        for (part, bytes, chunks) in self.part_chunks() {
            if index < first + chunks {
                let offset = (index - first) * size;
                return Some(Piece {
                    part,
                    offset,
                    len: (bytes - offset).min(size),
                });
            }
            first += chunks;
        }
        let wasm = u64::from(self.wasm_chunks);
        if index < first + wasm {
            let n = u32::try_from(index - first).expect("fewer than 2^32 wasm chunks");
            return Some(Piece {
                part: Part::WasmChunk(n),
                offset: 0,
                len: size,
            });
        }
        (index == first + wasm).then_some(Piece {
            part: Part::Header,
            offset: 0,
            len: size,
        })
    }
}

/// The header chunk's content: the metadata and what the layout cannot say.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CanisterImageHeader {
    /// The canister the snapshot was taken from.
    pub source: Principal,
    /// The layout (equal to the catalogue record's).
    pub layout: CanisterImageLayout,
    /// The length of each chunk-store chunk, in the metadata's order.
    pub wasm_chunk_lengths: Vec<u32>,
    /// The candid reply of `read_canister_snapshot_metadata`, byte for byte.
    pub metadata: ByteBuf,
}

/// Why a header chunk did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Encoded, the header does not fit in one chunk.
    #[error("the image header takes {0} bytes, more than one chunk")]
    TooLarge(usize),
    /// Not a header chunk of a known version.
    #[error("not a whole-canister image header: {0}")]
    Invalid(String),
}

impl CanisterImageHeader {
    /// The header chunk: prefix, candid, zero padding to the chunk size.
    ///
    /// # Errors
    /// [`HeaderError::TooLarge`].
    pub fn to_chunk(&self) -> Result<Vec<u8>, HeaderError> {
        let body = candid::encode_one(self).map_err(|e| HeaderError::Invalid(e.to_string()))?;
        let size = CANISTER_IMAGE_CHUNK_SIZE as usize;
        if HEADER_PREFIX + body.len() > size {
            return Err(HeaderError::TooLarge(HEADER_PREFIX + body.len()));
        }
        let mut chunk = Vec::with_capacity(size);
        chunk.extend_from_slice(MAGIC);
        chunk.push(HEADER_VERSION);
        chunk.extend_from_slice(&(body.len() as u32).to_le_bytes());
        chunk.extend_from_slice(&body);
        chunk.resize(size, 0);
        Ok(chunk)
    }

    /// Decodes a header chunk (within the protocol's decoding quotas).
    ///
    /// # Errors
    /// [`HeaderError::Invalid`].
    pub fn from_chunk(chunk: &[u8]) -> Result<Self, HeaderError> {
        let bad = |why: &str| HeaderError::Invalid(why.to_string());
        if chunk.len() < HEADER_PREFIX || &chunk[..4] != MAGIC {
            return Err(bad("no CVWC magic"));
        }
        if chunk[4] != HEADER_VERSION {
            return Err(bad("unknown header version"));
        }
        let len = u32::from_le_bytes(chunk[5..9].try_into().expect("4 bytes")) as usize;
        let body = chunk
            .get(HEADER_PREFIX..HEADER_PREFIX + len)
            .ok_or_else(|| bad("length past the chunk"))?;
        crate::decode::decode_one(body).map_err(|e| HeaderError::Invalid(e.to_string()))
    }
}

/// Where the copied native snapshot comes from, and how consistent it is.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Consistency {
    /// The vault (a controller) stops the canister, takes the snapshot, starts it
    /// again: no message is half-way through (open call contexts are closed), at the
    /// cost of a short downtime.
    StopTakeStart,
    /// The vault (a controller) takes the snapshot while it runs: no downtime; calls it
    /// awaits are in flight.
    Running,
    /// The owner took the snapshot; the vault only reads it, as a controller or as an
    /// allowed viewer (`snapshot_visibility`), and leaves it in place.
    ReadOwnerSnapshot {
        /// The native snapshot's id.
        snapshot_id: ByteBuf,
    },
}

/// Longest native snapshot id accepted (a principal and a local id).
pub const MAX_NATIVE_SNAPSHOT_ID_BYTES: usize = 64;

/// `backup_canister`: copy a canister the vault controls into the catalogue.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CanisterBackupRequest {
    /// The canister to copy (the vault must be one of its controllers).
    pub canister: Principal,
    /// Stop it around the snapshot, or not.
    pub consistency: Consistency,
    /// A free-form label for the catalogue snapshot.
    pub label: Option<String>,
}

/// `set_canister_schedule`: the vault backs `canister` up whole every `interval_secs`
/// (a `backup_canister` job started by a vault timer; at most one job per canister).
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CanisterSchedule {
    /// The canister (the vault must be one of its controllers).
    pub canister: Principal,
    /// Seconds between backups (at least 600, at most 366 days); the first one is due
    /// one interval after the schedule is set.
    pub interval_secs: u64,
    /// `StopTakeStart` or `Running` (`ReadOwnerSnapshot` names one snapshot: refused).
    pub consistency: Consistency,
    /// The label of the snapshots it makes.
    pub label: Option<String>,
}

/// A schedule as the vault keeps it.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CanisterScheduleInfo {
    /// What was set.
    pub schedule: CanisterSchedule,
    /// When the next backup is due (ns since the epoch).
    pub next_due_ns: u64,
    /// Backup jobs the schedule started so far.
    pub runs: u64,
    /// The last job it started.
    pub last_job: Option<u64>,
    /// Why the last due backup could not start (it is tried again a minute later).
    pub last_error: Option<String>,
}

/// `restore_canister`: load a whole-canister snapshot into a canister the vault controls.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RestoreCanisterRequest {
    /// A complete whole-canister snapshot.
    pub snapshot_id: SnapshotId,
    /// The canister to load it into (the same canister, another one, or a fresh one: a fork).
    pub target: Principal,
}

/// What a canister job does.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum CanisterJobKind {
    /// Copies `canister` into a new catalogue snapshot.
    Backup(CanisterBackupRequest),
    /// Loads a snapshot into `target`.
    Restore(RestoreCanisterRequest),
}

/// Progress of a canister job.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum CanisterJobState {
    /// Stopping the canister: a backup's `StopTakeStart`, a restore's target before the load.
    Stopping,
    /// Backup: taking the native snapshot.
    Taking,
    /// Backup: reading the snapshot's metadata.
    ReadingMetadata,
    /// Backup: reading image chunks; `next_index` is the first not yet stored.
    Copying {
        /// First image chunk not yet stored.
        next_index: u64,
    },
    /// Backup: completing the catalogue snapshot.
    Committing,
    /// Restore: creating the target-side snapshot from the stored metadata.
    UploadingMetadata,
    /// Restore: uploading image chunks; `next_index` is the first not yet uploaded.
    Uploading {
        /// First image chunk not yet uploaded.
        next_index: u64,
    },
    /// Restore: loading the uploaded snapshot into the stopped target, then taking the
    /// snapshot that is read back.
    Loading,
    /// Restore: reading the loaded state back; `next_index` is the first not yet compared.
    Verifying {
        /// First image chunk not yet compared.
        next_index: u64,
    },
    /// Starting the canister and deleting the native snapshots the job made.
    CleaningUp,
    /// Finished.
    Done,
    /// Given up (the canister was started and the job's native snapshots deleted first).
    Failed {
        /// Why.
        reason: String,
    },
}

/// A canister job (`canister_backup_status`, `canister_restore_status`).
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CanisterJob {
    /// Job id.
    pub id: u64,
    /// What it does.
    pub kind: CanisterJobKind,
    /// Progress.
    pub state: CanisterJobState,
    /// The catalogue snapshot written (backup) or read (restore).
    pub snapshot_id: Option<SnapshotId>,
    /// Bytes read from (backup) or uploaded to (restore) the canister so far.
    pub bytes: u64,
    /// Failed attempts so far (retried with backoff).
    pub retries: u32,
    /// The last failure seen.
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn layout() -> CanisterImageLayout {
        CanisterImageLayout {
            wasm_module_bytes: MIB + 5,
            wasm_memory_bytes: 3 * MIB,
            stable_memory_bytes: 0,
            wasm_chunks: 2,
        }
    }

    #[test]
    fn every_part_starts_on_a_chunk_and_the_header_is_last() {
        let l = layout();
        assert_eq!(l.chunk_count(), 2 + 3 + 2 + 1);
        assert_eq!(l.image_size(), 8 * MIB);
        let pieces: Vec<Piece> = (0..l.chunk_count())
            .map(|i| l.piece(i).expect("in range"))
            .collect();
        assert_eq!(pieces[0].part, Part::WasmModule);
        assert_eq!((pieces[1].offset, pieces[1].len), (MIB, 5));
        assert_eq!(
            (pieces[2].part, pieces[2].offset, pieces[4].offset),
            (Part::WasmMemory, 0, 2 * MIB)
        );
        assert_eq!(pieces[5].part, Part::WasmChunk(0));
        assert_eq!(pieces[6].part, Part::WasmChunk(1));
        assert_eq!(pieces[7].part, Part::Header);
        assert_eq!(l.header_index(), 7);
        assert_eq!(l.piece(8), None);
    }

    #[test]
    fn a_header_round_trips_through_its_chunk() {
        let h = CanisterImageHeader {
            source: Principal::from_slice(&[3; 10]),
            layout: layout(),
            wasm_chunk_lengths: vec![10, 20],
            metadata: ByteBuf::from(vec![1, 2, 3]),
        };
        let chunk = h.to_chunk().expect("fits");
        assert_eq!(chunk.len(), CANISTER_IMAGE_CHUNK_SIZE as usize);
        assert_eq!(CanisterImageHeader::from_chunk(&chunk), Ok(h));
        assert!(CanisterImageHeader::from_chunk(&[0; 64]).is_err());
        let mut truncated = chunk.clone();
        truncated[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(CanisterImageHeader::from_chunk(&truncated).is_err());
    }
}
