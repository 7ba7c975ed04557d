//! Property tests: chunk encoding round-trips and detects corruption; roots are
//! deterministic, geometry-bound and sensitive to every chunk.

use canvault_protocol::chunk::{self, Codec};
use canvault_protocol::merkle::{image_root, image_root_of_bytes, tree_root};
use canvault_protocol::vault_api::{ChunkBody, ChunkPut, PutChunksRequest};
use canvault_protocol::{ChunkError, Hash256};
use proptest::prelude::*;

fn chunk_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..5000),
        // Repetitive data, which LZ4 does compress.
        (proptest::collection::vec(any::<u8>(), 1..16), 0usize..5000)
            .prop_map(|(pattern, n)| pattern.iter().copied().cycle().take(n).collect()),
    ]
}

proptest! {
    #[test]
    fn encode_then_decode_verified_round_trips(raw in chunk_bytes()) {
        let (codec, bytes) = chunk::encode(&raw);
        if codec == Codec::Lz4 {
            prop_assert!(bytes.len() < raw.len());
        }
        let hash = Hash256::of(&raw);
        let back = chunk::decode_verified(codec, &bytes, raw.len() as u32, &hash).unwrap();
        prop_assert_eq!(back, raw);
    }

    #[test]
    fn a_flipped_bit_is_detected(raw in proptest::collection::vec(any::<u8>(), 1..3000), pos in any::<usize>(), bit in 0u8..8) {
        let (codec, mut bytes) = chunk::encode(&raw);
        let i = pos % bytes.len();
        bytes[i] ^= 1 << bit;
        let hash = Hash256::of(&raw);
        prop_assert!(chunk::decode_verified(codec, &bytes, raw.len() as u32, &hash).is_err());
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
        let (codec, bytes) = chunk::encode(&raw);
        let body = if zero { ChunkBody::Zero } else { ChunkBody::Data { codec, bytes: bytes.into() } };
        let req = PutChunksRequest { snapshot_id: 7, chunks: vec![ChunkPut { index, hash: Hash256::of(&raw), len: raw.len() as u32, body }] };
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
        Hash256::of(&image[start..end])
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
    assert_eq!(
        chunk::zero_hash(chunk::DEFAULT_CHUNK_SIZE),
        Hash256::of(&vec![0; 1 << 20])
    );
    assert_eq!(chunk::zero_hash(100), Hash256::of(&[0; 100]));
}

#[test]
fn wrong_length_and_wrong_hash_are_typed_errors() {
    let raw = b"hello hello hello hello hello".to_vec();
    let (codec, bytes) = chunk::encode(&raw);
    let hash = Hash256::of(&raw);
    assert!(matches!(
        chunk::decode_verified(codec, &bytes, raw.len() as u32 + 1, &hash),
        Err(ChunkError::WrongLength { .. } | ChunkError::Corrupt { .. })
    ));
    assert!(matches!(
        chunk::decode_verified(codec, &bytes, raw.len() as u32, &Hash256::of(b"other")),
        Err(ChunkError::HashMismatch { .. })
    ));
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
