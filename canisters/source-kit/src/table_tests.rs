//! Table work under a budget: the root walk, the merge into the known table and the
//! restore's root walk span calls and reloads and give the one-shot results; failing
//! and freezing use the frozen bitmap; an old doubled chunk size leads to a full backup.

use std::collections::BTreeSet;

use canvault_protocol::chunk::{self, chunk_count};
use canvault_protocol::kit_api::{ArmRestoreRequest, RestoreBeginRequest, RestoreChunksRequest};
use canvault_protocol::merkle::image_root_of_bytes;
use canvault_protocol::vault_api::ChunkPut;
use ic_stable_structures::VectorMemory;

use crate::kit::{Kit, WASM_PAGE};
use crate::tests::{CS, SimVault, kit_with_pages, run_backup, vault, write_pattern};

/// A closure that says yes `n` times.
fn budget(mut n: u32) -> impl FnMut() -> bool {
    move || {
        let more = n > 0;
        n = n.saturating_sub(1);
        more
    }
}

/// Sends every chunk of the backup in progress (no commit).
fn send_all(k: &mut Kit<VectorMemory>, v: &mut SimVault) {
    k.begun(1, k.state().backup.as_ref().and_then(|b| b.parent));
    let mut force = BTreeSet::new();
    while !k.ready_to_commit() {
        for b in k.plan_batches(4, &BTreeSet::new(), &force, || true) {
            let missing = v.put(&b);
            k.acknowledge(&b, &missing);
            force.extend(missing);
        }
    }
}

#[test]
fn a_known_table_of_a_doubled_chunk_size_makes_the_next_backup_full_at_the_configured_size() {
    let mut k = kit_with_pages(8);
    write_pattern(&mut k, 0, 8 * WASM_PAGE as usize, 3);
    k.freeze(vault(), 0).unwrap();
    run_backup(&mut k, &mut SimVault::default(), |_| {});
    // As a kit that doubled the chunk size for its last backup left it.
    k.update_state(|s| s.known_chunk_size = 2 * CS);
    k.freeze(vault(), 1).unwrap();
    let b = k.state().backup.clone().unwrap();
    assert_eq!(b.parent, None, "another chunk size: a full backup");
    assert_eq!(b.chunk_size, CS);
    assert_eq!(b.chunks_total, 8);
    assert_eq!(k.state().known_chunk_size, CS);
    let mut v = SimVault::default();
    let image = k.image_bytes();
    run_backup(&mut k, &mut v, |_| {});
    assert_eq!(v.image(image.len() as u64), image);
}

#[test]
fn the_root_walk_spans_calls_and_reloads_and_gives_the_image_root() {
    let raw = VectorMemory::default();
    let mut k = Kit::load(raw.clone());
    k.update_state(|s| {
        s.config.chunk_size = CS;
        s.known_chunk_size = CS;
    });
    k.image_grow(10);
    write_pattern(&mut k, 0, 10 * WASM_PAGE as usize, 1);
    k.freeze(vault(), 0).unwrap();
    let mut v = SimVault::default();
    run_backup(&mut k, &mut v, |_| {});
    // An incremental: three chunks from the pending table, seven from the known one.
    for i in [0u64, 4, 9] {
        write_pattern(&mut k, i * WASM_PAGE + 7, 10, 50);
    }
    let image = k.image_bytes();
    k.freeze(vault(), 1).unwrap();
    send_all(&mut k, &mut v);
    let mut calls = 0;
    let root = loop {
        calls += 1;
        if let Some(root) = k.advance_root(budget(3)) {
            break root;
        }
        k = Kit::load(raw.clone()); // progress is in stable memory
    };
    assert_eq!(calls, 4, "3 + 3 + 3 + 1 chunks");
    assert_eq!(root, image_root_of_bytes(&image, CS));
}

#[test]
fn completion_spans_calls_cannot_fail_and_leaves_a_correct_known_base() {
    let raw = VectorMemory::default();
    let mut k = Kit::load(raw.clone());
    k.update_state(|s| {
        s.config.chunk_size = CS;
        s.known_chunk_size = CS;
    });
    k.image_grow(12);
    write_pattern(&mut k, 0, 12 * WASM_PAGE as usize, 9);
    k.freeze(vault(), 0).unwrap();
    let mut v = SimVault::default();
    send_all(&mut k, &mut v);
    let root = k.frozen_root().unwrap();
    k.committed(root);
    assert!(!k.advance_complete(5, budget(5)));
    assert_eq!(k.known.len(), 5, "five steps merged five digests");
    assert_eq!(
        k.fail("late".into(), 6),
        None,
        "a committed backup cannot fail"
    );
    assert!(k.completing());
    k = Kit::load(raw.clone());
    while !k.advance_complete(7, budget(4)) {}
    assert_eq!(k.state().last_backup.as_ref().unwrap().root, root);
    assert!(k.state().backup.is_none());
    assert_eq!(k.pending.len(), 0);
    assert_eq!(k.frozen.count(), 0);
    let image = k.image_bytes();
    let expected: Vec<[u8; 32]> = image
        .chunks(CS as usize)
        .map(|c| chunk::chunk_hash(c).0)
        .collect();
    assert_eq!(
        k.known.iter().map(|e| e.value()).collect::<Vec<_>>(),
        expected
    );
    // The next backup builds on that base.
    write_pattern(&mut k, 3 * WASM_PAGE, 100, 77);
    k.freeze(vault(), 8).unwrap();
    assert_eq!(k.state().backup.as_ref().unwrap().chunks_total, 1);
    run_backup(&mut k, &mut v, |_| {});
    assert_eq!(v.image(image.len() as u64), k.image_bytes());
}

#[test]
fn a_shrunk_image_drops_the_known_digests_beyond_it_in_steps() {
    let mut k = kit_with_pages(6);
    write_pattern(&mut k, 0, 6 * WASM_PAGE as usize, 2);
    k.freeze(vault(), 0).unwrap();
    run_backup(&mut k, &mut SimVault::default(), |_| {});
    k.update_state(|s| s.image_pages = 4);
    write_pattern(&mut k, 0, 10, 4);
    k.freeze(vault(), 1).unwrap();
    let mut v = SimVault::default();
    send_all(&mut k, &mut v);
    let root = k.frozen_root().unwrap();
    k.committed(root);
    // One merge step, then two removals, then the end.
    assert!(!k.advance_complete(2, budget(2)));
    assert_eq!(k.known.len(), 5);
    assert!(k.advance_complete(2, budget(2)));
    assert_eq!(k.known.len(), 4);
    assert_eq!(
        u64::from(chunk_count(4 * WASM_PAGE, CS)),
        k.known.len(),
        "one digest per chunk of the shrunk image"
    );
}

#[test]
fn a_failure_marks_every_frozen_chunk_dirty_also_after_a_reload_of_an_older_layout() {
    for older_layout in [false, true] {
        let raw = VectorMemory::default();
        let mut k = Kit::load(raw.clone());
        k.update_state(|s| {
            s.config.chunk_size = CS;
            s.known_chunk_size = CS;
        });
        k.image_grow(8);
        write_pattern(&mut k, 0, 8 * WASM_PAGE as usize, 1);
        k.freeze(vault(), 0).unwrap();
        run_backup(&mut k, &mut SimVault::default(), |_| {});
        for i in [1u64, 3, 6] {
            write_pattern(&mut k, i * WASM_PAGE, 10, 5);
        }
        k.freeze(vault(), 1).unwrap();
        k.begun(2, Some(1));
        let batches = k.plan_batches(1, &BTreeSet::new(), &BTreeSet::new(), budget(1));
        assert_eq!(batches[0].chunks[0].index, 1);
        k.acknowledge(&batches[0], &[]);
        if older_layout {
            // Kits before the frozen bitmap: it is rebuilt from the to-send bitmap and
            // the pending table when the kit loads.
            k.frozen.clear_all();
            k = Kit::load(raw.clone());
        }
        write_pattern(&mut k, 7 * WASM_PAGE, 10, 6);
        assert!(k.fail("test".into(), 2).is_some());
        let dirty: Vec<u32> = k.dirty.iter_from(0).collect();
        assert_eq!(dirty, vec![1, 3, 6, 7], "older layout: {older_layout}");
        assert_eq!(k.frozen.count(), 0);
    }
}

#[test]
fn planning_skips_chunks_in_flight_and_reads_only_what_it_plans() {
    let mut k = kit_with_pages(8);
    write_pattern(&mut k, 0, 8 * WASM_PAGE as usize, 1);
    k.freeze(vault(), 0).unwrap();
    k.begun(1, None);
    let in_flight: BTreeSet<u32> = [0, 1, 2, 5].into();
    let mut asked = 0;
    let batches = k.plan_batches(8, &in_flight, &BTreeSet::new(), || {
        asked += 1;
        asked <= 2
    });
    let planned: Vec<u32> = batches
        .iter()
        .flat_map(|b| b.chunks.iter().map(|c| c.index))
        .collect();
    assert_eq!(planned, vec![3, 4]);
    assert_eq!(asked, 3, "asked once per planned chunk and once more");
}

#[test]
fn the_restore_root_walk_follows_the_contiguous_chunks_and_finish_only_ends_it() {
    let mut source = kit_with_pages(6);
    write_pattern(&mut source, 0, 6 * WASM_PAGE as usize, 8);
    let image = source.image_bytes();
    let root = image_root_of_bytes(&image, CS);
    let raw = VectorMemory::default();
    let mut k = Kit::load(raw.clone());
    k.arm_restore(ArmRestoreRequest {
        vault: vault(),
        snapshot_id: 4,
        expected_root: Some(root),
    })
    .unwrap();
    let begin = RestoreBeginRequest {
        snapshot_id: 4,
        image_size: image.len() as u64,
        chunk_size: CS,
        root,
    };
    k.restore_begin(vault(), &begin).unwrap();
    let walked = |k: &Kit<VectorMemory>| {
        k.state()
            .restore
            .as_ref()
            .and_then(|r| r.root_walk.as_ref())
            .map_or(0, |w| w.pushed)
    };
    let chunks: Vec<ChunkPut> = (0u32..)
        .zip(image.chunks(CS as usize))
        .map(|(i, raw)| ChunkPut::with_bytes(i, raw))
        .collect();
    let push = |k: &mut Kit<VectorMemory>, idx: &[usize]| {
        k.restore_chunks(
            vault(),
            RestoreChunksRequest {
                snapshot_id: 4,
                chunks: idx.iter().map(|i| chunks[*i].clone()).collect(),
            },
        )
        .unwrap();
    };
    push(&mut k, &[2, 3]);
    assert_eq!(walked(&k), 0, "chunk 0 is missing: nothing to walk");
    push(&mut k, &[0, 1]);
    assert_eq!(walked(&k), 4, "the gap closed: the walk caught up");
    k = Kit::load(raw.clone());
    assert_eq!(
        k.restore_finish(vault(), 4, 1),
        Err(canvault_protocol::kit_api::KitError::Incomplete {
            missing: 2,
            first: 4
        })
    );
    push(&mut k, &[4, 5]);
    assert_eq!(walked(&k), 6);
    assert_eq!(k.restore_finish(vault(), 4, 1), Ok(true));
    assert_eq!(k.image_bytes(), image);
}

#[test]
fn the_known_digest_set_is_built_a_step_per_call_and_the_own_digest_needs_none() {
    use canvault_protocol::Hash256;

    use crate::kit::KNOWN_SET_STEP;
    use crate::state::Target;
    let mut k = kit_with_pages(1);
    let n = u32::try_from(KNOWN_SET_STEP).unwrap() + 100;
    let digest = |i: u32| Hash256::of(&i.to_le_bytes());
    for i in 0..n {
        k.known.insert(i, digest(i).0);
    }
    let last = digest(n - 1);
    assert!(k.vault_knows(Target::Image, n - 1, &last), "its own digest");
    assert!(!k.vault_knows(Target::Image, 0, &last), "no set built yet");
    k.advance_known_set(Target::Image);
    assert!(k.vault_knows(Target::Image, 0, &digest(5)));
    assert!(
        !k.vault_knows(Target::Image, 0, &last),
        "beyond the first step"
    );
    k.advance_known_set(Target::Image);
    assert!(k.vault_knows(Target::Image, 0, &last));
    assert!(!k.vault_knows(Target::Image, 0, &digest(n)));
    k.invalidate_known_set();
    assert!(!k.vault_knows(Target::Image, 0, &last));
}
