//! Fuzz target: chunk frames, what a kit restores and a CLI downloads from a vault that
//! may lie (`chunk::verify_frame`, `chunk::open`, `Codec::from_tag`).
//!
//! A corpus entry is one frame as it arrives: `codec tag u8 | decoded len u32 LE |
//! digest [u8; 32] | frame bytes`. Mutated entries are checked twice: as mutated (the
//! digest no longer matches) and re-hashed (a hostile sender computes a matching
//! digest for any bytes, so the decoder itself is exposed).
//!
//! Long run: `PROPTEST_CASES=100000 cargo test --release -p canvault-protocol --test fuzz_frames`.
//! Regenerate the corpus: `cargo test -p canvault-protocol --test fuzz_frames -- --ignored`.

mod fuzz_common;

use std::sync::OnceLock;

use canvault_protocol::chunk::{self, MAX_CHUNK_SIZE};
use canvault_protocol::{ChunkError, Codec, Hash256};
use fuzz_common::{Expect, apply, config, corpus_dir, corpus_files, expect_of, mutated};
use proptest::prelude::*;

const TARGET: &str = "frames";

/// A frame as it arrives, parsed leniently from a corpus entry: missing fields read
/// as zeros, so every byte string is an input.
#[derive(Debug, Clone)]
struct FrameInput {
    tag: u8,
    len: u32,
    hash: Hash256,
    bytes: Vec<u8>,
}

impl FrameInput {
    fn parse(input: &[u8]) -> Self {
        let mut head = [0u8; 37];
        let n = input.len().min(37);
        head[..n].copy_from_slice(&input[..n]);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&head[5..37]);
        Self {
            tag: head[0],
            len: u32::from_le_bytes([head[1], head[2], head[3], head[4]]),
            hash: Hash256(hash),
            bytes: input[n..].to_vec(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag];
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.hash.0);
        out.extend_from_slice(&self.bytes);
        out
    }

    fn of_sealed(raw: &[u8]) -> Self {
        let s = chunk::seal(raw);
        Self {
            tag: s.codec.tag(),
            len: u32::try_from(raw.len()).expect("a chunk"),
            hash: s.hash,
            bytes: s.bytes,
        }
    }

    /// The same frame with the digest a hostile sender would compute for it.
    fn rehashed(mut self) -> Self {
        if let Some(codec) = Codec::from_tag(self.tag) {
            self.hash = chunk::frame_hash(codec, self.len, &self.bytes);
        }
        self
    }
}

/// What opening a frame gave.
#[derive(Debug)]
enum Outcome {
    UnknownCodec,
    Opened(Vec<u8>),
    Refused(ChunkError),
}

/// Runs the parsers on one frame and checks the invariants every outcome must keep.
fn check(f: &FrameInput) -> Outcome {
    let Some(codec) = Codec::from_tag(f.tag) else {
        return Outcome::UnknownCodec;
    };
    let verified = chunk::verify_frame(codec, &f.bytes, f.len, &f.hash);
    match chunk::open(codec, &f.bytes, f.len, &f.hash) {
        Ok(raw) => {
            assert!(verified.is_ok(), "open accepted what verify_frame refuses");
            assert!(
                f.len <= MAX_CHUNK_SIZE,
                "open accepted a chunk of {} bytes, over the {MAX_CHUNK_SIZE}-byte maximum",
                f.len
            );
            assert_eq!(raw.len(), f.len as usize, "open returned another length");
            assert_eq!(
                chunk::frame_hash(codec, f.len, &f.bytes),
                f.hash,
                "open accepted a frame its digest does not name"
            );
            Outcome::Opened(raw)
        }
        Err(e) => {
            // A frame verify_frame refuses must be refused for the same reason.
            if let Err(v) = verified {
                assert_eq!(v, e, "open and verify_frame disagree on why");
            } else {
                assert!(
                    matches!(
                        e,
                        ChunkError::Corrupt { .. } | ChunkError::WrongLength { .. }
                    ),
                    "a verified frame can only fail to decode: {e:?}"
                );
            }
            assert!(!e.to_string().is_empty());
            Outcome::Refused(e)
        }
    }
}

fn corpus() -> &'static [(String, Vec<u8>)] {
    static CORPUS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    CORPUS.get_or_init(|| corpus_files(&corpus_dir(env!("CARGO_MANIFEST_DIR"), TARGET)))
}

#[test]
fn replay_corpus() {
    for (name, bytes) in corpus() {
        let input = FrameInput::parse(bytes);
        let outcome = check(&input);
        match (expect_of(name), &outcome) {
            (Expect::Valid, Outcome::Opened(raw)) => {
                // Round trip: the encoder seals these bytes into exactly this frame.
                let again = FrameInput::of_sealed(raw);
                assert_eq!(&again.encode(), bytes, "{name}: does not re-seal to itself");
            }
            (Expect::Bad, Outcome::Refused(_) | Outcome::UnknownCodec) | (Expect::Any, _) => {}
            (expect, outcome) => panic!("{name}: expected {expect:?}, got {outcome:?}"),
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn mutated_frames_are_refused_or_verified((pick, edits) in mutated(corpus().len())) {
        let input = FrameInput::parse(&apply(corpus(), pick, &edits));
        check(&input);
        check(&input.rehashed());
    }

    #[test]
    fn sealed_frames_round_trip(raw in prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..4096),
        (proptest::collection::vec(any::<u8>(), 1..8), 1usize..70_000)
            .prop_map(|(p, n)| p.iter().copied().cycle().take(n).collect()),
    ]) {
        let f = FrameInput::of_sealed(&raw);
        match check(&f) {
            Outcome::Opened(back) => prop_assert_eq!(back, raw),
            other => prop_assert!(false, "a sealed frame did not open: {:?}", other),
        }
    }
}

/// A frame declaring far more than a chunk may hold must be refused before it is
/// decoded: a hostile vault hashes whatever it sends, so only the bound protects the
/// receiver from decoding up to 4 GiB.
#[test]
fn declared_length_over_the_chunk_maximum_is_refused() {
    let bomb = miniz_oxide::deflate::compress_to_vec(&vec![0u8; 8 << 20], 1);
    for len in [MAX_CHUNK_SIZE + 1, 8 << 20, u32::MAX] {
        let f = FrameInput {
            tag: Codec::Deflate.tag(),
            len,
            hash: Hash256::default(),
            bytes: bomb.clone(),
        }
        .rehashed();
        match check(&f) {
            Outcome::Refused(ChunkError::TooLong { len: l }) => assert_eq!(l, len),
            other => panic!("len {len}: expected TooLong, got {other:?}"),
        }
    }
}

/// Writes the seed corpus: frames made by the real encoder, and crafted bad ones.
#[test]
#[ignore = "regenerates the committed corpus"]
fn generate_corpus() {
    let text: Vec<u8> = b"canvault keeps every byte ".repeat(2600);
    let noise: Vec<u8> = (0..70_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut mixed = vec![0u8; 65_536];
    mixed[..noise.len().min(30_000)].copy_from_slice(&noise[..30_000]);
    let pattern: Vec<u8> = [1u8, 2, 3, 4].repeat(262_144);
    let mut entries: Vec<(String, Vec<u8>)> = vec![
        (
            "valid-deflate-text".into(),
            FrameInput::of_sealed(&text).encode(),
        ),
        (
            "valid-raw-noise".into(),
            FrameInput::of_sealed(&noise).encode(),
        ),
        (
            "valid-deflate-mixed-64k".into(),
            FrameInput::of_sealed(&mixed).encode(),
        ),
        (
            "valid-deflate-pattern-1m".into(),
            FrameInput::of_sealed(&pattern).encode(),
        ),
        (
            "valid-raw-one-byte".into(),
            FrameInput::of_sealed(&[7]).encode(),
        ),
    ];
    let text_frame = FrameInput::of_sealed(&text);
    let mut flipped = text_frame.clone();
    flipped.bytes[10] ^= 0x20;
    entries.push(("bad-deflate-bit-flipped".into(), flipped.encode()));
    let mut cut = text_frame.clone();
    cut.bytes.truncate(cut.bytes.len() / 2);
    entries.push(("bad-deflate-truncated".into(), cut.encode()));
    entries.push((
        "bad-deflate-truncated-rehashed".into(),
        cut.clone().rehashed().encode(),
    ));
    let mut longer = text_frame.clone();
    longer.len -= 100;
    entries.push((
        "bad-deflate-decodes-longer-rehashed".into(),
        longer.rehashed().encode(),
    ));
    let garbage = FrameInput {
        tag: Codec::Deflate.tag(),
        len: 65_536,
        hash: Hash256::default(),
        bytes: noise[..5000].to_vec(),
    };
    entries.push((
        "bad-deflate-garbage-rehashed".into(),
        garbage.rehashed().encode(),
    ));
    let mut unknown = text_frame.clone();
    unknown.tag = 9;
    entries.push(("bad-unknown-codec".into(), unknown.encode()));
    let mut raw_short = FrameInput::of_sealed(&noise);
    raw_short.len += 1;
    entries.push((
        "bad-raw-length-mismatch-rehashed".into(),
        raw_short.rehashed().encode(),
    ));
    let zeros_8m = miniz_oxide::deflate::compress_to_vec(&vec![0u8; 8 << 20], 1);
    let bomb = FrameInput {
        tag: Codec::Deflate.tag(),
        len: 8 << 20,
        hash: Hash256::default(),
        bytes: zeros_8m.clone(),
    };
    entries.push((
        "bad-deflate-8m-chunk-rehashed".into(),
        bomb.rehashed().encode(),
    ));
    let huge = FrameInput {
        tag: Codec::Deflate.tag(),
        len: u32::MAX,
        hash: Hash256::default(),
        bytes: zeros_8m,
    };
    entries.push((
        "bad-deflate-4g-declared-rehashed".into(),
        huge.rehashed().encode(),
    ));
    entries.push(("empty".into(), Vec::new()));
    fuzz_common::write_corpus(&corpus_dir(env!("CARGO_MANIFEST_DIR"), TARGET), &entries);
}
