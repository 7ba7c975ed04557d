//! Budgeted table work on `VectorMemory`: copies, commit walks and the batch that
//! replaces the last reference to a chunk it names as `Known`.

use canvault_protocol::merkle::image_root_of_bytes;
use canvault_protocol::vault_api::{
    BeginSnapshotRequest, ChunkBody, CommitSnapshotRequest, SnapshotInfo, SnapshotState, VaultError,
};
use ic_stable_structures::VectorMemory;

use crate::backup::tests::{
    CS, assert_refcounts, backup, begin, image, put, send, steps, unlimited, vault, writer,
};
use crate::backup::{MAX_IMAGE_SIZE, MAX_SNAPSHOT_CHUNKS};
use crate::vault::Vault;

fn commit_within(
    v: &mut Vault<VectorMemory>,
    id: u64,
    img: &[u8],
    n: u32,
) -> Result<SnapshotInfo, VaultError> {
    let req = CommitSnapshotRequest {
        snapshot_id: id,
        root: image_root_of_bytes(img, CS),
    };
    v.commit_snapshot(writer(0), &req, 3, &steps(n))
}

/// Commits within `n` steps per call until the answer is not `InUse`; also returns the
/// number of calls.
fn commit_until_done(
    v: &mut Vault<VectorMemory>,
    id: u64,
    img: &[u8],
    n: u32,
) -> (Result<SnapshotInfo, VaultError>, u32) {
    let mut calls = 0;
    loop {
        calls += 1;
        match commit_within(v, id, img, n) {
            Err(VaultError::InUse(_)) => assert!(calls < 1_000, "no progress"),
            other => return (other, calls),
        }
    }
}

#[test]
fn should_spread_a_commit_walk_over_calls_and_restart_it_after_a_put() {
    let mut v = vault();
    let img = image(40, 1);
    let id = begin(&mut v, writer(0), &img, 1, None);
    send(
        &mut v,
        writer(0),
        id,
        (0..40).map(|i| put(&img, i)).collect(),
    )
    .expect("put");
    assert_eq!(
        commit_within(&mut v, id, &img, 15),
        Err(VaultError::InUse(id))
    );
    send(&mut v, writer(0), id, vec![put(&img, 3)]).expect("a re-send");
    let (info, calls) = commit_until_done(&mut v, id, &img, 15);
    let info = info.expect("complete");
    assert_eq!(
        calls, 3,
        "the re-send restarted the walk: 40 entries, 15 per call"
    );
    assert_eq!(info.state, SnapshotState::Complete);
    assert_eq!(info.root, Some(image_root_of_bytes(&img, CS)));
}

#[test]
fn should_count_every_missing_chunk_across_a_resumed_walk() {
    let mut v = vault();
    let img = image(30, 2);
    let id = begin(&mut v, writer(0), &img, 1, None);
    let sent: Vec<u32> = (0..30).filter(|i| i % 4 != 1).collect();
    send(
        &mut v,
        writer(0),
        id,
        sent.iter().map(|i| put(&img, *i)).collect(),
    )
    .expect("put");
    let (got, calls) = commit_until_done(&mut v, id, &img, 5);
    assert!(calls > 1);
    assert_eq!(
        got,
        Err(VaultError::MissingChunks {
            missing: 30 - sent.len() as u32,
            first: 1
        })
    );
}

#[test]
fn should_copy_a_parent_table_in_steps_and_pin_the_parent_meanwhile() {
    let mut v = vault();
    let img = image(20, 3);
    let parent = backup(&mut v, writer(0), &img, 1);
    let mut next = img.clone();
    next[(4 * CS) as usize] ^= 0xff;
    let req = BeginSnapshotRequest {
        parent: Some(parent),
        image_size: next.len() as u64,
        chunk_size: CS,
        nonce: 2,
        label: None,
        source: None,
    };
    let child = v
        .begin_snapshot(writer(0), req, None, 5, &steps(3))
        .expect("begin")
        .snapshot_id;
    assert!(v.catalogue.inheriting(child));
    assert_eq!(
        v.delete_snapshot(parent, &unlimited),
        Err(VaultError::InUse(parent))
    );
    assert!(v.pinned(5).contains(&parent));
    send(&mut v, writer(0), child, vec![put(&next, 4)]).expect("a changed chunk");
    assert_refcounts(&v);
    let (info, calls) = commit_until_done(&mut v, child, &next, 4);
    assert!(calls > 2);
    assert_eq!(
        info.expect("complete").root,
        Some(image_root_of_bytes(&next, CS))
    );
    assert!(!v.catalogue.inheriting(child));
    assert_eq!(v.catalogue.entry(child, 4).map(|e| e.set_here), Some(true));
    assert_refcounts(&v);
    v.delete_snapshot(parent, &unlimited).expect("unpinned");
    assert_refcounts(&v);
}

/// L3: a batch names chunk `h` as `Known` at one index and replaces the last other
/// reference to `h` at another; the release comes after the addition.
#[test]
fn should_keep_a_known_chunk_whose_last_reference_the_same_batch_replaces() {
    let mut v = vault();
    let img = image(4, 4);
    let parent = backup(&mut v, writer(0), &img, 1);
    let req = BeginSnapshotRequest {
        parent: Some(parent),
        image_size: img.len() as u64,
        chunk_size: CS,
        nonce: 2,
        label: None,
        source: None,
    };
    let child = v
        .begin_snapshot(writer(0), req, None, 5, &unlimited)
        .expect("begin")
        .snapshot_id;
    v.delete_snapshot(parent, &unlimited).expect("delete");
    let h = put(&img, 1).hash;
    assert_eq!(
        v.store.meta(&h).map(|m| m.refs),
        Some(1),
        "the child's only"
    );
    let mut known = put(&img, 1);
    known.index = 2;
    known.body = ChunkBody::Known;
    let replace = put(&image(4, 77), 1);
    let r = send(&mut v, writer(0), child, vec![replace, known]).expect("no trap");
    assert_eq!((r.recorded, r.missing), (2, vec![]));
    assert_eq!(
        v.store.meta(&h).map(|m| m.refs),
        Some(1),
        "now held by index 2"
    );
    assert_refcounts(&v);
}

#[test]
fn should_refuse_a_geometry_beyond_the_chunk_cap() {
    let mut v = vault();
    let req = |image_size| BeginSnapshotRequest {
        parent: None,
        image_size,
        chunk_size: CS,
        nonce: image_size,
        label: None,
        source: None,
    };
    let over = u64::from(MAX_SNAPSHOT_CHUNKS) * u64::from(CS) + 1;
    assert!(over < MAX_IMAGE_SIZE);
    let err = v.begin_snapshot(writer(0), req(over), None, 1, &unlimited);
    assert!(matches!(err, Err(VaultError::InvalidRequest(m)) if m.contains("chunks")));
    v.begin_snapshot(writer(0), req(over - 1), None, 1, &unlimited)
        .expect("at the cap");
}
