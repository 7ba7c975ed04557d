use super::*;
use ic_stable_structures::DefaultMemoryImpl;
use serde_bytes::ByteBuf;

const MIB: usize = MAX_UPLOAD_CHUNK_BYTES;

fn versions() -> Versions<DefaultMemoryImpl> {
    Versions::init(&Memories::init(DefaultMemoryImpl::default()))
}

fn admin() -> Principal {
    Principal::from_slice(&[7; 29])
}

fn module(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn begin(
    v: &mut Versions<DefaultMemoryImpl>,
    id: u64,
    label: &str,
    bytes: &[u8],
) -> UploadProgress {
    let req = BeginUploadRequest {
        label: label.into(),
        sha256: Hash256::of(bytes),
        size: bytes.len() as u64,
    };
    v.begin(id, &req, admin(), 5).expect("begin")
}

fn send(v: &mut Versions<DefaultMemoryImpl>, id: u64, bytes: &[u8], chunk: usize) {
    let mut offset = 0;
    for part in bytes.chunks(chunk) {
        let p = v
            .append(&UploadChunkRequest {
                upload_id: id,
                offset,
                bytes: ByteBuf::from(part.to_vec()),
            })
            .expect("append");
        offset += part.len() as u64;
        assert_eq!(p.received, offset);
    }
}

/// Reads a version back from its chunks.
fn read_back(v: &Versions<DefaultMemoryImpl>, version: &VersionRecord) -> Vec<u8> {
    (0..version.chunk_hashes.len() as u32)
        .flat_map(|i| v.chunk(version, i))
        .collect()
}

#[test]
fn should_commit_a_module_sent_in_small_chunks_as_1_mib_pieces() {
    let mut v = versions();
    let bytes = module(2 * MIB + 12_345);
    begin(&mut v, 1, "0.1.0", &bytes);
    send(&mut v, 1, &bytes, 300_000);
    let version = v.commit(1, 9).expect("commit");
    assert_eq!(version.hash, Hash256::of(&bytes));
    assert_eq!(version.size, bytes.len() as u64);
    assert_eq!(version.chunk_hashes.len(), 3);
    for (i, h) in version.chunk_hashes.iter().enumerate() {
        let piece = v.chunk(&version, i as u32);
        assert!(piece.len() <= MIB);
        assert_eq!(*h, Hash256::of(&piece));
    }
    assert_eq!(read_back(&v, &version), bytes);
    assert_eq!(version.uploaded_at_ns, 9);
    assert_eq!(version.uploaded_by, admin());
    assert!(v.uploads().is_empty(), "the upload is gone");
    // Only the version's pieces remain.
    assert_eq!(v.chunks.len(), 3);
}

#[test]
fn should_discard_an_upload_whose_hash_differs_from_the_declared_one() {
    let mut v = versions();
    let bytes = module(1000);
    let req = BeginUploadRequest {
        label: "bad".into(),
        sha256: Hash256::of(b"something else"),
        size: 1000,
    };
    v.begin(1, &req, admin(), 0).unwrap();
    send(&mut v, 1, &bytes, 400);
    assert_eq!(
        v.commit(1, 0),
        Err(FactoryError::HashMismatch {
            declared: Hash256::of(b"something else"),
            computed: Hash256::of(&bytes),
        })
    );
    assert!(v.is_empty());
    assert!(v.uploads().is_empty());
    assert_eq!(v.chunks.len(), 0, "nothing stored");
    assert_eq!(v.commit(1, 0), Err(FactoryError::UploadNotFound(1)));
}

#[test]
fn should_reject_a_chunk_at_the_wrong_offset_and_keep_the_upload() {
    let mut v = versions();
    let bytes = module(3000);
    begin(&mut v, 1, "a", &bytes);
    send(&mut v, 1, &bytes[..1000], 1000);
    let resend = UploadChunkRequest {
        upload_id: 1,
        offset: 0,
        bytes: ByteBuf::from(bytes[..1000].to_vec()),
    };
    assert_eq!(
        v.append(&resend),
        Err(FactoryError::UnexpectedOffset {
            expected: 1000,
            got: 0
        })
    );
    assert_eq!(v.uploads()[0].received, 1000);
}

#[test]
fn should_bound_chunk_sizes_and_the_declared_size() {
    let mut v = versions();
    let bytes = module(MIB + 2);
    begin(&mut v, 1, "a", &bytes);
    let chunk = |offset: u64, len: usize| UploadChunkRequest {
        upload_id: 1,
        offset,
        bytes: ByteBuf::from(vec![1; len]),
    };
    assert!(matches!(
        v.append(&chunk(0, 0)),
        Err(FactoryError::InvalidRequest(_))
    ));
    assert!(matches!(
        v.append(&chunk(0, MIB + 1)),
        Err(FactoryError::InvalidRequest(_))
    ));
    v.append(&chunk(0, MIB)).expect("exactly 1 MiB");
    assert!(matches!(
        v.append(&chunk(MIB as u64, 3)),
        Err(FactoryError::InvalidRequest(_))
    ));
    assert_eq!(
        v.commit(1, 0),
        Err(FactoryError::UploadIncomplete {
            received: MIB as u64,
            size: MIB as u64 + 2
        })
    );
    v.append(&chunk(MIB as u64, 2)).expect("the last 2 bytes");
    assert!(matches!(
        v.commit(1, 0),
        Err(FactoryError::HashMismatch { .. })
    ));
    let too_big = BeginUploadRequest {
        label: "huge".into(),
        sha256: Hash256::default(),
        size: MAX_MODULE_BYTES + 1,
    };
    assert!(matches!(
        v.begin(2, &too_big, admin(), 0),
        Err(FactoryError::InvalidRequest(_))
    ));
}

#[test]
fn should_refuse_a_second_version_with_the_same_hash_or_label() {
    let mut v = versions();
    let one = module(500);
    begin(&mut v, 1, "1.0.0", &one);
    send(&mut v, 1, &one, 500);
    let first = v.commit(1, 0).unwrap();
    let dup = BeginUploadRequest {
        label: "other".into(),
        sha256: first.hash,
        size: 500,
    };
    assert_eq!(
        v.begin(2, &dup, admin(), 0),
        Err(FactoryError::VersionExists {
            hash: first.hash,
            label: "1.0.0".into()
        })
    );
    let same_label = BeginUploadRequest {
        label: " 1.0.0 ".into(),
        sha256: Hash256::of(b"x"),
        size: 1,
    };
    assert!(matches!(
        v.begin(3, &same_label, admin(), 0),
        Err(FactoryError::VersionExists { .. })
    ));
    let empty_label = BeginUploadRequest {
        label: "  ".into(),
        ..same_label
    };
    assert!(matches!(
        v.begin(4, &empty_label, admin(), 0),
        Err(FactoryError::InvalidRequest(_))
    ));
}

#[test]
fn should_abort_and_remove_without_leaving_chunks() {
    let mut v = versions();
    let bytes = module(MIB + 10);
    begin(&mut v, 1, "a", &bytes);
    send(&mut v, 1, &bytes, MIB);
    v.abort(1).unwrap();
    assert_eq!(v.chunks.len(), 0);
    assert_eq!(v.abort(1), Err(FactoryError::UploadNotFound(1)));
    begin(&mut v, 2, "a", &bytes);
    send(&mut v, 2, &bytes, 70_000);
    let version = v.commit(2, 0).unwrap();
    assert_eq!(v.list(), vec![version.clone()]);
    v.remove(&version.hash).unwrap();
    assert!(v.is_empty());
    assert_eq!(v.chunks.len(), 0);
    assert_eq!(
        v.remove(&version.hash),
        Err(FactoryError::VersionNotFound(version.hash))
    );
}
