//! The chunk format: how an image is cut, hashed, compressed and verified.
//!
//! An image of `image_size` bytes is cut into fixed, aligned chunks of `chunk_size`
//! bytes (the last one may be shorter). Stable memory is written in place, so a chunk's
//! index never moves and unchanged chunks hash the same: fixed chunks dedup perfectly.
//! A chunk travels and is stored as a *frame*: its bytes encoded with a [`Codec`] chosen
//! per chunk. A chunk's identity is the SHA-256 of its frame ([`frame_hash`]), so a
//! vault verifies and deduplicates frames without decoding them; all-zero chunks are
//! never framed and stand for [`zero_hash`].

use candid::CandidType;
use serde::{Deserialize, Serialize};

use crate::Hash256;

/// Default chunk size: 1 MiB (16 wasm pages). Compressed or not, a chunk plus its
/// framing stays under the 2 MiB cross-subnet payload limit.
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
/// Smallest chunk size accepted: one wasm page.
pub const MIN_CHUNK_SIZE: u32 = 1 << 16;
/// Largest chunk size accepted.
pub const MAX_CHUNK_SIZE: u32 = 1 << 20;
/// Most chunk payload bytes packed into one call, leaving room for candid framing
/// under the 2 MiB (2,097,152-byte) inter-canister limit.
pub const MAX_BATCH_PAYLOAD_BYTES: usize = 1_900_000;
/// Most decoded bytes in one restore batch. Decoding and writing a batch is the
/// receiving kit's work in one message: 16 MiB keeps it near 1B instructions even when
/// chunks compress very well (a mostly-zero chunk's frame is ~100 bytes, so the payload
/// budget alone would admit gigabytes of decoded data).
pub const MAX_BATCH_DECODED_BYTES: u64 = 16 * 1024 * 1024;
/// Candid framing budget per chunk entry in a batch (index, hash, lengths, tags).
pub const ENTRY_OVERHEAD_BYTES: usize = 96;

/// How a chunk's bytes are encoded for transport and storage.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Stored as is (incompressible data).
    Raw,
    /// Raw deflate (RFC 1951, no zlib header), level 1 (`miniz_oxide`).
    Deflate,
}

impl Codec {
    /// The byte that stands for the codec in frame digests and stored metadata.
    #[must_use]
    pub fn tag(self) -> u8 {
        match self {
            Self::Raw => 0,
            Self::Deflate => 1,
        }
    }

    /// The codec of a [`Codec::tag`] byte.
    #[must_use]
    pub fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            0 => Some(Self::Raw),
            1 => Some(Self::Deflate),
            _ => None,
        }
    }
}

/// Why a chunk failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The bytes do not decode with their codec.
    #[error("chunk does not decode as {codec:?}: {reason}")]
    Corrupt {
        /// The codec claimed.
        codec: Codec,
        /// The decoder's message.
        reason: String,
    },
    /// The encoded or decoded length does not fit the length announced.
    #[error("chunk is {actual} bytes, expected {expected}")]
    WrongLength {
        /// The length announced.
        expected: u32,
        /// The length found.
        actual: usize,
    },
    /// The announced decoded length is over [`MAX_CHUNK_SIZE`]: no chunk is that long,
    /// and decoding what such a frame claims could take up to 4 GiB.
    #[error("chunk claims {len} bytes, more than the {MAX_CHUNK_SIZE}-byte maximum")]
    TooLong {
        /// The length announced.
        len: u32,
    },
    /// The frame does not hash to the announced digest.
    #[error("chunk hash mismatch: expected {expected}, computed {actual}")]
    HashMismatch {
        /// The digest announced.
        expected: Hash256,
        /// The digest of the bytes received.
        actual: Hash256,
    },
}

/// Checks that `chunk_size` is a multiple of the wasm page between the bounds.
#[must_use]
pub fn valid_chunk_size(chunk_size: u32) -> bool {
    (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size)
        && chunk_size.is_multiple_of(MIN_CHUNK_SIZE)
}

/// Number of chunks of an image.
#[must_use]
pub fn chunk_count(image_size: u64, chunk_size: u32) -> u32 {
    u32::try_from(image_size.div_ceil(u64::from(chunk_size)))
        .expect("images have fewer than 2^32 chunks")
}

/// Length of chunk `index` of an image (the last one may be short).
#[must_use]
pub fn chunk_len(index: u32, image_size: u64, chunk_size: u32) -> u32 {
    let start = u64::from(index) * u64::from(chunk_size);
    let len = image_size.saturating_sub(start).min(u64::from(chunk_size));
    u32::try_from(len).expect("a chunk is at most chunk_size bytes")
}

/// True if every byte is zero (word at a time).
#[must_use]
pub fn is_zero(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    let body_zero = words
        .by_ref()
        .all(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")) == 0);
    body_zero && words.remainder().iter().all(|b| *b == 0)
}

/// Domain prefix of a frame digest (format generation 2: frames are content addresses).
const FRAME_DOMAIN: &[u8] = b"canvault/frame/2\0";
/// Domain prefix of the digest standing for an all-zero chunk.
const ZERO_DOMAIN: &[u8] = b"canvault/zero/2\0";
/// Deflate level: 1 is miniz's greedy single-probe parser, the cheapest per byte saved
/// on-chain (measured in docs/benchmarks.md#choosing-the-codec).
const DEFLATE_LEVEL: u8 = 1;
/// Below this size a chunk is compressed without probing first.
const PROBE_MIN_CHUNK: usize = 16 * 1024;
/// The probe samples this many slices of [`PROBE_SLICE`] bytes, spread over the chunk.
const PROBE_SLICES: usize = 4;
const PROBE_SLICE: usize = 1024;
/// Order-0 entropy (bits per byte) above which a sample counts as incompressible: random
/// or already-compressed bytes measure ~7.95 on a 4 KiB sample, text ~4.5, structured
/// binary data lower still.
const INCOMPRESSIBLE_BITS_PER_BYTE: f64 = 7.5;

/// A chunk sealed for transport and storage: its encoding and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The chunk's identity: [`frame_hash`] of the encoding below.
    pub hash: Hash256,
    /// How `bytes` encode the chunk.
    pub codec: Codec,
    /// The encoded bytes.
    pub bytes: Vec<u8>,
}

/// The digest of a frame: SHA-256 over a domain prefix, the codec, the decoded length and
/// the encoded bytes. It is the chunk's content address.
///
/// Addressing the encoded frame rather than the decoded bytes lets a vault verify what it
/// stores without decoding it, and hashes ~2-3x fewer bytes on both sides. Decoding is
/// deterministic, so a frame digest pins the decoded bytes as firmly as a digest of
/// them would; the encoder is deterministic too (same bytes, same frame), so unchanged
/// chunks keep their digest and dedup.
#[must_use]
pub fn frame_hash(codec: Codec, len: u32, bytes: &[u8]) -> Hash256 {
    Hash256::of_parts(&[FRAME_DOMAIN, &[codec.tag()], &len.to_le_bytes(), bytes])
}

/// The digest standing for an all-zero chunk of `len` bytes. Zero chunks are never
/// encoded, sent or stored; both sides derive this digest.
#[must_use]
pub fn zero_hash(len: u32) -> Hash256 {
    Hash256::of_parts(&[ZERO_DOMAIN, &len.to_le_bytes()])
}

/// The digest of a chunk as the kit records it: [`zero_hash`] for an all-zero chunk,
/// otherwise the digest of its sealed frame.
#[must_use]
pub fn chunk_hash(raw: &[u8]) -> Hash256 {
    let len = u32::try_from(raw.len()).expect("a chunk is at most 1 MiB");
    if is_zero(raw) {
        zero_hash(len)
    } else {
        seal(raw).hash
    }
}

/// Encodes a chunk: deflate when it makes the chunk smaller, raw otherwise.
///
/// Deterministic: the same bytes always give the same frame. A large chunk is probed
/// first ([`looks_incompressible`]): media and other incompressible bytes skip deflate,
/// which would cost ~200 instructions per byte to save nothing.
#[must_use]
pub fn seal(raw: &[u8]) -> Sealed {
    let len = u32::try_from(raw.len()).expect("a chunk is at most 1 MiB");
    let (codec, bytes) = match deflate_if_smaller(raw) {
        Some(compressed) => (Codec::Deflate, compressed),
        None => (Codec::Raw, raw.to_vec()),
    };
    Sealed {
        hash: frame_hash(codec, len, &bytes),
        codec,
        bytes,
    }
}

fn deflate_if_smaller(raw: &[u8]) -> Option<Vec<u8>> {
    if looks_incompressible(raw) {
        return None;
    }
    let compressed = miniz_oxide::deflate::compress_to_vec(raw, DEFLATE_LEVEL);
    (compressed.len() < raw.len()).then_some(compressed)
}

/// True when a chunk of at least [`PROBE_MIN_CHUNK`] bytes has a sample (four spread
/// 1 KiB slices) whose byte histogram is nearly flat: order-0 entropy above
/// [`INCOMPRESSIBLE_BITS_PER_BYTE`]. Costs a few instructions per sampled byte, where a
/// trial deflate of the sample would cost ~300k instructions of set-up alone. A chunk it
/// misjudges as incompressible is stored raw: larger, never wrong.
#[must_use]
pub fn looks_incompressible(raw: &[u8]) -> bool {
    if raw.len() < PROBE_MIN_CHUNK {
        return false;
    }
    let stride = raw.len() / PROBE_SLICES;
    let mut counts = [0u32; 256];
    for k in 0..PROBE_SLICES {
        for b in &raw[k * stride..k * stride + PROBE_SLICE] {
            counts[usize::from(*b)] += 1;
        }
    }
    let n = f64::from(u32::try_from(PROBE_SLICES * PROBE_SLICE).expect("small sample"));
    let entropy: f64 = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum();
    entropy > INCOMPRESSIBLE_BITS_PER_BYTE
}

/// Checks a frame against its digest without decoding it (what a vault does before it
/// stores a frame).
///
/// # Errors
/// [`ChunkError::TooLong`] when `len` is over [`MAX_CHUNK_SIZE`];
/// [`ChunkError::WrongLength`] when a raw frame is not `len` bytes or an encoded one is
/// not smaller; [`ChunkError::HashMismatch`] when the frame hashes differently.
pub fn verify_frame(
    codec: Codec,
    bytes: &[u8],
    len: u32,
    hash: &Hash256,
) -> Result<(), ChunkError> {
    if len > MAX_CHUNK_SIZE {
        return Err(ChunkError::TooLong { len });
    }
    let fits = match codec {
        Codec::Raw => bytes.len() == len as usize,
        Codec::Deflate => bytes.len() < len as usize,
    };
    if !fits {
        return Err(ChunkError::WrongLength {
            expected: len,
            actual: bytes.len(),
        });
    }
    let actual = frame_hash(codec, len, bytes);
    if &actual != hash {
        return Err(ChunkError::HashMismatch {
            expected: *hash,
            actual,
        });
    }
    Ok(())
}

/// Verifies a frame against its digest, then decodes it and checks the decoded length
/// (what a restore and an off-chain download do). Decoding never produces more than
/// `len` bytes, and `len` is at most [`MAX_CHUNK_SIZE`]: a hostile sender, who can hash
/// any frame it likes, cannot make the receiver decode more than 1 MiB per chunk.
///
/// # Errors
/// [`ChunkError`] when `len` is over [`MAX_CHUNK_SIZE`], the frame hashes differently,
/// does not decode, or decodes to another length than `len`.
pub fn open(codec: Codec, bytes: &[u8], len: u32, hash: &Hash256) -> Result<Vec<u8>, ChunkError> {
    verify_frame(codec, bytes, len, hash)?;
    let raw = match codec {
        Codec::Raw => bytes.to_vec(),
        Codec::Deflate => miniz_oxide::inflate::decompress_to_vec_with_limit(bytes, len as usize)
            .map_err(|e| ChunkError::Corrupt {
            codec,
            reason: e.to_string(),
        })?,
    };
    if raw.len() != len as usize {
        return Err(ChunkError::WrongLength {
            expected: len,
            actual: raw.len(),
        });
    }
    Ok(raw)
}
