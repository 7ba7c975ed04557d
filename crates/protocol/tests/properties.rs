//! Property tests: sealed chunks round-trip and detect corruption; roots are
//! deterministic, geometry-bound and sensitive to every chunk.

use canvault_protocol::chunk::{self, Codec};
use canvault_protocol::merkle::{Frontier, image_root, image_root_of_bytes, tree_root};
use canvault_protocol::vault_api::{ChunkBody, ChunkPut, PutChunksRequest};
use canvault_protocol::{ChunkError, Hash256};
use proptest::prelude::*;

fn chunk_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..5000),
        // Repetitive data, which deflate does compress.
        (proptest::collection::vec(any::<u8>(), 1..16), 0usize..5000)
            .prop_map(|(pattern, n)| pattern.iter().copied().cycle().take(n).collect()),
    ]
}

proptest! {
    #[test]
    fn a_frontier_computes_the_level_by_level_root(n in 0usize..300, seed in any::<u8>()) {
        let hashes: Vec<Hash256> = (0..n).map(|i| Hash256::of(&[seed, i as u8, (i >> 8) as u8])).collect();
        let mut f = Frontier::default();
        for h in &hashes {
            f.push(h);
        }
        prop_assert_eq!(f.tree_root(), tree_root(hashes.iter().copied()));
        let chunk_size = chunk::MIN_CHUNK_SIZE;
        let size = n as u64 * u64::from(chunk_size);
        prop_assert_eq!(f.image_root(size, chunk_size), Some(image_root(size, chunk_size, hashes.iter().copied())));
        prop_assert_eq!(f.image_root(size + u64::from(chunk_size), chunk_size), None);
    }

    #[test]
    fn seal_then_open_round_trips(raw in chunk_bytes()) {
        let sealed = chunk::seal(&raw);
        if sealed.codec == Codec::Deflate {
            prop_assert!(sealed.bytes.len() < raw.len());
        }
        prop_assert_eq!(&sealed, &chunk::seal(&raw), "sealing is deterministic");
        let back = chunk::open(sealed.codec, &sealed.bytes, raw.len() as u32, &sealed.hash).unwrap();
        prop_assert_eq!(back, raw);
    }

    #[test]
    fn a_flipped_bit_is_detected(raw in chunk_bytes().prop_filter("non-empty", |r| !r.is_empty()), pos in any::<usize>(), bit in 0u8..8) {
        let mut sealed = chunk::seal(&raw);
        let i = pos % sealed.bytes.len();
        sealed.bytes[i] ^= 1 << bit;
        let len = raw.len() as u32;
        prop_assert!(chunk::verify_frame(sealed.codec, &sealed.bytes, len, &sealed.hash).is_err());
        prop_assert!(chunk::open(sealed.codec, &sealed.bytes, len, &sealed.hash).is_err());
    }

    #[test]
    fn a_frame_is_bound_to_its_codec_and_length(raw in chunk_bytes().prop_filter("non-empty", |r| !r.is_empty())) {
        let s = chunk::seal(&raw);
        let len = raw.len() as u32;
        let other = if s.codec == Codec::Raw { Codec::Deflate } else { Codec::Raw };
        prop_assert!(chunk::verify_frame(other, &s.bytes, len, &s.hash).is_err());
        prop_assert!(chunk::verify_frame(s.codec, &s.bytes, len + 1, &s.hash).is_err());
        prop_assert!(chunk::verify_frame(s.codec, &s.bytes, len, &s.hash).is_ok());
    }

    #[test]
    fn root_changes_when_any_chunk_changes(hashes in proptest::collection::vec(any::<[u8; 32]>(), 1..70), pick in any::<usize>()) {
        let hashes: Vec<Hash256> = hashes.into_iter().map(Hash256).collect();
        let base = tree_root(hashes.clone());
        let mut changed = hashes.clone();
        let i = pick % changed.len();
        changed[i].0[0] ^= 1;
        prop_assert_ne!(base, tree_root(changed));
        prop_assert_eq!(base, tree_root(hashes));
    }

    #[test]
    fn chunk_geometry_covers_the_image_exactly(size in 0u64..50_000_000, pages in 1u32..=16) {
        let cs = pages * chunk::MIN_CHUNK_SIZE;
        let n = chunk::chunk_count(size, cs);
        let total: u64 = (0..n).map(|i| u64::from(chunk::chunk_len(i, size, cs))).sum();
        prop_assert_eq!(total, size);
        if n > 0 {
            prop_assert!(chunk::chunk_len(n - 1, size, cs) > 0);
        }
    }

    #[test]
    fn put_chunks_request_candid_round_trips(index in any::<u32>(), raw in chunk_bytes(), zero in any::<bool>()) {
        let s = chunk::seal(&raw);
        let body = if zero { ChunkBody::Zero } else { ChunkBody::Data { codec: s.codec, bytes: s.bytes.into() } };
        let req = PutChunksRequest { snapshot_id: 7, chunks: vec![ChunkPut { index, hash: s.hash, len: raw.len() as u32, body }] };
        let wire = candid::encode_one(&req).unwrap();
        let back: PutChunksRequest = candid::decode_one(&wire).unwrap();
        prop_assert_eq!(back, req);
    }
}

#[test]
fn root_binds_image_size() {
    let image = vec![0u8; 2 * chunk::MIN_CHUNK_SIZE as usize];
    let a = image_root_of_bytes(&image, chunk::MIN_CHUNK_SIZE);
    let b = image_root_of_bytes(&image[..image.len() - 1], chunk::MIN_CHUNK_SIZE);
    assert_ne!(a, b);
}

#[test]
fn root_of_bytes_matches_root_of_chunk_hashes() {
    let image: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let cs = chunk::MIN_CHUNK_SIZE;
    let hashes = (0..chunk::chunk_count(image.len() as u64, cs)).map(|i| {
        let start = i as usize * cs as usize;
        let end = (start + cs as usize).min(image.len());
        chunk::chunk_hash(&image[start..end])
    });
    assert_eq!(
        image_root(image.len() as u64, cs, hashes),
        image_root_of_bytes(&image, cs)
    );
}

#[test]
fn zero_detection_and_zero_hash() {
    assert!(chunk::is_zero(&[0; 17]));
    assert!(!chunk::is_zero(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]));
    assert_eq!(chunk::chunk_hash(&[0; 100]), chunk::zero_hash(100));
    assert_ne!(chunk::zero_hash(100), chunk::zero_hash(101));
    // No frame can pass for a zero chunk: the domains differ.
    let raw = chunk::seal(&[0; 100]);
    assert_ne!(raw.hash, chunk::zero_hash(100));
}

#[test]
fn wrong_length_and_wrong_hash_are_typed_errors() {
    let raw = b"hello hello hello hello hello".repeat(10);
    let s = chunk::seal(&raw);
    assert_eq!(s.codec, Codec::Deflate);
    let len = raw.len() as u32;
    assert!(matches!(
        chunk::open(s.codec, &s.bytes, len, &Hash256::of(b"other")),
        Err(ChunkError::HashMismatch { .. })
    ));
    // A writer that hashes a frame under a wrong decoded length gets past the digest
    // check but not the decoder: too long and too short are both refused.
    for wrong in [len - 1, len + 1] {
        let hash = chunk::frame_hash(s.codec, wrong, &s.bytes);
        assert!(matches!(
            chunk::open(s.codec, &s.bytes, wrong, &hash),
            Err(ChunkError::WrongLength { .. } | ChunkError::Corrupt { .. })
        ));
    }
    // A raw frame must be exactly the chunk's length.
    let hash = chunk::frame_hash(Codec::Raw, len + 1, &raw);
    assert!(matches!(
        chunk::verify_frame(Codec::Raw, &raw, len + 1, &hash),
        Err(ChunkError::WrongLength { .. })
    ));
}

#[test]
fn incompressible_chunks_are_probed_and_stored_raw() {
    // xorshift bytes: incompressible.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..65_536)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    assert!(chunk::looks_incompressible(&noise));
    assert_eq!(chunk::seal(&noise).codec, Codec::Raw);
    let text = b"the canister backs up its stable memory to a vault ".repeat(1300);
    assert!(!chunk::looks_incompressible(&text[..65_536]));
    let sealed = chunk::seal(&text[..65_536]);
    assert_eq!(sealed.codec, Codec::Deflate);
    assert!(sealed.bytes.len() < 65_536 / 10);
    // Structured binary (little-endian u64 counters) is compressible, and probed so.
    let counters: Vec<u8> = (0u64..8192).flat_map(|i| (i * 977).to_le_bytes()).collect();
    assert!(!chunk::looks_incompressible(&counters));
    assert_eq!(chunk::seal(&counters).codec, Codec::Deflate);
    // Half noise, half text: the sample sees both and the chunk is compressed.
    let mixed: Vec<u8> = noise[..32_768]
        .iter()
        .chain(&text[..32_768])
        .copied()
        .collect();
    assert!(!chunk::looks_incompressible(&mixed));
    assert_eq!(chunk::seal(&mixed).codec, Codec::Deflate);
}

#[test]
fn hash_rejects_wrong_length_blobs() {
    let wire = candid::encode_one(serde_bytes::ByteBuf::from(vec![1u8; 31])).unwrap();
    assert!(candid::decode_one::<Hash256>(&wire).is_err());
    let wire = candid::encode_one(serde_bytes::ByteBuf::from(vec![1u8; 32])).unwrap();
    assert_eq!(
        candid::decode_one::<Hash256>(&wire).unwrap(),
        Hash256([1; 32])
    );
}
