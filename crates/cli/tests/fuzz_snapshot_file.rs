//! Fuzz target: the snapshot file format (`file_format::SnapshotReader` and the whole
//! offline check, `verify::verify`), which reads files from anywhere.
//!
//! Every input is written to a temporary file and verified. A verified file must
//! rewrite byte for byte through `SnapshotWriter`; a refused one must be refused with
//! `CliError::BadFile` (malformed) or `CliError::Integrity` (a chunk or root that does
//! not verify), never a panic, and never after allocating what a length field claims.
//!
//! Long run: `PROPTEST_CASES=20000 cargo test --release -p canvault-cli --test fuzz_snapshot_file`.
//! Regenerate the corpus: `cargo test -p canvault-cli --test fuzz_snapshot_file -- --ignored`.

#[path = "../../protocol/tests/fuzz_common/mod.rs"]
mod fuzz_common;

use std::path::Path;
use std::sync::OnceLock;

use candid::Principal;
use canvault_cli::error::CliError;
use canvault_cli::file_format::{
    ChunkRecord, MAGIC, RecordBody, SnapshotMeta, SnapshotReader, SnapshotWriter,
};
use canvault_cli::progress::ProgressMode;
use canvault_cli::verify::{self, VerifyReport};
use canvault_protocol::chunk;
use canvault_protocol::merkle;
use fuzz_common::{Expect, apply, config, corpus_dir, corpus_files, expect_of, mutated};
use proptest::prelude::*;

const TARGET: &str = "snapshot_file";

/// Verifies `bytes` as a snapshot file; checks the error's type and, for a verified
/// file, that its records rewrite into a file that verifies the same. Returns the
/// report and the rewritten bytes.
fn check(bytes: &[u8]) -> Result<(VerifyReport, Vec<u8>), CliError> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("input.canvault");
    std::fs::write(&path, bytes).expect("write the input");
    match verify::verify(&path, ProgressMode::Hidden) {
        Ok(report) => {
            let again = dir.path().join("again.canvault");
            rewrite(&path, &again);
            let second = verify::verify(&again, ProgressMode::Hidden)
                .expect("the rewrite of a verified file verifies");
            assert_eq!(second, report, "the rewrite holds another snapshot");
            Ok((report, std::fs::read(&again).expect("read the rewrite")))
        }
        Err(e) => {
            assert!(
                matches!(e, CliError::BadFile { .. } | CliError::Integrity(_)),
                "refused with an untyped or misleading error: {e:?}"
            );
            Err(e)
        }
    }
}

/// Reads every record of `from` and writes them again into `to`.
fn rewrite(from: &Path, to: &Path) {
    let mut r = SnapshotReader::open(from).expect("a verified file opens");
    let mut w = SnapshotWriter::create(to, &r.meta).expect("create");
    while let Some(rec) = r.next_record().expect("a verified file reads") {
        w.append(&rec).expect("append");
    }
    r.finish().expect("a verified file has its trailer");
    w.finish().expect("finish");
}

fn corpus() -> &'static [(String, Vec<u8>)] {
    static CORPUS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    CORPUS.get_or_init(|| corpus_files(&corpus_dir(env!("CARGO_MANIFEST_DIR"), TARGET)))
}

#[test]
fn replay_corpus() {
    for (name, bytes) in corpus() {
        match (expect_of(name), check(bytes)) {
            (Expect::Valid, Ok((_, again))) => {
                assert_eq!(&again, bytes, "{name}: does not rewrite to itself");
            }
            (Expect::Bad, Err(_)) | (Expect::Any, _) => {}
            (expect, result) => panic!("{name}: expected {expect:?}, got {result:?}"),
        }
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn mutated_files_verify_or_are_refused((pick, edits) in mutated(corpus().len())) {
        let _ = check(&apply(corpus(), pick, &edits));
    }
}

/// A header that declares 2^32 - 1 chunks of 1 MiB (a consistent geometry of 4 PiB)
/// and then ends: verifying it must say "truncated", not reserve room for 2^32 digests
/// (128 GiB) up front.
#[test]
fn declared_chunk_count_is_not_preallocated() {
    let bytes = header_only(u32::MAX);
    match check(&bytes) {
        Err(CliError::BadFile { reason, .. }) => assert!(reason.contains("truncated"), "{reason}"),
        other => panic!("expected a truncated file, got {other:?}"),
    }
}

// ---- The seed corpus. ----

const CS: u32 = 64 * 1024;

fn meta_of(image: &[u8], chunk_size: u32) -> SnapshotMeta {
    SnapshotMeta {
        source: Principal::from_slice(&[1, 2, 3]).to_text(),
        vault: Some(Principal::from_slice(&[9; 10]).to_text()),
        snapshot_id: Some(4),
        created_at_ns: 1_700_000_000_000_000_000,
        label: Some("fuzz seed".into()),
        image_size: image.len() as u64,
        chunk_size,
        chunk_count: chunk::chunk_count(image.len() as u64, chunk_size),
        root: merkle::image_root_of_bytes(image, chunk_size).to_hex(),
    }
}

fn records(image: &[u8], chunk_size: u32) -> Vec<ChunkRecord> {
    (0u32..)
        .zip(image.chunks(chunk_size as usize))
        .map(|(index, raw)| ChunkRecord::of_bytes(index, raw))
        .collect()
}

/// A snapshot file of `records` under `meta`, as the real writer writes it.
fn file_of(meta: &SnapshotMeta, records: &[ChunkRecord], trailer: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("seed.canvault");
    let mut w = SnapshotWriter::create(&path, meta).expect("create");
    for r in records {
        w.append(r).expect("append");
    }
    if trailer {
        w.finish().expect("finish");
    } else {
        w.flush().expect("flush");
        drop(w);
    }
    std::fs::read(&path).expect("read the seed")
}

fn header_only(chunk_count: u32) -> Vec<u8> {
    let meta = SnapshotMeta {
        image_size: u64::from(chunk_count) << 20,
        chunk_size: 1 << 20,
        chunk_count,
        ..meta_of(&[], CS)
    };
    file_of(&meta, &[], false)
}

/// Text, zeros, a short pseudo-random tail: deflate, zero and raw records.
fn image() -> Vec<u8> {
    let mut image = b"canvault ".repeat(7282);
    image.resize(CS as usize, b'.');
    image.extend(std::iter::repeat_n(0u8, CS as usize));
    image.extend((0..1000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8));
    image
}

/// Offset of record `i`'s header in a file of `meta` (records before it as in `recs`).
fn record_offset(file: &[u8], recs: &[ChunkRecord], i: usize) -> usize {
    let meta_len = u32::from_le_bytes(file[10..14].try_into().expect("4 bytes")) as usize;
    14 + meta_len
        + recs[..i]
            .iter()
            .map(|r| usize::try_from(r.file_bytes()).expect("small"))
            .sum::<usize>()
}

#[test]
#[ignore = "regenerates the committed corpus"]
fn generate_corpus() {
    let image = image();
    let meta = meta_of(&image, CS);
    let recs = records(&image, CS);
    let good = file_of(&meta, &recs, true);
    let pattern: Vec<u8> = [1u8, 2, 3, 4].repeat(300_000);
    let mut entries: Vec<(String, Vec<u8>)> = vec![
        ("valid-three-chunks".into(), good.clone()),
        (
            "valid-one-byte".into(),
            file_of(&meta_of(&[5], CS), &records(&[5], CS), true),
        ),
        (
            "valid-empty-image".into(),
            file_of(&meta_of(&[], CS), &[], true),
        ),
        (
            "valid-1mib-chunks".into(),
            file_of(
                &meta_of(&pattern, 1 << 20),
                &records(&pattern, 1 << 20),
                true,
            ),
        ),
    ];
    let mut bad = |name: &str, bytes: Vec<u8>| entries.push((format!("bad-{name}"), bytes));
    bad("truncated-no-trailer", file_of(&meta, &recs, false));
    bad("truncated-mid-record", good[..good.len() - 500].to_vec());
    bad("header-only-4g-chunks", header_only(u32::MAX));
    bad("header-only-1m-chunks", header_only(1 << 20));
    let mut magic = good.clone();
    magic[..8].copy_from_slice(b"CANVAULX");
    bad("magic", magic);
    let mut version = good.clone();
    version[8] = 1;
    bad("version-1", version);
    let mut meta_len = good.clone();
    meta_len[10..14].copy_from_slice(&u32::MAX.to_le_bytes());
    bad("metadata-length-4g", meta_len);
    let mut meta_json = good.clone();
    meta_json[14] = b'[';
    bad("metadata-not-json", meta_json);
    let geometry = SnapshotMeta {
        chunk_count: 2,
        ..meta.clone()
    };
    bad("metadata-geometry", file_of(&geometry, &recs[..2], true));
    let r1 = record_offset(&good, &recs, 1);
    let r2 = record_offset(&good, &recs, 2);
    let mut encoded_len = good.clone();
    encoded_len[r2 + 41..r2 + 45].copy_from_slice(&u32::MAX.to_le_bytes());
    bad("encoded-length-4g", encoded_len);
    let mut zero_bytes = good.clone();
    zero_bytes[r1 + 41..r1 + 45].copy_from_slice(&5u32.to_le_bytes());
    bad("zero-record-with-bytes", zero_bytes);
    let mut codec = good.clone();
    codec[r2 + 40] = 3;
    bad("unknown-codec", codec);
    let mut order = good.clone();
    order[r1..r1 + 4].copy_from_slice(&2u32.to_le_bytes());
    bad("out-of-order", order);
    let mut flipped = good.clone();
    flipped[r2 + 60] ^= 1;
    bad("chunk-bit-flipped", flipped);
    let mut len = good.clone();
    len[r2 + 4..r2 + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    bad("chunk-length-4g", len);
    let mut trailer = good.clone();
    let n = trailer.len();
    trailer[n - 4..].copy_from_slice(&7u32.to_le_bytes());
    bad("trailer-count", trailer);
    let mut extra = good.clone();
    extra.push(0);
    bad("bytes-after-trailer", extra);
    let wrong_root = SnapshotMeta {
        root: merkle::image_root_of_bytes(&[1], CS).to_hex(),
        ..meta.clone()
    };
    bad("wrong-root", file_of(&wrong_root, &recs, true));
    let mut swapped = recs.clone();
    if let (RecordBody::Data { .. }, RecordBody::Data { .. }) = (&swapped[0].body, &swapped[2].body)
    {
        let (a, b) = (swapped[0].clone(), swapped[2].clone());
        swapped[0] = ChunkRecord { index: 0, ..b };
        swapped[2] = ChunkRecord { index: 2, ..a };
    }
    bad("records-swapped", file_of(&meta, &swapped, true));
    assert_eq!(&good[..8], MAGIC);
    fuzz_common::write_corpus(&corpus_dir(env!("CARGO_MANIFEST_DIR"), TARGET), &entries);
}
