use canvault_protocol::chunk;
use canvault_protocol::merkle;

use super::*;

const CS: u32 = 64 * 1024;

/// Three chunks: text, zeros, a short random-ish tail.
fn image() -> Vec<u8> {
    let mut image = b"canvault ".repeat(7282);
    image.resize(CS as usize, b'.');
    image.extend(std::iter::repeat_n(0u8, CS as usize));
    image.extend((0..1000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8));
    image
}

fn meta_of(image: &[u8]) -> SnapshotMeta {
    SnapshotMeta {
        source: Principal::from_slice(&[1, 2, 3]).to_text(),
        vault: None,
        snapshot_id: Some(4),
        created_at_ns: 1_700_000_000_000_000_000,
        label: Some("test".into()),
        image_size: image.len() as u64,
        chunk_size: CS,
        chunk_count: chunk::chunk_count(image.len() as u64, CS),
        root: merkle::image_root_of_bytes(image, CS).to_hex(),
    }
}

fn records(image: &[u8]) -> Vec<ChunkRecord> {
    (0u32..)
        .zip(image.chunks(CS as usize))
        .map(|(index, raw)| ChunkRecord::of_bytes(index, raw))
        .collect()
}

fn write(path: &Path, image: &[u8]) {
    let mut w = SnapshotWriter::create(path, &meta_of(image)).unwrap();
    for r in records(image) {
        w.append(&r).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn should_round_trip_header_records_and_trailer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.canvault");
    let image = image();
    write(&path, &image);
    let mut r = SnapshotReader::open(&path).unwrap();
    assert_eq!(r.meta, meta_of(&image));
    let mut read = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        read.extend(rec.decode().unwrap());
    }
    r.finish().unwrap();
    assert_eq!(read, image);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], MAGIC);
    assert_eq!(&bytes[bytes.len() - 12..bytes.len() - 4], TRAILER_MAGIC);
}

#[test]
fn should_compress_text_and_store_zero_chunks_without_bytes() {
    let recs = records(&image());
    assert!(matches!(
        recs[0].body,
        RecordBody::Data {
            codec: Codec::Deflate,
            ..
        }
    ));
    assert_eq!(recs[1].body, RecordBody::Zero);
    assert_eq!(recs[1].file_bytes(), RECORD_HEADER_BYTES);
}

#[test]
fn should_report_a_truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.canvault");
    write(&path, &image());
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - TRAILER_BYTES - 10)
        .unwrap();
    let mut r = SnapshotReader::open(&path).unwrap();
    let mut n = 0;
    while r.next_record().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 2, "the cut record is not returned");
    let e = r.finish().unwrap_err().to_string();
    assert!(e.contains("truncated: 2 of 3 chunks"), "{e}");
}

#[test]
fn should_refuse_a_file_without_the_magic_or_of_another_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.canvault");
    std::fs::write(&path, b"NOTVAULT and more").unwrap();
    let e = SnapshotReader::open(&path).err().unwrap().to_string();
    assert!(e.contains("CANVAULT magic"), "{e}");
    write(&path, &image());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8] = 9;
    std::fs::write(&path, &bytes).unwrap();
    let e = SnapshotReader::open(&path).err().unwrap().to_string();
    assert!(e.contains("format version 9 is not supported"), "{e}");
}

#[test]
fn should_refuse_records_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.canvault");
    let image = image();
    let mut w = SnapshotWriter::create(&path, &meta_of(&image)).unwrap();
    let recs = records(&image);
    let e = w.append(&recs[1]).unwrap_err().to_string();
    assert!(e.contains("out of order"), "{e}");
}

#[test]
fn should_refuse_inconsistent_geometry_in_the_header() {
    let mut m = meta_of(&image());
    m.chunk_count += 1;
    assert!(m.check().unwrap_err().contains("cannot hold"));
    m = meta_of(&image());
    m.chunk_size = 1000;
    assert!(m.check().unwrap_err().contains("multiple of 64 KiB"));
}
