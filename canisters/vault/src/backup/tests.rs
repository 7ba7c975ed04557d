//! The backup protocol on `VectorMemory`: verification, idempotency, dedup, and the
//! all-or-nothing rule, with the reference counts checked after every scenario.

use std::collections::BTreeMap;

use candid::Principal;
use canvault_protocol::chunk::chunk_count;
use canvault_protocol::merkle::image_root_of_bytes;
use canvault_protocol::vault_api::{RoleChange, StartRestoreRequest, VaultInit};
use ic_stable_structures::VectorMemory;
use serde_bytes::ByteBuf;

use super::*;
use crate::roles::Caller;

pub(crate) const CS: u32 = 64 * 1024;

/// A budget that never runs out.
pub(crate) fn unlimited() -> bool {
    true
}

pub(crate) fn owner() -> Caller {
    Caller {
        principal: Principal::from_slice(&[1; 10]),
        is_owner: true,
    }
}

pub(crate) fn writer(n: u8) -> Caller {
    Caller {
        principal: Principal::from_slice(&[10 + n; 10]),
        is_owner: false,
    }
}

pub(crate) fn vault() -> Vault<VectorMemory> {
    let mut v = Vault::init(VectorMemory::default());
    let init = VaultInit {
        writers: vec![writer(0).principal, writer(1).principal],
        ..VaultInit::default()
    };
    v.configure(&init, Some(owner().principal));
    v
}

/// An image of `chunks` chunks: chunk i is filled from `seed + i`, except multiples of
/// 3, which are zero. The last chunk is half a chunk long.
pub(crate) fn image(chunks: u32, seed: u8) -> Vec<u8> {
    let size = (chunks as usize - 1) * CS as usize + CS as usize / 2;
    let mut img = vec![0u8; size];
    for (i, part) in img.chunks_mut(CS as usize).enumerate() {
        if i % 3 != 0 {
            let fill = seed.wrapping_add(i as u8);
            for (j, b) in part.iter_mut().enumerate() {
                *b = fill ^ (j % 7) as u8;
            }
        }
    }
    img
}

pub(crate) fn put(img: &[u8], index: u32) -> ChunkPut {
    let raw = &img[(index * CS) as usize..((index + 1) * CS).min(img.len() as u32) as usize];
    ChunkPut::with_bytes(index, raw)
}

pub(crate) fn begin(
    v: &mut Vault<VectorMemory>,
    who: Caller,
    img: &[u8],
    nonce: u64,
    parent: Option<u64>,
) -> u64 {
    let req = BeginSnapshotRequest {
        parent,
        image_size: img.len() as u64,
        chunk_size: CS,
        nonce,
        label: None,
        source: None,
    };
    v.begin_snapshot(who, req, None, 1, &unlimited)
        .expect("begin")
        .snapshot_id
}

pub(crate) fn send(
    v: &mut Vault<VectorMemory>,
    who: Caller,
    id: u64,
    chunks: Vec<ChunkPut>,
) -> Result<PutChunksResponse, VaultError> {
    v.put_chunks(
        who,
        &PutChunksRequest {
            snapshot_id: id,
            chunks,
        },
        2,
    )
}

pub(crate) fn commit(
    v: &mut Vault<VectorMemory>,
    who: Caller,
    id: u64,
    img: &[u8],
) -> Result<SnapshotInfo, VaultError> {
    let root = image_root_of_bytes(img, CS);
    v.commit_snapshot(
        who,
        &CommitSnapshotRequest {
            snapshot_id: id,
            root,
        },
        3,
        &unlimited,
    )
}

/// Backs up a whole image in batches of 16 chunks and commits it.
pub(crate) fn backup(v: &mut Vault<VectorMemory>, who: Caller, img: &[u8], nonce: u64) -> u64 {
    let id = begin(v, who, img, nonce, None);
    let n = chunk_count(img.len() as u64, CS);
    for start in (0..n).step_by(16) {
        send(
            v,
            who,
            id,
            (start..n.min(start + 16)).map(|i| put(img, i)).collect(),
        )
        .expect("put");
    }
    commit(v, who, id, img).expect("commit");
    id
}

/// Everything a rejected request must leave untouched.
type Fingerprint = (
    Vec<SnapshotInfo>,
    Vec<((u64, u32), TableEntry)>,
    Vec<(Hash256, u64)>,
    u64,
    u64,
);

pub(crate) fn fingerprint(v: &Vault<VectorMemory>) -> Fingerprint {
    (
        v.list_snapshots(None),
        v.catalogue.all_entries().collect(),
        v.store.refcounts(),
        v.store.encoded_bytes(),
        v.store.blocks_in_use(),
    )
}

/// Reference counts equal the number of non-zero table entries per hash.
pub(crate) fn assert_refcounts(v: &Vault<VectorMemory>) {
    let mut expected: BTreeMap<Hash256, u64> = BTreeMap::new();
    for (_, e) in v.catalogue.all_entries() {
        if !e.zero {
            *expected.entry(e.hash).or_default() += 1;
        }
    }
    assert_eq!(
        v.store.refcounts(),
        expected.into_iter().collect::<Vec<_>>()
    );
}

#[test]
fn should_complete_a_snapshot_and_store_each_distinct_chunk_once() {
    let mut v = vault();
    let img = image(7, 1);
    let id = backup(&mut v, writer(0), &img, 1);
    let info = v.get_snapshot(id).expect("listed");
    assert_eq!(info.state, SnapshotState::Complete);
    assert_eq!(info.root, Some(image_root_of_bytes(&img, CS)));
    assert_eq!(info.chunk_count, 7);
    // Chunks 0, 3, 6 are zero: 4 stored.
    assert_eq!(v.store.len(), 4);
    assert_eq!(info.new_bytes, v.store.encoded_bytes());
    assert_refcounts(&v);
    // A second source with the same image adds references, not bytes.
    let bytes = v.store.encoded_bytes();
    backup(&mut v, writer(1), &img, 1);
    assert_eq!((v.store.len(), v.store.encoded_bytes()), (4, bytes));
    assert_refcounts(&v);
}

#[test]
fn should_reject_a_bad_batch_entirely() {
    let mut v = vault();
    let img = image(4, 2);
    let id = begin(&mut v, writer(0), &img, 1, None);
    let before = fingerprint(&v);
    let mut bad = put(&img, 2);
    bad.hash = Hash256([9; 32]);
    let err = send(&mut v, writer(0), id, vec![put(&img, 1), bad]).expect_err("hash mismatch");
    assert!(
        matches!(err, VaultError::BadChunk { index: 2, .. }),
        "{err:?}"
    );
    assert_eq!(
        fingerprint(&v),
        before,
        "a bad chunk anywhere in a batch changes nothing"
    );
}

#[test]
fn should_refuse_oversize_encodings_and_wrong_lengths() {
    let mut v = vault();
    let img = image(4, 3);
    let id = begin(&mut v, writer(0), &img, 1, None);
    let before = fingerprint(&v);
    let mut long = put(&img, 1);
    long.body = ChunkBody::Data {
        codec: Codec::Deflate,
        bytes: ByteBuf::from(vec![0u8; CS as usize + 1]),
    };
    let mut short = put(&img, 1);
    short.len = CS - 1;
    let last = put(&img, 3);
    let mut out_of_range = last.clone();
    out_of_range.index = 4;
    for chunk in [long, short, out_of_range] {
        let index = chunk.index;
        let err = send(&mut v, writer(0), id, vec![chunk]).expect_err("rejected");
        assert!(
            matches!(err, VaultError::BadChunk { index: i, .. } if i == index),
            "{err:?}"
        );
    }
    assert_eq!(fingerprint(&v), before);
}

#[test]
fn should_treat_resends_as_no_ops_and_conflicts_as_errors() {
    let mut v = vault();
    let img = image(4, 4);
    let id = begin(&mut v, writer(0), &img, 1, None);
    assert_eq!(
        begin(&mut v, writer(0), &img, 1, None),
        id,
        "same nonce, same snapshot"
    );
    send(&mut v, writer(0), id, vec![put(&img, 1)]).expect("first");
    let once = fingerprint(&v);
    let again = send(&mut v, writer(0), id, vec![put(&img, 1), put(&img, 1)]).expect("re-send");
    assert_eq!(again.recorded, 2);
    assert_eq!(fingerprint(&v).1, once.1);
    let other = put(&image(4, 99), 1);
    let sent = other.hash;
    let err = send(&mut v, writer(0), id, vec![other]).expect_err("conflict");
    assert_eq!(
        err,
        VaultError::ConflictingChunk {
            index: 1,
            recorded: put(&img, 1).hash,
            sent
        }
    );
    let mut other_size = img.clone();
    other_size.push(1);
    let err = v
        .begin_snapshot(
            writer(0),
            BeginSnapshotRequest {
                parent: None,
                image_size: other_size.len() as u64,
                chunk_size: CS,
                nonce: 1,
                label: None,
                source: None,
            },
            None,
            5,
            &unlimited,
        )
        .expect_err("nonce reused with another size");
    assert!(matches!(err, VaultError::InvalidRequest(_)));
}

#[test]
fn should_keep_a_snapshot_in_progress_until_complete_and_correct() {
    let mut v = vault();
    let img = image(5, 5);
    let id = begin(&mut v, writer(0), &img, 1, None);
    send(&mut v, writer(0), id, vec![put(&img, 0), put(&img, 2)]).expect("put");
    assert_eq!(
        commit(&mut v, writer(0), id, &img),
        Err(VaultError::MissingChunks {
            missing: 3,
            first: 1
        })
    );
    send(
        &mut v,
        writer(0),
        id,
        (0..5).map(|i| put(&img, i)).collect(),
    )
    .expect("rest");
    let wrong = Hash256([1; 32]);
    let err = v
        .commit_snapshot(
            writer(0),
            &CommitSnapshotRequest {
                snapshot_id: id,
                root: wrong,
            },
            4,
            &unlimited,
        )
        .expect_err("wrong root");
    assert!(matches!(err, VaultError::RootMismatch { sent, .. } if sent == wrong));
    assert_eq!(
        v.get_snapshot(id).map(|i| i.state),
        Ok(SnapshotState::InProgress)
    );
    let info = commit(&mut v, writer(0), id, &img).expect("commit");
    assert_eq!(
        commit(&mut v, writer(0), id, &img),
        Ok(info),
        "idempotent commit"
    );
    let err = send(&mut v, writer(0), id, vec![put(&img, 1)]).expect_err("complete");
    assert!(matches!(err, VaultError::WrongState { .. }));
}

#[test]
fn should_inherit_the_parent_table_and_report_unknown_hashes() {
    let mut v = vault();
    let img = image(6, 6);
    let parent = backup(&mut v, writer(0), &img, 1);
    let mut next = img.clone();
    next[(4 * CS) as usize] ^= 0xff;
    let resp = v
        .begin_snapshot(
            writer(0),
            BeginSnapshotRequest {
                parent: Some(parent),
                image_size: next.len() as u64,
                chunk_size: CS,
                nonce: 2,
                label: None,
                source: None,
            },
            None,
            5,
            &unlimited,
        )
        .expect("begin");
    assert_eq!(resp.parent, Some(parent));
    let mut known = put(&next, 4);
    known.body = ChunkBody::Known;
    let r = send(&mut v, writer(0), resp.snapshot_id, vec![known]).expect("known");
    assert_eq!((r.recorded, r.missing), (0, vec![4]));
    send(&mut v, writer(0), resp.snapshot_id, vec![put(&next, 4)]).expect("data");
    commit(&mut v, writer(0), resp.snapshot_id, &next).expect("commit");
    assert_refcounts(&v);
    v.delete_snapshot(parent, &unlimited)
        .expect("delete parent");
    assert_refcounts(&v);
    let chunk = v
        .get_chunk(&put(&next, 1).hash)
        .expect("still referenced by the child");
    assert_eq!(chunk.hash, put(&next, 1).hash);
    assert!(
        v.get_chunk(&put(&img, 4).hash).is_err(),
        "the replaced chunk went with the parent"
    );
}

#[test]
fn should_only_let_sources_write_their_own_snapshots() {
    let mut v = vault();
    let img = image(2, 7);
    let id = begin(&mut v, writer(0), &img, 1, None);
    let err = send(&mut v, writer(1), id, vec![put(&img, 1)]).expect_err("not theirs");
    assert_eq!(
        err,
        VaultError::NotYourSnapshot {
            id,
            owner: writer(0).principal
        }
    );
    send(&mut v, owner(), id, vec![put(&img, 1)]).expect("owners write anywhere");
    let req = BeginSnapshotRequest {
        parent: None,
        image_size: 1,
        chunk_size: CS,
        nonce: 9,
        label: None,
        source: Some(writer(1).principal),
    };
    assert!(matches!(
        v.begin_snapshot(writer(0), req.clone(), None, 1, &unlimited),
        Err(VaultError::InvalidRequest(_))
    ));
    let upload = v
        .begin_snapshot(owner(), req, None, 1, &unlimited)
        .expect("owners upload for a source");
    assert_eq!(
        v.get_snapshot(upload.snapshot_id).map(|i| i.source),
        Ok(writer(1).principal)
    );
}

#[test]
fn should_collect_unreferenced_chunks_and_keep_pinned_snapshots() {
    let mut v = vault();
    v.set_retention(canvault_protocol::vault_api::RetentionPolicy {
        keep_last: 1,
        keep_daily: 0,
        keep_weekly: 0,
    });
    let ids: Vec<u64> = (0..3)
        .map(|n| backup(&mut v, writer(0), &image(4, 10 * n as u8), n))
        .collect();
    let job = v
        .start_restore(
            &StartRestoreRequest {
                snapshot_id: ids[0],
                target: writer(1).principal,
            },
            5,
        )
        .expect("start");
    assert_eq!(
        v.delete_snapshot(ids[0], &unlimited),
        Err(VaultError::InUse(ids[0]))
    );
    assert_eq!(
        v.apply_retention(10, &unlimited).deleted,
        vec![ids[1]],
        "pinned by the restore job"
    );
    assert_refcounts(&v);
    assert!(v.get_chunk(&put(&image(4, 10), 1).hash).is_err());
    v.jobs.map.remove(&job.id);
    assert_eq!(v.apply_retention(10, &unlimited).deleted, vec![ids[0]]);
    assert_refcounts(&v);
    assert_eq!(v.store.len(), 2, "only the newest snapshot's chunks remain");
    let update = [RoleChange {
        principal: owner().principal,
        role: canvault_protocol::vault_api::Role::Owner,
        grant: false,
    }];
    assert!(v.update_roles(&update).is_err(), "the last owner stays");
}

/// A budget allowing `n` more checks (one per table entry of work).
pub(crate) fn steps(n: u32) -> impl Fn() -> bool {
    let left = std::cell::Cell::new(n);
    move || {
        let l = left.get().saturating_sub(1);
        left.set(l);
        l > 0
    }
}

#[test]
fn should_spread_large_deletions_over_passes() {
    let mut v = vault();
    v.set_retention(canvault_protocol::vault_api::RetentionPolicy {
        keep_last: 1,
        keep_daily: 0,
        keep_weekly: 0,
    });
    let ids: Vec<u64> = (0..4)
        .map(|n| backup(&mut v, writer(0), &image(5, 20 * n as u8), n))
        .collect();
    let pass = v.apply_retention(10, &steps(7));
    assert_eq!(
        (pass.deleted, pass.more),
        (vec![ids[0], ids[1], ids[2]], true),
        "all three leave the catalogue at once; 15 entries do not fit in 7 steps"
    );
    assert_eq!(v.list_snapshots(None).len(), 1);
    assert_eq!(v.catalogue.doomed_count(), 2);
    assert_refcounts(&v);
    assert!(!v.collect(&steps(7)), "work left");
    assert!(v.collect(&steps(10)));
    assert_eq!(v.catalogue.doomed_count(), 0);
    assert_refcounts(&v);
    assert_eq!(v.store.len(), 3, "the kept snapshot's 3 non-zero chunks");
}
