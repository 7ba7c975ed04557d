//! The kit's state machine against a simulated vault, on `VectorMemory`: point-in-time
//! images under concurrent writes, incremental sets, failure, and restore verification.

use std::collections::{BTreeSet, HashMap};

use candid::Principal;
use canvault_protocol::Hash256;
use canvault_protocol::chunk::{self, chunk_count};
use canvault_protocol::kit_api::{
    ArmRestoreRequest, KitError, RestoreBeginRequest, RestoreChunksRequest,
};
use canvault_protocol::merkle::image_root_of_bytes;
use canvault_protocol::vault_api::{ChunkBody, ChunkPut};
use ic_stable_structures::VectorMemory;
use proptest::prelude::*;

use crate::backup::Batch;
use crate::kit::{Kit, WASM_PAGE};

pub(super) const CS: u32 = chunk::MIN_CHUNK_SIZE;

pub(super) fn vault() -> Principal {
    Principal::from_slice(&[7; 10])
}

pub(super) fn kit_with_pages(pages: u64) -> Kit<VectorMemory> {
    let mut k = Kit::load(VectorMemory::default());
    k.update_state(|s| {
        s.config.chunk_size = CS;
        s.known_chunk_size = CS;
    });
    assert_eq!(k.image_grow(pages), 0);
    k
}

/// A vault that stores what it is sent and rebuilds images from digests.
#[derive(Default)]
pub(super) struct SimVault {
    chunks: HashMap<Hash256, Vec<u8>>,
    table: HashMap<u32, Hash256>,
}

impl SimVault {
    pub(super) fn put(&mut self, batch: &Batch) -> Vec<u32> {
        let mut missing = Vec::new();
        for c in &batch.chunks {
            match &c.body {
                ChunkBody::Data { codec, bytes } => {
                    let raw =
                        chunk::open(*codec, bytes, c.len, &c.hash).expect("kit sends valid chunks");
                    self.chunks.insert(c.hash, raw);
                }
                ChunkBody::Known if !self.chunks.contains_key(&c.hash) => {
                    missing.push(c.index);
                    continue;
                }
                ChunkBody::Known => {}
                ChunkBody::Zero => {
                    self.chunks.insert(c.hash, vec![0; c.len as usize]);
                }
            }
            self.table.insert(c.index, c.hash);
        }
        missing
    }

    pub(super) fn image(&self, size: u64) -> Vec<u8> {
        (0..chunk_count(size, CS))
            .flat_map(|i| self.chunks[&self.table[&i]].clone())
            .collect()
    }
}

/// Runs a whole backup, letting `between` write to the app between batches.
pub(super) fn run_backup(
    k: &mut Kit<VectorMemory>,
    v: &mut SimVault,
    mut between: impl FnMut(&mut Kit<VectorMemory>),
) -> u64 {
    let id = k.state().backup.as_ref().map_or(1, |b| b.nonce);
    k.begun(id, k.state().backup.as_ref().and_then(|b| b.parent));
    let mut sent_bytes = 0;
    let mut force = BTreeSet::new();
    while !k.ready_to_commit() {
        // One chunk per batch, so the app's writes land on chunks not yet read.
        let mut budget = 1;
        let batches = k.plan_batches(1, &BTreeSet::new(), &force, || {
            budget -= 1;
            budget >= 0
        });
        assert!(!batches.is_empty(), "progress while chunks remain");
        for b in batches {
            between(k);
            let missing = v.put(&b);
            sent_bytes += b.data_bytes;
            k.acknowledge(&b, &missing);
            force.extend(missing);
        }
    }
    let root = k.frozen_root().expect("backup in progress");
    k.complete(root, 1);
    sent_bytes
}

pub(super) fn write_pattern(k: &mut Kit<VectorMemory>, offset: u64, len: usize, seed: u8) {
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    k.image_write(offset, &bytes);
}

#[test]
fn backup_is_the_image_at_the_freeze_while_the_app_keeps_writing() {
    let mut k = kit_with_pages(8);
    write_pattern(&mut k, 0, 8 * WASM_PAGE as usize, 1);
    let frozen = k.image_bytes();
    k.freeze(vault(), 0).unwrap();
    let mut v = SimVault::default();
    let mut step = 0u8;
    run_backup(&mut k, &mut v, |k| {
        step += 1;
        // Overwrite a chunk not yet sent and one already sent, and grow the image.
        write_pattern(k, u64::from(step % 8) * WASM_PAGE + 100, 5000, 100 + step);
    });
    assert_eq!(v.image(frozen.len() as u64), frozen);
    let last = k.state().last_backup.clone().unwrap();
    assert_eq!(last.root, image_root_of_bytes(&frozen, CS));
}

#[test]
fn incremental_backup_sends_only_written_chunks_and_zero_chunks_never() {
    let mut k = kit_with_pages(16);
    write_pattern(&mut k, 0, 4 * WASM_PAGE as usize, 3); // chunks 4..16 stay zero
    k.freeze(vault(), 0).unwrap();
    let mut v = SimVault::default();
    let full = run_backup(&mut k, &mut v, |_| {});
    assert!(full > 0);
    let data_chunks = k.state().last_backup.as_ref().unwrap().chunks_sent;
    assert_eq!(data_chunks, 4, "zero chunks are never sent with data");

    write_pattern(&mut k, 2 * WASM_PAGE + 10, 20, 9);
    assert_eq!(k.dirty_chunks(), 1);
    k.freeze(vault(), 1).unwrap();
    assert_eq!(k.state().backup.as_ref().unwrap().chunks_total, 1);
    let incremental = run_backup(&mut k, &mut v, |_| {});
    assert!(incremental < full / 3, "{incremental} vs {full}");
    assert_eq!(v.image(16 * WASM_PAGE), k.image_bytes());
}

#[test]
fn a_failed_backup_returns_its_chunks_to_the_dirty_set() {
    let mut k = kit_with_pages(4);
    write_pattern(&mut k, 0, 4 * WASM_PAGE as usize, 5);
    k.freeze(vault(), 0).unwrap();
    let mut v = SimVault::default();
    run_backup(&mut k, &mut v, |_| {});
    write_pattern(&mut k, WASM_PAGE, 10, 6);
    write_pattern(&mut k, 3 * WASM_PAGE, 10, 6);
    k.freeze(vault(), 1).unwrap();
    k.begun(2, Some(1));
    let batches = k.plan_batches(1, &BTreeSet::new(), &BTreeSet::new(), || true);
    k.acknowledge(&batches[0], &[]);
    k.fail("vault gone".into(), 2);
    assert!(k.state().backup.is_none());
    assert_eq!(
        k.state().last_failure.as_ref().unwrap().reason,
        "vault gone"
    );
    assert_eq!(k.dirty_chunks(), 2, "both chunks are sent again next time");
}

#[test]
fn freeze_refuses_a_second_backup_and_an_armed_restore() {
    let mut k = kit_with_pages(1);
    k.freeze(vault(), 0).unwrap();
    assert_eq!(k.freeze(vault(), 0), Err(KitError::BackupInProgress));
    let mut k = kit_with_pages(1);
    k.arm_restore(ArmRestoreRequest {
        vault: vault(),
        snapshot_id: 1,
        expected_root: None,
    })
    .unwrap();
    assert_eq!(k.freeze(vault(), 0), Err(KitError::RestoreInProgress));
}

fn restore_chunks_of(image: &[u8]) -> Vec<ChunkPut> {
    (0u32..)
        .zip(image.chunks(CS as usize))
        .map(|(i, raw)| ChunkPut::with_bytes(i, raw))
        .collect()
}

#[test]
fn restore_switches_only_after_every_chunk_and_the_root_verify() {
    let mut k = kit_with_pages(2);
    write_pattern(&mut k, 0, 2 * WASM_PAGE as usize, 1);
    let live = k.image_bytes();
    let mut source = kit_with_pages(3);
    write_pattern(&mut source, 0, 3 * WASM_PAGE as usize, 42);
    let image = source.image_bytes();
    let root = image_root_of_bytes(&image, CS);
    let other = Principal::from_slice(&[9; 10]);

    let begin = RestoreBeginRequest {
        snapshot_id: 5,
        image_size: image.len() as u64,
        chunk_size: CS,
        root,
    };
    assert_eq!(k.restore_begin(vault(), &begin), Err(KitError::NotArmed));
    k.arm_restore(ArmRestoreRequest {
        vault: vault(),
        snapshot_id: 5,
        expected_root: Some(root),
    })
    .unwrap();
    assert_eq!(
        k.restore_begin(other, &begin),
        Err(KitError::Unauthorized(other))
    );
    k.restore_begin(vault(), &begin).unwrap();

    let mut chunks = restore_chunks_of(&image);
    let mut corrupt = chunks[1].clone();
    if let ChunkBody::Data { bytes, .. } = &mut corrupt.body {
        bytes[0] ^= 0xff;
    }
    let bad = RestoreChunksRequest {
        snapshot_id: 5,
        chunks: vec![chunks[0].clone(), corrupt],
    };
    assert!(matches!(
        k.restore_chunks(vault(), bad),
        Err(KitError::BadChunk { index: 1, .. })
    ));
    assert_eq!(k.staged.len(), 0, "a bad batch stages nothing");

    let last = chunks.pop().unwrap();
    assert_eq!(
        k.restore_chunks(
            vault(),
            RestoreChunksRequest {
                snapshot_id: 5,
                chunks
            }
        ),
        Ok(2)
    );
    assert_eq!(
        k.restore_finish(vault(), 5, 9),
        Err(KitError::Incomplete {
            missing: 1,
            first: 2
        })
    );
    assert_eq!(
        k.image_bytes(),
        live,
        "the live image is untouched until the switch"
    );

    k.restore_chunks(
        vault(),
        RestoreChunksRequest {
            snapshot_id: 5,
            chunks: vec![last],
        },
    )
    .unwrap();
    assert_eq!(k.restore_finish(vault(), 5, 9), Ok(true));
    assert_eq!(k.image_bytes(), image);
    assert_eq!(
        k.restore_finish(vault(), 5, 9),
        Ok(false),
        "a repeated finish is a no-op"
    );
    assert_eq!(
        k.dirty_chunks(),
        0,
        "the restored snapshot is the incremental base"
    );
}

#[test]
fn restore_refuses_a_root_other_than_the_expected_one() {
    let mut k = kit_with_pages(1);
    k.arm_restore(ArmRestoreRequest {
        vault: vault(),
        snapshot_id: 1,
        expected_root: Some(Hash256([1; 32])),
    })
    .unwrap();
    let begin = RestoreBeginRequest {
        snapshot_id: 1,
        image_size: WASM_PAGE,
        chunk_size: CS,
        root: Hash256([2; 32]),
    };
    assert!(matches!(
        k.restore_begin(vault(), &begin),
        Err(KitError::RootMismatch { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn any_interleaving_of_writes_keeps_the_snapshot_point_in_time(
        writes in proptest::collection::vec((0u64..6 * WASM_PAGE, 1usize..3000, any::<u8>()), 1..40),
        grow_at in 0usize..40,
    ) {
        let mut k = kit_with_pages(6);
        write_pattern(&mut k, 0, 6 * WASM_PAGE as usize, 77);
        k.freeze(vault(), 0).unwrap();
        let frozen = k.image_bytes();
        let mut v = SimVault::default();
        let mut n = 0;
        run_backup(&mut k, &mut v, |k| {
            for (off, len, seed) in writes.iter().skip(n).take(3) {
                let len = (*len).min((k.image_pages() * WASM_PAGE - off) as usize);
                write_pattern(k, *off, len, *seed);
            }
            if n == grow_at { k.image_grow(1); }
            n += 3;
        });
        prop_assert_eq!(v.image(frozen.len() as u64), frozen);
    }
}

#[test]
fn a_data_set_backup_sends_only_the_chunks_that_changed_since_its_last_one() {
    let mut k = kit_with_pages(1);
    let user_vault = Principal::from_slice(&[3; 10]);
    let mut data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    k.queue_dataset("alice", user_vault, data.clone()).unwrap();
    assert!(k.start_next_dataset(0));
    let mut v = SimVault::default();
    run_backup(&mut k, &mut v, |_| {});
    let first = k.dataset_info("alice").unwrap().last_backup.unwrap();
    assert_eq!(
        first.root,
        image_root_of_bytes(&data, crate::dataset::DATASET_CHUNK_SIZE)
    );
    assert_eq!(first.chunks_sent, 4);
    assert!(
        k.state().last_backup.is_none(),
        "a data set is not the app image"
    );

    data[70_000] ^= 1; // one byte in chunk 1
    k.queue_dataset("alice", user_vault, data.clone()).unwrap();
    assert!(k.start_next_dataset(1));
    assert_eq!(k.state().backup.as_ref().unwrap().chunks_total, 1);
    k.begun(2, Some(first.snapshot_id));
    run_backup(&mut k, &mut v, |_| {});
    let second = k.dataset_info("alice").unwrap().last_backup.unwrap();
    assert_eq!(second.chunks_sent, 1);
    assert_eq!(
        second.root,
        image_root_of_bytes(&data, crate::dataset::DATASET_CHUNK_SIZE)
    );
}

#[test]
fn zero_chunks_overwrite_an_older_image_left_in_the_staging_memory() {
    let mut k = kit_with_pages(1);
    let restore = |k: &mut Kit<VectorMemory>, id: u64, image: &[u8]| {
        let root = image_root_of_bytes(image, CS);
        k.arm_restore(ArmRestoreRequest {
            vault: vault(),
            snapshot_id: id,
            expected_root: None,
        })
        .unwrap();
        let begin = RestoreBeginRequest {
            snapshot_id: id,
            image_size: image.len() as u64,
            chunk_size: CS,
            root,
        };
        k.restore_begin(vault(), &begin).unwrap();
        let chunks = restore_chunks_of(image);
        k.restore_chunks(
            vault(),
            RestoreChunksRequest {
                snapshot_id: id,
                chunks,
            },
        )
        .unwrap();
        assert_eq!(k.restore_finish(vault(), id, 1), Ok(true));
    };
    let full: Vec<u8> = (0..3 * WASM_PAGE as usize)
        .map(|i| (i % 250) as u8 + 1)
        .collect();
    restore(&mut k, 1, &full); // now image B is live, image A holds the 1-page original
    restore(&mut k, 2, &full); // image A is live again, B is stale with `full`
    let mut sparse = vec![0u8; 3 * WASM_PAGE as usize];
    sparse[WASM_PAGE as usize + 5] = 9;
    restore(&mut k, 3, &sparse); // lands on B, which still holds `full`
    assert_eq!(k.image_bytes(), sparse);
}

/// Restores `image` as snapshot `id` into `k` in one batch.
fn restore_whole(k: &mut Kit<VectorMemory>, id: u64, image: &[u8]) {
    let root = image_root_of_bytes(image, CS);
    k.arm_restore(ArmRestoreRequest {
        vault: vault(),
        snapshot_id: id,
        expected_root: Some(root),
    })
    .unwrap();
    let begin = RestoreBeginRequest {
        snapshot_id: id,
        image_size: image.len() as u64,
        chunk_size: CS,
        root,
    };
    k.restore_begin(vault(), &begin).unwrap();
    let chunks = restore_chunks_of(image);
    k.restore_chunks(
        vault(),
        RestoreChunksRequest {
            snapshot_id: id,
            chunks,
        },
    )
    .unwrap();
    assert_eq!(k.restore_finish(vault(), id, 1), Ok(true));
}

#[test]
fn the_swapped_digest_tables_survive_a_reload_in_both_directions() {
    let raw = VectorMemory::default();
    let mut k = Kit::load(raw.clone());
    k.update_state(|s| s.config.chunk_size = CS);
    for (id, seed) in [(3u64, 5u8), (4, 6)] {
        let mut source = kit_with_pages(3);
        write_pattern(&mut source, 0, 2 * WASM_PAGE as usize, seed);
        let image = source.image_bytes();
        restore_whole(&mut k, id, &image);
        drop(k);
        k = Kit::load(raw.clone()); // as after an upgrade
        assert_eq!(k.image_bytes(), image);
        let known: Vec<(u32, [u8; 32])> = k.known.iter().map(|e| e.into_pair()).collect();
        let expected: Vec<(u32, [u8; 32])> = (0u32..)
            .zip(image.chunks(CS as usize))
            .map(|(i, c)| (i, chunk::chunk_hash(c).0))
            .collect();
        assert_eq!(
            known, expected,
            "restore {id}: the known digests are the snapshot's"
        );
        assert_eq!(k.staged.len(), 0, "the staging table starts empty");
        // The restored snapshot is the base: a backup with no writes sends nothing.
        k.freeze(vault(), 2).unwrap();
        assert_eq!(k.state().backup.as_ref().unwrap().parent, Some(id));
        assert_eq!(k.send.count(), 0);
        k.fail("test".into(), 3);
    }
}
