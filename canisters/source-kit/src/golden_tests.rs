//! The kit's persistent layout, byte for byte: a fixed history (an image written, a
//! full backup acknowledged and completed, more writes, a second backup frozen half way
//! with copy-on-write pages preserved, a data set queued) is replayed on a
//! `VectorMemory`, and the raw stable memory must equal `golden/kit-layout.bin.gz`.
//!
//! A difference means the layout changed. Then: bump the state generation, write the
//! migration from the old layout (`tests/tests/upgrade_from_previous.rs` runs it on the
//! previous module's memory), and regenerate with
//! `CANVAULT_UPDATE_GOLDEN=1 cargo test -p canvault-kit golden`.

use std::collections::BTreeSet;

use candid::Principal;
use canvault_protocol::chunk;
use canvault_protocol::golden::assert_golden;
use ic_stable_structures::{Memory, VectorMemory};

use crate::kit::Kit;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/kit-layout.bin.gz");

/// Acknowledges up to `max` chunks of the backup in progress, as a vault that holds
/// nothing yet would.
fn send(k: &mut Kit<VectorMemory>, max: usize) {
    let none = BTreeSet::new();
    for b in k.plan_batches(max, &none, &none, || true) {
        k.acknowledge(&b, &[]);
    }
}

/// The fixed history; returns the raw memory.
fn replay() -> Vec<u8> {
    let memory = VectorMemory::default();
    let mut k = Kit::load(memory.clone());
    let vault = Principal::from_slice(&[7; 10]);
    k.update_state(|s| {
        s.config.chunk_size = chunk::MIN_CHUNK_SIZE;
        s.known_chunk_size = chunk::MIN_CHUNK_SIZE;
        s.config.vault = Some(vault);
    });
    assert_eq!(k.image_grow(3), 0);
    for (i, offset) in (0..3 * 65_536).step_by(5_000).enumerate() {
        k.image_write(offset, &[i as u8 + 1; 700]);
    }
    k.freeze(vault, 1_000).expect("freeze");
    k.begun(1, None);
    while !k.ready_to_commit() {
        send(&mut k, 4);
    }
    let root = k.frozen_root().expect("in progress");
    k.complete(root, 2_000);
    k.image_write(70_000, b"written after the first backup");
    k.freeze(vault, 3_000).expect("freeze");
    k.begun(2, Some(1));
    send(&mut k, 1);
    // A write to a chunk not yet sent preserves its frozen content first.
    k.image_write(150_000, b"copy-on-write");
    k.queue_dataset("alice", Principal::from_slice(&[9; 10]), vec![5; 3_000])
        .expect("queue");
    let mut raw = vec![0; usize::try_from(memory.size() * 65_536).expect("fits")];
    memory.read(0, &mut raw);
    raw
}

#[test]
fn the_persistent_layout_matches_the_golden_file() {
    assert_golden(
        GOLDEN,
        &replay(),
        "the kit's stable layout",
        "bump the state generation and add the migration (see golden_tests.rs)",
    );
}

#[test]
fn the_replay_is_deterministic() {
    assert!(replay() == replay());
}

/// The layout of state generation 3 (the golden file before generation 4), with a
/// backup in progress: it loads through the migration, and the backup both fails and
/// completes correctly (its frozen bitmap rebuilt from the pending table).
#[test]
fn the_generation_3_layout_loads_and_its_backup_in_progress_goes_on() {
    let old = canvault_protocol::golden::read_golden(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/golden/kit-layout-gen3.bin.gz"
    ));
    let load = || {
        let memory = VectorMemory::default();
        memory.grow((old.len() as u64).div_ceil(65_536));
        memory.write(0, &old);
        Kit::load(memory)
    };
    let mut k = load();
    assert_eq!(k.state().version, crate::state::STATE_VERSION);
    assert_eq!(k.frozen.iter_from(0).collect::<Vec<_>>(), vec![1]);
    assert!(k.fail("after the upgrade".into(), 4_000).is_some());
    assert_eq!(k.dirty.iter_from(0).collect::<Vec<_>>(), vec![1, 2]);

    let mut k = load();
    assert!(k.ready_to_commit());
    let root = k.frozen_root().expect("in progress");
    k.complete(root, 4_000);
    // Chunk 2 was written after the freeze, and not in the backup: its known digest.
    let image = k.image_bytes();
    let old_chunk_2 = k.known.get(&2).expect("chunk 2 known");
    let expected = canvault_protocol::merkle::image_root(
        image.len() as u64,
        chunk::MIN_CHUNK_SIZE,
        image
            .chunks(chunk::MIN_CHUNK_SIZE as usize)
            .enumerate()
            .map(|(i, c)| {
                if i == 2 {
                    canvault_protocol::Hash256(old_chunk_2)
                } else {
                    chunk::chunk_hash(c)
                }
            }),
    );
    assert_eq!(root, expected);
    assert_eq!(k.state().last_backup.as_ref().map(|l| l.root), Some(root));
}
