//! The snapshot file format (`canvault snapshot download` writes it, `verify`, `restore`
//! and `export` read it), byte for byte: a fixed snapshot (a deflated chunk, an all-zero
//! chunk, an incompressible raw chunk, a short tail) written the way `download` writes
//! it must equal `golden/snapshot-file.bin.gz`, and the committed file must still verify
//! as that snapshot.
//!
//! A difference means the format changed. Then: bump `file_format::VERSION`, keep
//! reading the previous version (files downloaded earlier must stay restorable), and
//! regenerate with `CANVAULT_UPDATE_GOLDEN=1 cargo test -p canvault-cli --test
//! golden_snapshot_file`.

use candid::Principal;
use canvault_cli::file_format::{ChunkRecord, RecordBody, SnapshotMeta, SnapshotWriter};
use canvault_cli::progress::ProgressMode;
use canvault_cli::verify;
use canvault_protocol::golden::{assert_golden, read_golden};
use canvault_protocol::merkle;
use canvault_protocol::vault_api::{SnapshotInfo, SnapshotState};
use canvault_protocol::{Codec, chunk};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/snapshot-file.bin.gz");
const CS: u32 = chunk::MIN_CHUNK_SIZE;

/// Text (deflates), zeros, noise (stays raw), a 1,000-byte tail.
fn image() -> Vec<u8> {
    let mut image = b"the canvault snapshot file, golden ".repeat(2_000);
    image.resize(CS as usize, b'.');
    image.resize(2 * CS as usize, 0);
    let mut x = 0x9e37_79b9_u32;
    image.extend((0..CS + 1_000).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        (x >> 24) as u8
    }));
    image
}

/// The snapshot as the vault describes it.
fn info(image: &[u8]) -> SnapshotInfo {
    SnapshotInfo {
        id: 17,
        source: Principal::from_slice(&[1, 2, 3, 4]),
        parent: Some(16),
        state: SnapshotState::Complete,
        created_at_ns: 1_780_000_000_123_456_789,
        completed_at_ns: Some(1_780_000_001_000_000_000),
        image_size: image.len() as u64,
        chunk_size: CS,
        chunk_count: chunk::chunk_count(image.len() as u64, CS),
        root: Some(merkle::image_root_of_bytes(image, CS)),
        new_bytes: 0,
        label: Some("nightly".into()),
        dataset: None,
        kind: None,
    }
}

/// Writes the file as `download` does: metadata from the vault's `SnapshotInfo`, one
/// record per chunk in index order, sealed as the kit seals chunks.
fn written() -> Vec<u8> {
    let image = image();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("golden.canvault");
    let vault = Principal::from_slice(&[9; 10]);
    let meta = SnapshotMeta::from_info(&info(&image), vault).expect("complete");
    let mut w = SnapshotWriter::create(&path, &meta).expect("create");
    let records: Vec<ChunkRecord> = (0u32..)
        .zip(image.chunks(CS as usize))
        .map(|(index, raw)| ChunkRecord::of_bytes(index, raw))
        .collect();
    let kinds: Vec<Option<Codec>> = records
        .iter()
        .map(|r| match &r.body {
            RecordBody::Data { codec, .. } => Some(*codec),
            RecordBody::Zero => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            Some(Codec::Deflate),
            None,
            Some(Codec::Raw),
            Some(Codec::Raw)
        ],
        "the fixed image covers every kind of record"
    );
    for r in &records {
        w.append(r).expect("append");
    }
    w.finish().expect("finish");
    std::fs::read(&path).expect("read back")
}

#[test]
fn the_snapshot_file_format_matches_the_golden_file() {
    assert_golden(
        GOLDEN,
        &written(),
        "the snapshot file format",
        "bump file_format::VERSION and keep reading the previous version (see this test's doc)",
    );
}

#[test]
fn the_golden_snapshot_file_still_verifies_as_its_snapshot() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("golden.canvault");
    std::fs::write(&path, read_golden(GOLDEN)).expect("write");
    let mut decoded = Vec::new();
    let report = verify::verify_with(&path, ProgressMode::Hidden, |_, bytes| {
        decoded.extend_from_slice(bytes);
        Ok(())
    })
    .expect("the golden file verifies");
    let image = image();
    let vault = Principal::from_slice(&[9; 10]);
    assert_eq!(
        report.meta,
        SnapshotMeta::from_info(&info(&image), vault).unwrap()
    );
    assert_eq!((report.data_chunks, report.zero_chunks), (3, 1));
    assert!(decoded == image, "the golden file holds the fixed image");
}

#[test]
fn the_written_file_is_deterministic() {
    assert!(written() == written());
}
