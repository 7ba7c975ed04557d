//! The chunk format: how an image is cut, hashed, compressed and verified.
//!
//! An image of `image_size` bytes is cut into fixed, aligned chunks of `chunk_size`
//! bytes (the last one may be shorter). Stable memory is written in place, so a chunk's
//! index never moves and unchanged chunks hash the same: fixed chunks dedup perfectly.
//! A chunk's identity is the SHA-256 of its *uncompressed* bytes; compression is only a
//! transport and storage encoding, chosen per chunk ([`Codec`]).

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
/// Candid framing budget per chunk entry in a batch (index, hash, lengths, tags).
pub const ENTRY_OVERHEAD_BYTES: usize = 96;

/// How a chunk's bytes are encoded for transport and storage.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Stored as is (incompressible data).
    Raw,
    /// LZ4 block format (`lz4_flex`), without a size prefix.
    Lz4,
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
    /// The decoded length is not the one announced.
    #[error("chunk is {actual} bytes, expected {expected}")]
    WrongLength {
        /// The length announced.
        expected: u32,
        /// The length found.
        actual: usize,
    },
    /// The decoded bytes do not hash to the announced digest.
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

/// The digest of an all-zero chunk of `len` bytes. Zero chunks are never sent or
/// stored; both sides derive their digest. Cached per length: an image has at most two
/// chunk lengths, and hashing 64 KiB of zeros costs millions of instructions on-chain.
#[must_use]
pub fn zero_hash(len: u32) -> Hash256 {
    thread_local! {
        static CACHE: std::cell::RefCell<std::collections::BTreeMap<u32, Hash256>> =
            const { std::cell::RefCell::new(std::collections::BTreeMap::new()) };
    }
    CACHE.with(|c| {
        *c.borrow_mut()
            .entry(len)
            .or_insert_with(|| Hash256::of(&vec![0u8; len as usize]))
    })
}

/// Encodes a chunk for transport: LZ4 when it makes the chunk smaller, raw otherwise.
#[must_use]
pub fn encode(raw: &[u8]) -> (Codec, Vec<u8>) {
    let compressed = lz4_flex::block::compress(raw);
    if compressed.len() < raw.len() {
        (Codec::Lz4, compressed)
    } else {
        (Codec::Raw, raw.to_vec())
    }
}

/// Decodes a chunk and checks its length and digest.
///
/// # Errors
/// [`ChunkError`] when the bytes are corrupt, the wrong length, or hash differently.
pub fn decode_verified(
    codec: Codec,
    bytes: &[u8],
    len: u32,
    hash: &Hash256,
) -> Result<Vec<u8>, ChunkError> {
    let raw = match codec {
        Codec::Raw => bytes.to_vec(),
        Codec::Lz4 => {
            lz4_flex::block::decompress(bytes, len as usize).map_err(|e| ChunkError::Corrupt {
                codec,
                reason: e.to_string(),
            })?
        }
    };
    if raw.len() != len as usize {
        return Err(ChunkError::WrongLength {
            expected: len,
            actual: raw.len(),
        });
    }
    let actual = Hash256::of(&raw);
    if &actual != hash {
        return Err(ChunkError::HashMismatch {
            expected: *hash,
            actual,
        });
    }
    Ok(raw)
}
