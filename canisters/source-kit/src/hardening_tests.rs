//! Regression tests of the security review's kit findings, on `VectorMemory`: one body
//! per staged index (H1), staging that grows only with content and a per-batch decoded
//! cap (M6), a retried finish after a backup (L5), the state cell's checksum and the
//! generation-2 migration (#17), and the data-set queue's caps (H4).

use candid::{Encode, Principal};
use canvault_protocol::chunk::{self, MAX_BATCH_DECODED_BYTES};
use canvault_protocol::kit_api::{
    ArmRestoreRequest, KitError, RestoreBeginRequest, RestoreChunksRequest,
};
use canvault_protocol::merkle::image_root_of_bytes;
use canvault_protocol::vault_api::ChunkPut;
use ic_stable_structures::{Memory, VectorMemory};

use crate::dataset::{DATASET_YIELD_AFTER_NS, MAX_DATASET_BACKUP_NS, MAX_QUEUED_DATASET_JOBS};
use crate::kit::Kit;
use crate::state::{KitState, STATE_VERSION};

const CS: u32 = chunk::MIN_CHUNK_SIZE;

fn vault() -> Principal {
    Principal::from_slice(&[7; 10])
}

fn armed(expected_root: Option<canvault_protocol::Hash256>) -> Kit<VectorMemory> {
    let mut k = Kit::load(VectorMemory::default());
    k.arm_restore(ArmRestoreRequest {
        vault: vault(),
        snapshot_id: 1,
        expected_root,
    })
    .unwrap();
    k
}

fn begin(k: &mut Kit<VectorMemory>, image: &[u8]) {
    let req = RestoreBeginRequest {
        snapshot_id: 1,
        image_size: image.len() as u64,
        chunk_size: CS,
        root: image_root_of_bytes(image, CS),
    };
    k.restore_begin(vault(), &req).unwrap();
}

fn push(k: &mut Kit<VectorMemory>, chunks: Vec<ChunkPut>) -> Result<u32, KitError> {
    k.restore_chunks(
        vault(),
        RestoreChunksRequest {
            snapshot_id: 1,
            chunks,
        },
    )
}

/// Four chunks; chunk 2 is zero.
fn image() -> Vec<u8> {
    let mut image: Vec<u8> = (0..4 * CS).map(|i| (i % 251) as u8 + 1).collect();
    image[2 * CS as usize..3 * CS as usize].fill(0);
    image
}

fn puts(image: &[u8]) -> Vec<ChunkPut> {
    (0u32..)
        .zip(image.chunks(CS as usize))
        .map(|(i, raw)| ChunkPut::with_bytes(i, raw))
        .collect()
}

#[test]
fn a_staged_index_holds_one_body() {
    let image = image();
    let mut k = armed(Some(image_root_of_bytes(&image, CS)));
    begin(&mut k, &image);
    let all = puts(&image);
    let evil = ChunkPut::with_bytes(2, &vec![0x66; CS as usize]);
    push(&mut k, vec![evil.clone()]).unwrap();
    let r = push(&mut k, vec![all[2].clone()]);
    assert!(
        matches!(r, Err(KitError::BadChunk { index: 2, .. })),
        "{r:?}"
    );
    // Within one batch too (a fresh restore).
    let mut k = armed(Some(image_root_of_bytes(&image, CS)));
    begin(&mut k, &image);
    let r = push(&mut k, vec![evil, all[2].clone()]);
    assert!(
        matches!(r, Err(KitError::BadChunk { index: 2, .. })),
        "{r:?}"
    );
    assert_eq!(k.staged.len(), 0, "nothing of a refused batch is staged");
    // The same body twice is an idempotent repeat.
    push(&mut k, all.clone()).unwrap();
    push(&mut k, all).unwrap();
    assert_eq!(k.restore_finish(vault(), 1, 5), Ok(true));
    assert_eq!(k.image_bytes(), image);
}

#[test]
fn staging_grows_with_content_only_and_batches_are_capped() {
    let mut k = armed(None);
    let req = RestoreBeginRequest {
        snapshot_id: 1,
        image_size: 4 << 30,
        chunk_size: CS,
        root: canvault_protocol::Hash256([3; 32]),
    };
    k.restore_begin(vault(), &req).unwrap();
    assert_eq!(k.staging().size(), 0, "an announcement costs no memory");
    let far = ChunkPut::with_bytes(40_000, &vec![9; CS as usize]);
    push(&mut k, vec![far]).unwrap();
    assert_eq!(
        k.staging().size(),
        40_001,
        "grown up to the chunk that arrived"
    );
    let zeros: Vec<ChunkPut> = (0..=u32::try_from(MAX_BATCH_DECODED_BYTES / u64::from(CS))
        .unwrap())
        .map(|i| ChunkPut::with_bytes(i, &vec![0; CS as usize]))
        .collect();
    assert!(matches!(
        push(&mut k, zeros),
        Err(KitError::InvalidRequest(_))
    ));
    let too_big = RestoreBeginRequest {
        image_size: 1 << 40,
        ..req
    };
    assert!(matches!(
        k.restore_begin(vault(), &too_big),
        Err(KitError::InvalidRequest(_))
    ));
    // An expected root fixes the size: no cap applies.
    let mut k = armed(Some(canvault_protocol::Hash256([3; 32])));
    k.restore_begin(vault(), &too_big).unwrap();
}

#[test]
fn a_retried_finish_after_a_backup_is_answered_as_done() {
    let image = image();
    let mut k = armed(Some(image_root_of_bytes(&image, CS)));
    begin(&mut k, &image);
    push(&mut k, puts(&image)).unwrap();
    assert_eq!(k.restore_finish(vault(), 1, 5), Ok(true));
    // A backup to another vault replaces `last_backup`.
    let other = Principal::from_slice(&[8; 10]);
    k.freeze(other, 6).unwrap();
    k.begun(9, None);
    while !k.ready_to_commit() {
        for b in k.plan_batches(4, &Default::default(), &Default::default(), || true) {
            k.acknowledge(&b, &[]);
        }
    }
    let root = k.frozen_root().unwrap();
    k.complete(root, 7);
    assert_eq!(k.state().last_backup.as_ref().unwrap().vault, other);
    assert_eq!(
        k.restore_finish(vault(), 1, 8),
        Ok(false),
        "already applied"
    );
    assert_eq!(k.state().restores_completed, 1);
    assert_eq!(
        k.restore_finish(other, 1, 8),
        Err(KitError::NotArmed),
        "only for the vault that pushed it"
    );
}

#[test]
fn generation_2_state_loads_and_is_migrated() {
    #[derive(candid::CandidType)]
    struct ConfigV2 {
        vault: Option<Principal>,
        admins: Vec<Principal>,
        interval_seconds: u64,
        chunk_size: u32,
        window: u32,
    }
    #[derive(candid::CandidType)]
    struct StateV2 {
        version: u32,
        config: ConfigV2,
        active_image: u8,
        image_pages: u64,
        known_table: u8,
        known_chunk_size: u32,
        last_backup: Option<canvault_protocol::kit_api::LastBackup>,
        last_failure: Option<canvault_protocol::kit_api::FailedBackup>,
        backup: Option<crate::state::Backup>,
        restore: Option<crate::state::Restore>,
        backups_completed: u64,
        restores_completed: u64,
        next_nonce: u64,
    }
    let v2 = StateV2 {
        version: 2,
        config: ConfigV2 {
            vault: Some(vault()),
            admins: vec![],
            interval_seconds: 60,
            chunk_size: CS,
            window: 4,
        },
        active_image: 1,
        image_pages: 3,
        known_table: 1,
        known_chunk_size: CS,
        last_backup: None,
        last_failure: None,
        backup: None,
        restore: None,
        backups_completed: 4,
        restores_completed: 1,
        next_nonce: 9,
    };
    let state = KitState::decode(&Encode!(&v2).unwrap()).unwrap();
    assert_eq!(state.version, STATE_VERSION);
    assert_eq!(state.config.vault, Some(vault()));
    assert_eq!(state.image_pages, 3);
    assert_eq!(state.next_nonce, 9);
    assert_eq!(state.last_restore, None);
    assert_eq!(KitState::decode(&state.encode()).unwrap(), state);
}

#[test]
fn a_state_cell_that_does_not_match_its_checksum_is_refused() {
    let s = KitState::default();
    let mut bytes = s.encode();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert!(KitState::decode(&bytes).unwrap_err().contains("checksum"));
    assert!(KitState::decode(b"garbage").is_err());
}

#[test]
#[should_panic(expected = "refusing to load stable memory")]
fn a_kit_does_not_load_over_a_clobbered_header() {
    let raw = VectorMemory::default();
    let mut k = Kit::load(raw.clone());
    k.image_grow(1);
    k.image_write(0, b"app data");
    drop(k);
    raw.write(0, &[0xAB; 64]);
    let _ = Kit::load(raw);
}

#[test]
fn a_kit_reports_raw_growth_behind_its_back() {
    let raw = VectorMemory::default();
    let mut k = Kit::load(raw.clone());
    k.image_grow(1);
    assert!(k.foreign_stable_memory().is_none());
    raw.grow(2);
    let f = k.foreign_stable_memory().expect("reported");
    assert!(f.to_string().contains("grown"), "{f}");
}

#[test]
fn the_data_set_queue_is_capped_and_coalesced_per_data_set() {
    let mut k = Kit::load(VectorMemory::default());
    let image_vault = vault();
    k.update_state(|s| s.config.vault = Some(image_vault));
    let personal = |n: u8| Principal::from_slice(&[n, 1, 2]);
    assert!(matches!(
        k.queue_dataset("alice", image_vault, vec![1]),
        Err(KitError::InvalidRequest(_))
    ));
    assert!(
        k.queue_dataset(&"x".repeat(200), personal(1), vec![1])
            .is_err()
    );
    for _ in 0..5 {
        k.queue_dataset("alice", personal(1), vec![1, 2, 3])
            .unwrap();
    }
    assert_eq!(k.queued_datasets(), 1, "one queued job per data set");
    assert_eq!(k.dataset_info("alice").unwrap().queued, 1);
    for n in 1..MAX_QUEUED_DATASET_JOBS {
        k.queue_dataset(&format!("user{n}"), personal(2), vec![0])
            .unwrap();
    }
    assert_eq!(
        k.queue_dataset("one too many", personal(3), vec![0]),
        Err(KitError::QueueFull {
            queued: u32::try_from(MAX_QUEUED_DATASET_JOBS).unwrap()
        })
    );
    // A data set already queued may still be refreshed.
    k.queue_dataset("alice", personal(1), vec![4]).unwrap();
}

#[test]
fn a_data_set_backup_gives_way_to_a_waiting_image_backup() {
    let mut k = Kit::load(VectorMemory::default());
    k.queue_dataset("alice", Principal::from_slice(&[1, 2]), vec![5; 10])
        .unwrap();
    assert!(k.start_next_dataset(0));
    let label = k.begin_request().unwrap().label;
    assert_eq!(label.as_deref(), Some("dataset:alice"));
    assert_eq!(k.dataset_backup_expired(DATASET_YIELD_AFTER_NS), None);
    k.update_state(|s| s.image_backup_requested_at_ns = Some(1));
    assert!(
        k.dataset_backup_expired(DATASET_YIELD_AFTER_NS - 1)
            .is_none()
    );
    assert!(k.dataset_backup_expired(DATASET_YIELD_AFTER_NS).is_some());
    k.update_state(|s| s.image_backup_requested_at_ns = None);
    assert!(k.dataset_backup_expired(MAX_DATASET_BACKUP_NS).is_some());
}

#[test]
fn a_preempted_data_set_is_queued_again_unless_newer_content_supersedes_it() {
    let mut k = Kit::load(VectorMemory::default());
    let vault = Principal::from_slice(&[1, 2]);
    k.queue_dataset("alice", vault, vec![5; 10]).unwrap();
    assert!(k.start_next_dataset(0));
    k.begun(7, None);
    let preempted = k.preempt_dataset_backup().expect("a data set ran");
    assert_eq!(preempted.vault_snapshot, Some((vault, 7)));
    assert!(k.state().backup.is_none());
    assert_eq!(k.queued_datasets(), 1);
    assert_eq!(k.dataset_info("alice").unwrap().queued, 1);
    assert!(k.start_next_dataset(0), "the requeued job runs again");
    assert_eq!(k.state().backup.as_ref().unwrap().image_size, 10);
    // Newer content queued while it ran replaces the preempted bytes.
    k.queue_dataset("alice", vault, vec![6; 20]).unwrap();
    assert_eq!(
        k.preempt_dataset_backup().map(|p| p.vault_snapshot),
        Some(None)
    );
    assert_eq!(k.queued_datasets(), 1);
    assert!(k.start_next_dataset(0));
    assert_eq!(k.state().backup.as_ref().unwrap().image_size, 20);
    // An image backup is not a data set: nothing to preempt.
    assert!(k.preempt_dataset_backup().is_some());
    k.freeze(Principal::from_slice(&[9]), 0).unwrap();
    assert_eq!(k.preempt_dataset_backup(), None);
    assert!(k.state().backup.is_some(), "the image backup stays");
}
