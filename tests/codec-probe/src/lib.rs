//! A benchmark canister: what a codec costs on-chain. For one chunk it encodes, decodes,
//! checks the round trip and reports the encoded size and the instructions of each
//! step (`ic0.performance_counter`), so codec choices are made on wasm figures rather
//! than native ones. Only its controllers may call it.

use candid::CandidType;
use canvault_protocol::chunk;
use ic_cdk::api::{is_controller, msg_caller, performance_counter};
use serde::Deserialize;
use serde_bytes::ByteBuf;

/// What to measure.
#[derive(CandidType, Deserialize, Debug, Clone, Copy)]
pub enum Probe {
    /// SHA-256 of the chunk (no encoding).
    Sha256,
    /// LZ4 block format (`lz4_flex`).
    Lz4,
    /// Raw deflate at a level, 1 (fastest) to 9.
    Deflate(u8),
    /// zstd at its fastest level (`ruzstd`, the pure-Rust implementation).
    ZstdFastest,
    /// What the kit does: `chunk::seal` (probe, deflate or raw, frame digest), and what
    /// a restore does: `chunk::open` (digest check, decode).
    Sealed,
}

/// The figures of one chunk.
#[derive(CandidType, Deserialize, Debug, Clone, Copy)]
pub struct Measurement {
    /// Bytes after encoding (the input length for `Sha256`).
    pub encoded_bytes: u64,
    /// Instructions to encode (or hash).
    pub encode_instructions: u64,
    /// Instructions to decode (0 for `Sha256`).
    pub decode_instructions: u64,
}

/// A decoder of the measured encoding.
type Decoder = Box<dyn Fn(&[u8]) -> Vec<u8>>;

fn instructions() -> u64 {
    performance_counter(0)
}

/// Measures `probe` on `data`; traps if a codec does not round-trip.
#[ic_cdk::update]
fn measure(probe: Probe, data: ByteBuf) -> Measurement {
    assert!(is_controller(&msg_caller()), "only controllers may measure");
    let len = u32::try_from(data.len()).expect("a chunk is at most 1 MiB");
    let start = instructions();
    let (encoded, decode): (Vec<u8>, Decoder) = match probe {
        Probe::Sha256 => {
            let digest = canvault_protocol::Hash256::of(&data);
            let spent = instructions() - start;
            std::hint::black_box(digest);
            return Measurement {
                encoded_bytes: data.len() as u64,
                encode_instructions: spent,
                decode_instructions: 0,
            };
        }
        Probe::Lz4 => (
            lz4_flex::block::compress(&data),
            Box::new(move |b| lz4_flex::block::decompress(b, len as usize).expect("lz4")),
        ),
        Probe::Deflate(level) => (
            miniz_oxide::deflate::compress_to_vec(&data, level),
            Box::new(|b| miniz_oxide::inflate::decompress_to_vec(b).expect("inflate")),
        ),
        Probe::ZstdFastest => (
            ruzstd::encoding::compress_to_vec(
                &data[..],
                ruzstd::encoding::CompressionLevel::Fastest,
            ),
            Box::new(|b| {
                let mut decoder = ruzstd::decoding::StreamingDecoder::new(b).expect("zstd frame");
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut decoder, &mut out).expect("zstd");
                out
            }),
        ),
        Probe::Sealed => {
            let sealed = chunk::seal(&data);
            let (codec, hash) = (sealed.codec, sealed.hash);
            (
                sealed.bytes,
                Box::new(move |b| chunk::open(codec, b, len, &hash).expect("open")),
            )
        }
    };
    let encoded_at = instructions();
    let decoded = decode(&encoded);
    let decoded_at = instructions();
    assert!(decoded == *data, "{probe:?} does not round-trip");
    Measurement {
        encoded_bytes: encoded.len() as u64,
        encode_instructions: encoded_at - start,
        decode_instructions: decoded_at - encoded_at,
    }
}
