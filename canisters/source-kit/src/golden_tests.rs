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
