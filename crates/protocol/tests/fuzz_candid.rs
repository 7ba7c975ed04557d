//! Fuzz target: candid decoding of every vault and kit endpoint argument, and of the
//! replies a kit or the CLI decodes, with the quotas of `canvault_protocol::decode`.
//!
//! A corpus file is one candid message named `<expect>-<Kind>-<what>`: it is decoded
//! as its own `Kind` (which must hold to the expectation and, when valid, re-encode to
//! the same bytes) and as every other kind (which must only refuse cleanly). Hostile
//! messages (skipping amplification, huge vector lengths, deep and recursive nesting,
//! cost amplification) must be refused by `decoder_config()`; each is also decoded
//! without quotas to show that the quota, not a parse error, refuses it.
//!
//! Long run: `PROPTEST_CASES=100000 cargo test --release -p canvault-protocol --test fuzz_candid`.
//! Regenerate the corpus: `cargo test -p canvault-protocol --test fuzz_candid -- --ignored`.

mod fuzz_common;

use std::fmt::Debug;
use std::sync::OnceLock;

use candid::de::DecoderConfig;
use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{Principal, encode_args};
use canvault_protocol::chunk::{self, MAX_BATCH_PAYLOAD_BYTES};
use canvault_protocol::decode::{self, DECODING_QUOTA, MAX_MESSAGE_BYTES, decoder_config};
use canvault_protocol::kit_api::{
    ArmRestoreRequest, KitConfig, KitError, KitStatus, RestoreBeginRequest, RestoreChunksRequest,
};
use canvault_protocol::vault_api::{
    BeginSnapshotRequest, BeginSnapshotResponse, ChunkBody, ChunkPut, CommitSnapshotRequest,
    ManifestEntry, ManifestPage, PutChunksRequest, PutChunksResponse, RetentionPolicy, Role,
    RoleChange, SnapshotInfo, SnapshotState, StartRestoreRequest, StoredChunk, VaultError,
    VaultInit,
};
use canvault_protocol::{Codec, Hash256};
use fuzz_common::{Expect, apply, config, corpus_dir, corpus_files, expect_of, mutated};
use proptest::prelude::*;

const TARGET: &str = "candid";

/// Decodes `bytes` as `T` with `config`; on success re-encodes the value and checks
/// that it decodes back to itself. Returns the re-encoding.
fn round_trip<T>(bytes: &[u8], config: &DecoderConfig) -> Result<Vec<u8>, candid::Error>
where
    T: for<'a> ArgumentDecoder<'a> + ArgumentEncoder + PartialEq + Debug + Clone,
{
    let value: T = candid::utils::decode_args_with_config(bytes, config)?;
    let again = encode_args(value.clone()).expect("a decoded value encodes");
    let back: T = candid::utils::decode_args_with_config(&again, config)
        .expect("a re-encoded value decodes with the same quotas");
    assert_eq!(back, value, "candid round trip changed the value");
    Ok(again)
}

macro_rules! kinds {
    ($($kind:ident => $ty:ty),* $(,)?) => {
        /// Every argument or reply type a canvault canister or the CLI decodes.
        const KINDS: &[&str] = &[$(stringify!($kind)),*];

        fn decode_as(kind: &str, bytes: &[u8], config: &DecoderConfig) -> Result<Vec<u8>, candid::Error> {
            match kind {
                $(stringify!($kind) => round_trip::<$ty>(bytes, config),)*
                other => panic!("unknown kind {other}"),
            }
        }
    };
}

kinds! {
    // Vault endpoint arguments (vault.did).
    VaultInit => (VaultInit,),
    BeginSnapshot => (BeginSnapshotRequest,),
    PutChunks => (PutChunksRequest,),
    CommitSnapshot => (CommitSnapshotRequest,),
    AbortSnapshot => (u64, String),
    ListSnapshots => (Option<Principal>,),
    SnapshotId => (u64,),
    GetManifest => (u64, u32, u32),
    GetChunk => (Hash256,),
    OpenDownload => (u64, u64),
    SetRetention => (RetentionPolicy,),
    UpdateRoles => (Vec<RoleChange>,),
    StartRestore => (StartRestoreRequest,),
    // Kit endpoint arguments (the canvault_* methods an app exposes).
    KitConfig => (KitConfig,),
    ArmRestore => (ArmRestoreRequest,),
    RestoreBegin => (RestoreBeginRequest,),
    RestoreChunks => (RestoreChunksRequest,),
    // Replies a kit or the CLI decodes.
    BeginReply => (Result<BeginSnapshotResponse, VaultError>,),
    PutChunksReply => (Result<PutChunksResponse, VaultError>,),
    SnapshotReply => (Result<SnapshotInfo, VaultError>,),
    ManifestReply => (Result<ManifestPage, VaultError>,),
    ChunkReply => (Result<StoredChunk, VaultError>,),
    KitReply => (Result<(), KitError>,),
    RestoreChunksReply => (Result<u32, KitError>,),
    KitStatusReply => (Result<KitStatus, KitError>,),
}

/// The kind a corpus file name states: `<expect>-<Kind>-...`.
fn kind_of(name: &str) -> &str {
    let kind = name.split('-').nth(1).unwrap_or_default();
    assert!(KINDS.contains(&kind), "{name}: unknown kind {kind:?}");
    kind
}

fn corpus() -> &'static [(String, Vec<u8>)] {
    static CORPUS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    CORPUS.get_or_init(|| corpus_files(&corpus_dir(env!("CARGO_MANIFEST_DIR"), TARGET)))
}

#[test]
fn replay_corpus() {
    let config = decoder_config();
    for (name, bytes) in corpus() {
        let kind = kind_of(name);
        let result = decode_as(kind, bytes, &config);
        match (expect_of(name), &result) {
            (Expect::Valid, Ok(again)) => {
                assert_eq!(again, bytes, "{name}: re-encodes differently")
            }
            (Expect::Bad, Err(e)) => assert!(!e.to_string().is_empty()),
            (Expect::Any, _) => {}
            (expect, result) => panic!("{name}: expected {expect:?}, got {result:?}"),
        }
        for other in KINDS {
            let _ = decode_as(other, bytes, &config);
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn mutated_messages_decode_or_are_refused(
        (pick, edits) in mutated(corpus().len()),
        as_kind in 0..KINDS.len(),
    ) {
        let bytes = apply(corpus(), pick, &edits);
        let config = decoder_config();
        let _ = decode_as(kind_of(&corpus()[pick].0), &bytes, &config);
        let _ = decode_as(KINDS[as_kind], &bytes, &config);
    }
}

// ---- Hand-made candid: the shapes a hostile caller sends. ----

fn leb(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Type opcodes (sleb128 of the negative type codes).
const NULL: u8 = 0x7f;
const NAT8: u8 = 0x7b;
const NAT64: u8 = 0x78;
const OPT: u8 = 0x6e;
const VEC: u8 = 0x6d;
const RECORD: u8 = 0x6c;

/// `DIDL`, a type table of `types` entries (already encoded), argument types, values.
fn message(types: &[Vec<u8>], args: &[u8], values: &[u8]) -> Vec<u8> {
    let mut out = b"DIDL".to_vec();
    out.extend(leb(types.len() as u64));
    for t in types {
        out.extend(t);
    }
    out.extend(leb(args.len() as u64));
    out.extend(args);
    out.extend(values);
    out
}

/// `list_snapshots` expects `opt principal`; the wire sends `vec null` of `n` elements,
/// which candid's `opt` rule turns into `null` after skipping every element.
fn skipped_vec_null(n: u64) -> Vec<u8> {
    message(&[vec![VEC, NULL]], &[0], &leb(n))
}

/// `canvault_configure` expects `KitConfig` (every field optional); the wire record
/// carries only an unknown field of `vec null` with `n` elements.
fn extra_field_vec_null(n: u64) -> Vec<u8> {
    let mut record = vec![RECORD, 1];
    record.extend(leb(u64::from(candid::idl_hash("zz_padding"))));
    record.push(1); // type index 1
    message(&[record, vec![VEC, NULL]], &[0], &leb(n))
}

/// The expected argument followed by `extra` unexpected `vec null` arguments of `n`
/// elements each.
fn extra_args(extra: usize, n: u64) -> Vec<u8> {
    let mut args = vec![NAT64];
    args.extend(std::iter::repeat_n(0, extra));
    let mut values = 7u64.to_le_bytes().to_vec();
    for _ in 0..extra {
        values.extend(leb(n));
    }
    message(&[vec![VEC, NULL]], &args, &values)
}

/// A chain of `depth` nested `opt` types ending in `nat8`, every level present.
fn nested_opts(depth: usize) -> Vec<u8> {
    let mut types: Vec<Vec<u8>> = (1..depth)
        .map(|i| {
            let mut t = vec![OPT];
            t.extend(leb(i as u64));
            t
        })
        .collect();
    types.push(vec![OPT, NAT8]);
    let mut values = vec![1u8; depth];
    values.push(0);
    message(&types, &[0], &values)
}

/// `type t = opt t`, nested `depth` deep in the value: a few bytes per level, no
/// type-table cost, recursion all the way down.
fn recursive_opt(depth: usize) -> Vec<u8> {
    let mut values = vec![1u8; depth];
    values.push(0);
    message(&[vec![OPT, 0]], &[0], &values)
}

/// `update_roles` with `n` role changes, each granting a role to the anonymous
/// principal: 5 bytes on the wire, about 15 times that in decoding work.
fn many_role_changes(n: usize) -> Vec<u8> {
    let change = RoleChange {
        principal: Principal::anonymous(),
        role: Role::Reader,
        grant: true,
    };
    encode_args((vec![change; n],)).expect("encode")
}

/// A `PutChunksRequest` with no chunks whose vector length says 2^40.
fn huge_vec_length() -> Vec<u8> {
    let mut bytes = candid::encode_one(PutChunksRequest {
        snapshot_id: u64::MAX,
        chunks: Vec::new(),
    })
    .expect("encode");
    // The record's fields in wire order: `chunks` (length 0), then `snapshot_id`.
    let n = bytes.len();
    assert_eq!((bytes[n - 9], &bytes[n - 8..]), (0, &[0xff; 8][..]));
    let snapshot_id = bytes.split_off(n - 8);
    bytes.pop();
    bytes.extend(leb(1 << 40));
    bytes.extend(snapshot_id);
    bytes
}

/// A blob (`get_chunk`'s digest) whose length says 2^40.
fn huge_blob_length() -> Vec<u8> {
    let mut values = leb(1 << 40);
    values.extend([0u8; 16]);
    message(&[vec![VEC, NAT8]], &[0], &values)
}

fn unlimited() -> DecoderConfig {
    DecoderConfig::new()
}

/// Why `decoder_config()` refuses `bytes` as a `kind` (with full messages, which the
/// canisters leave off, so the test can tell a quota from a parse error).
fn quota_error(kind: &str, bytes: &[u8]) -> String {
    let mut config = decoder_config();
    config.set_full_error_message(true);
    match decode_as(kind, bytes, &config) {
        Ok(_) => panic!("{kind}: a hostile message was accepted under the quotas"),
        Err(e) => format!("{e:?}"),
    }
}

#[test]
fn skipping_amplification_is_refused_by_the_quota() {
    for (kind, bytes) in [
        ("ListSnapshots", skipped_vec_null(1_000_000)),
        ("KitConfig", extra_field_vec_null(1_000_000)),
        ("SnapshotId", extra_args(3, 1_000_000)),
    ] {
        assert!(
            decode_as(kind, &bytes, &unlimited()).is_ok(),
            "{kind}: the message is well-formed"
        );
        let e = quota_error(kind, &bytes);
        assert!(e.contains("exceeds the limit"), "{kind}: {e}");
        // 2^32 elements: refused as early, in the same few bytes.
        let e = quota_error(kind, &bytes_with_len(kind, u64::from(u32::MAX)));
        assert!(e.contains("exceeds the limit"), "{kind}: {e}");
    }
}

fn bytes_with_len(kind: &str, n: u64) -> Vec<u8> {
    match kind {
        "ListSnapshots" => skipped_vec_null(n),
        "KitConfig" => extra_field_vec_null(n),
        _ => extra_args(3, n),
    }
}

#[test]
fn deep_and_recursive_nesting_is_refused() {
    // A type table longer than MAX_TYPE_TABLE_LEN is refused before any value is read.
    let deep = nested_opts(2000);
    let e = quota_error("ListSnapshots", &deep);
    assert!(e.contains("type table"), "{e}");
    // A recursive type nests as deep as the message is long: candid's depth guard
    // refuses it (a stack overflow would abort the canister instead).
    let recursive = recursive_opt(MAX_MESSAGE_BYTES - 64);
    for kind in ["ListSnapshots", "KitConfig", "SnapshotId"] {
        let _ = quota_error(kind, &recursive);
    }
}

#[test]
fn huge_declared_lengths_are_refused_not_allocated() {
    // The allocator cap of fuzz_common turns any allocation of the declared size into
    // an abort, so passing this test means nothing of the sort was attempted.
    let e = quota_error("PutChunks", &huge_vec_length());
    assert!(!e.is_empty());
    let e = quota_error("GetChunk", &huge_blob_length());
    assert!(!e.is_empty());
}

#[test]
fn cost_amplification_is_refused_by_the_quota() {
    // 2 MiB of role changes for the anonymous principal: 5 bytes each on the wire,
    // about 15 times that in decoding work.
    let n = (MAX_MESSAGE_BYTES - 1024) / 5;
    let bytes = many_role_changes(n);
    assert!(bytes.len() <= MAX_MESSAGE_BYTES);
    assert!(decode_as("UpdateRoles", &bytes, &unlimited()).is_ok());
    let e = quota_error("UpdateRoles", &bytes);
    assert!(e.contains("exceeds the limit"), "{e}");
}

/// The decoding cost of `bytes` as a `T`, in candid units.
fn cost<T>(bytes: &[u8]) -> usize
where
    T: for<'a> ArgumentDecoder<'a>,
{
    let (_, cost) = candid::utils::decode_args_with_config_debug::<T>(bytes, &decoder_config())
        .expect("a legitimate message decodes under the quotas");
    cost.decoding_quota.expect("a quota is set")
}

fn zero_put(index: u32) -> ChunkPut {
    ChunkPut {
        index,
        hash: chunk::zero_hash(1 << 20),
        len: 1 << 20,
        body: ChunkBody::Zero,
    }
}

/// The densest legitimate messages fit the quota: a batch of 2 MiB made only of `Zero`
/// entries (the most entries per byte), and a batch of frames at the payload budget.
#[test]
fn largest_legitimate_messages_fit_the_quota() {
    let zeros = |n: u32| PutChunksRequest {
        snapshot_id: u64::MAX,
        chunks: (0..n).map(zero_put).collect(),
    };
    let size = |n: u32| candid::encode_one(zeros(n)).expect("encode").len();
    let per_entry = size(2) - size(1);
    let fixed = size(1) - per_entry;
    let entries = u32::try_from((MAX_MESSAGE_BYTES - fixed) / per_entry).expect("small");
    let zeros = zeros(entries);
    let bytes = candid::encode_one(zeros.clone()).expect("encode");
    assert!(bytes.len() <= MAX_MESSAGE_BYTES);
    let zero_cost = cost::<(PutChunksRequest,)>(&bytes);
    assert!(zero_cost < DECODING_QUOTA);
    let restore = RestoreChunksRequest {
        snapshot_id: 1,
        chunks: zeros.chunks,
    };
    let restore_bytes = candid::encode_one(restore).expect("encode");
    assert!(cost::<(RestoreChunksRequest,)>(&restore_bytes) < DECODING_QUOTA);

    let noise: Vec<u8> = (0..MAX_BATCH_PAYLOAD_BYTES as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let frames = PutChunksRequest {
        snapshot_id: 3,
        chunks: (0u32..)
            .zip(noise.chunks(1 << 20))
            .map(|(i, raw)| ChunkPut::with_bytes(i, raw))
            .collect(),
    };
    let frame_bytes = candid::encode_one(frames.clone()).expect("encode");
    let frame_cost = cost::<(PutChunksRequest,)>(&frame_bytes);
    assert!(frame_cost < DECODING_QUOTA);
    // The figures the doc comment of DECODING_QUOTA quotes.
    let per_byte = |c: usize, b: usize| c as f64 / b as f64;
    assert!(
        per_byte(zero_cost, bytes.len()) < 3.0,
        "zero batch: {zero_cost} for {}",
        bytes.len()
    );
    assert!(per_byte(frame_cost, frame_bytes.len()) < 1.1);
    // And the public helper is the same configuration.
    let back: PutChunksRequest = decode::decode_one(&frame_bytes).expect("decode");
    assert_eq!(back, frames);
}

fn sample_info() -> SnapshotInfo {
    SnapshotInfo {
        id: 4,
        source: Principal::from_slice(&[1, 2, 3]),
        parent: Some(3),
        state: SnapshotState::Complete,
        created_at_ns: 1_700_000_000_000_000_000,
        completed_at_ns: Some(1_700_000_001_000_000_000),
        image_size: 3 << 20,
        chunk_size: 1 << 20,
        chunk_count: 3,
        root: Some(Hash256([9; 32])),
        new_bytes: 12_345,
        label: Some("nightly".into()),
        dataset: Some("alice".into()),
        kind: Some(canvault_protocol::vault_api::SnapshotKind::KitImage),
    }
}

/// Writes the seed corpus: messages made by the real encoder for every kind, and the
/// small hostile shapes above.
#[test]
#[ignore = "regenerates the committed corpus"]
fn generate_corpus() {
    let p = Principal::from_slice(&[1, 2, 3]);
    let text = b"canvault ".repeat(500);
    let put = ChunkPut::with_bytes(2, &text);
    let entries: Vec<(String, Vec<u8>)> = vec![
        (
            "valid-VaultInit-full".into(),
            encode_args((VaultInit {
                owners: vec![p],
                writers: vec![Principal::from_slice(&[4; 10])],
                readers: vec![],
                retention: Some(RetentionPolicy::default()),
            },))
            .unwrap(),
        ),
        (
            "valid-BeginSnapshot-incremental".into(),
            encode_args((BeginSnapshotRequest {
                parent: Some(7),
                image_size: 5 << 20,
                chunk_size: 1 << 20,
                nonce: 42,
                label: Some("before upgrade".into()),
                source: None,
            },))
            .unwrap(),
        ),
        (
            "valid-PutChunks-mixed".into(),
            encode_args((PutChunksRequest {
                snapshot_id: 9,
                chunks: vec![
                    zero_put(0),
                    ChunkPut {
                        index: 1,
                        hash: Hash256([5; 32]),
                        len: 65_536,
                        body: ChunkBody::Known,
                    },
                    put.clone(),
                ],
            },))
            .unwrap(),
        ),
        (
            "valid-CommitSnapshot-root".into(),
            encode_args((CommitSnapshotRequest {
                snapshot_id: 9,
                root: Hash256([7; 32]),
            },))
            .unwrap(),
        ),
        (
            "valid-AbortSnapshot-reason".into(),
            encode_args((9u64, "the app was upgraded".to_string())).unwrap(),
        ),
        (
            "valid-ListSnapshots-some".into(),
            encode_args((Some(p),)).unwrap(),
        ),
        (
            "valid-ListSnapshots-none".into(),
            encode_args((None::<Principal>,)).unwrap(),
        ),
        (
            "valid-SnapshotId-max".into(),
            encode_args((u64::MAX,)).unwrap(),
        ),
        (
            "valid-GetManifest-page".into(),
            encode_args((9u64, 0u32, 1000u32)).unwrap(),
        ),
        (
            "valid-GetChunk-digest".into(),
            encode_args((put.hash,)).unwrap(),
        ),
        (
            "valid-OpenDownload-lease".into(),
            encode_args((9u64, 3600u64)).unwrap(),
        ),
        (
            "valid-SetRetention-policy".into(),
            encode_args((RetentionPolicy {
                keep_last: 3,
                keep_daily: 0,
                keep_weekly: 2,
            },))
            .unwrap(),
        ),
        (
            "valid-UpdateRoles-two".into(),
            encode_args((vec![
                RoleChange {
                    principal: p,
                    role: Role::Writer,
                    grant: true,
                },
                RoleChange {
                    principal: p,
                    role: Role::Owner,
                    grant: false,
                },
            ],))
            .unwrap(),
        ),
        (
            "valid-StartRestore-job".into(),
            encode_args((StartRestoreRequest {
                snapshot_id: 9,
                target: p,
            },))
            .unwrap(),
        ),
        (
            "valid-KitConfig-full".into(),
            encode_args((KitConfig {
                vault: Some(p),
                admins: Some(vec![p]),
                interval_seconds: Some(3600),
                chunk_size: Some(1 << 20),
                window: Some(4),
                max_unverified_restore_bytes: Some(1 << 30),
            },))
            .unwrap(),
        ),
        (
            "valid-KitConfig-empty".into(),
            encode_args((KitConfig::default(),)).unwrap(),
        ),
        (
            "valid-ArmRestore-root".into(),
            encode_args((ArmRestoreRequest {
                vault: p,
                snapshot_id: 9,
                expected_root: Some(Hash256([1; 32])),
            },))
            .unwrap(),
        ),
        (
            "valid-RestoreBegin-geometry".into(),
            encode_args((RestoreBeginRequest {
                snapshot_id: 9,
                image_size: 3 << 20,
                chunk_size: 1 << 20,
                root: Hash256([2; 32]),
            },))
            .unwrap(),
        ),
        (
            "valid-RestoreChunks-mixed".into(),
            encode_args((RestoreChunksRequest {
                snapshot_id: 9,
                chunks: vec![zero_put(0), put.clone()],
            },))
            .unwrap(),
        ),
        (
            "valid-BeginReply-ok".into(),
            encode_args((Ok::<_, VaultError>(BeginSnapshotResponse {
                snapshot_id: 9,
                parent: Some(8),
            }),))
            .unwrap(),
        ),
        (
            "valid-PutChunksReply-missing".into(),
            encode_args((Ok::<_, VaultError>(PutChunksResponse {
                recorded: 3,
                missing: vec![1],
            }),))
            .unwrap(),
        ),
        (
            "valid-PutChunksReply-conflict".into(),
            encode_args((Err::<PutChunksResponse, _>(VaultError::ConflictingChunk {
                index: 1,
                recorded: Hash256([1; 32]),
                sent: Hash256([2; 32]),
            }),))
            .unwrap(),
        ),
        (
            "valid-SnapshotReply-info".into(),
            encode_args((Ok::<_, VaultError>(sample_info()),)).unwrap(),
        ),
        (
            "valid-ManifestReply-page".into(),
            encode_args((Ok::<_, VaultError>(ManifestPage {
                entries: vec![ManifestEntry {
                    index: 0,
                    hash: chunk::zero_hash(1 << 20),
                    len: 1 << 20,
                    zero: true,
                }],
                next: Some(1),
            }),))
            .unwrap(),
        ),
        (
            "valid-ChunkReply-frame".into(),
            encode_args((Ok::<_, VaultError>(StoredChunk {
                hash: put.hash,
                len: put.len,
                codec: Codec::Deflate,
                bytes: match &put.body {
                    ChunkBody::Data { bytes, .. } => bytes.clone(),
                    _ => unreachable!("text is data"),
                },
            }),))
            .unwrap(),
        ),
        (
            "valid-ChunkReply-unauthorized".into(),
            encode_args((Err::<StoredChunk, _>(VaultError::Unauthorized {
                caller: p,
                needed: Role::Reader,
            }),))
            .unwrap(),
        ),
        (
            "valid-KitReply-ok".into(),
            encode_args((Ok::<(), KitError>(()),)).unwrap(),
        ),
        (
            "valid-KitReply-wrong-snapshot".into(),
            encode_args((Err::<(), _>(KitError::WrongSnapshot { armed: 1, got: 2 }),)).unwrap(),
        ),
        (
            "valid-RestoreChunksReply-ok".into(),
            encode_args((Ok::<u32, KitError>(2),)).unwrap(),
        ),
        (
            "bad-ListSnapshots-skipped-vec-null-4g".into(),
            skipped_vec_null(u64::from(u32::MAX)),
        ),
        (
            "bad-KitConfig-extra-field-vec-null-4g".into(),
            extra_field_vec_null(u64::from(u32::MAX)),
        ),
        (
            "bad-SnapshotId-extra-args-vec-null".into(),
            extra_args(3, 1_000_000),
        ),
        (
            "bad-ListSnapshots-nested-opt-2000".into(),
            nested_opts(2000),
        ),
        (
            "bad-ListSnapshots-recursive-opt-100k".into(),
            recursive_opt(100_000),
        ),
        ("bad-PutChunks-vec-length-2p40".into(), huge_vec_length()),
        ("bad-GetChunk-blob-length-2p40".into(), huge_blob_length()),
        (
            "bad-GetChunk-digest-31-bytes".into(),
            encode_args((serde_bytes::ByteBuf::from(vec![1u8; 31]),)).unwrap(),
        ),
        (
            "bad-SnapshotId-not-candid".into(),
            b"DIDX\x00\x01\x78".to_vec(),
        ),
        ("bad-SnapshotId-empty".into(), Vec::new()),
    ];
    fuzz_common::write_corpus(&corpus_dir(env!("CARGO_MANIFEST_DIR"), TARGET), &entries);
}
