//! The restore state machine and batch planning, without a target.

use canvault_protocol::chunk::chunk_count;
use canvault_protocol::merkle::image_root_of_bytes;
use ic_stable_structures::VectorMemory;

use super::*;
use crate::backup::tests::{CS, backup, image, vault, writer};

/// Incompressible chunks (xorshift), so batches fill by size.
fn noise(chunks: u32) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..chunks as usize * CS as usize)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn start(v: &mut Vault<VectorMemory>, snapshot_id: u64) -> u64 {
    let req = StartRestoreRequest {
        snapshot_id,
        target: writer(1).principal,
    };
    v.start_restore(&req, 0).expect("start").id
}

fn state(v: &Vault<VectorMemory>, job: u64) -> RestoreJobState {
    v.restore_status(job).expect("job").state
}

#[test]
fn should_walk_begin_push_finish_and_unpin() {
    let mut v = vault();
    let img = noise(70);
    let snap = backup(&mut v, writer(0), &img, 1);
    let job = start(&mut v, snap);
    assert_eq!(v.pinned(0), BTreeSet::from([snap]));

    let Some((target, Step::Begin(req))) = v.restore_step(job, 4) else {
        panic!("begin first")
    };
    assert_eq!(target, writer(1).principal);
    assert_eq!(
        (req.image_size, req.chunk_size, req.root),
        (img.len() as u64, CS, image_root_of_bytes(&img, CS))
    );
    assert_eq!(
        v.restore_record(job, Outcome::Acked, 1),
        Some(Duration::ZERO)
    );

    let mut next = 0;
    while let Some((_, Step::Push(batches))) = v.restore_step(job, 2) {
        assert!(!batches.is_empty() && batches.len() <= 2);
        let mut expected = next;
        for b in &batches {
            let cost: usize = b
                .request
                .chunks
                .iter()
                .map(|c| match &c.body {
                    ChunkBody::Data { bytes, .. } => bytes.len() + ENTRY_OVERHEAD_BYTES,
                    _ => ENTRY_OVERHEAD_BYTES,
                })
                .sum();
            assert!(cost <= MAX_BATCH_PAYLOAD_BYTES, "batch of {cost} bytes");
            for c in &b.request.chunks {
                assert_eq!(c.index, expected);
                let raw = &img[(c.index * CS) as usize..((c.index + 1) * CS) as usize];
                assert_eq!(c.hash, canvault_protocol::chunk::chunk_hash(raw));
                expected += 1;
            }
            assert_eq!(b.end, expected);
        }
        next = batches.last().map(|b| b.end).expect("non-empty");
        let bytes = batches.iter().map(|b| b.bytes).sum();
        v.restore_record(
            job,
            Outcome::Pushed {
                next_index: next,
                bytes,
                error: None,
            },
            2,
        );
    }
    assert_eq!(next, chunk_count(img.len() as u64, CS));
    assert_eq!(state(&v, job), RestoreJobState::Finishing);
    assert_eq!(
        v.restore_status(job).map(|j| j.bytes_sent),
        Ok(img.len() as u64)
    );
    assert_eq!(
        v.restore_step(job, 4).map(|s| s.1),
        Some(Step::Finish(snap))
    );
    assert_eq!(v.restore_record(job, Outcome::Acked, 3), None);
    assert_eq!(state(&v, job), RestoreJobState::Done);
    assert!(v.pinned(0).is_empty());
    assert_eq!(v.restore_step(job, 4), None);
}

#[test]
fn should_send_zero_chunks_without_bytes() {
    let mut v = vault();
    let img = image(4, 3);
    let snap = backup(&mut v, writer(0), &img, 1);
    let job = start(&mut v, snap);
    v.restore_record(job, Outcome::Acked, 1);
    let Some((_, Step::Push(batches))) = v.restore_step(job, 4) else {
        panic!("push")
    };
    let bodies: Vec<bool> = batches[0]
        .request
        .chunks
        .iter()
        .map(|c| c.body == ChunkBody::Zero)
        .collect();
    assert_eq!(bodies, vec![true, false, false, true]);
}

#[test]
fn should_advance_past_acknowledged_batches_only_and_back_off() {
    let mut v = vault();
    let snap = backup(&mut v, writer(0), &noise(80), 1);
    let job = start(&mut v, snap);
    v.restore_record(job, Outcome::Acked, 1);
    let retry = || Some(Failure::Retry("stopped".into()));
    let outcome = Outcome::Pushed {
        next_index: 20,
        bytes: 7,
        error: retry(),
    };
    assert_eq!(
        v.restore_record(job, outcome, 2),
        Some(Duration::from_secs(1))
    );
    assert_eq!(state(&v, job), RestoreJobState::Pushing { next_index: 20 });
    let delays: Vec<Option<Duration>> = (0..MAX_RETRIES)
        .map(|_| v.restore_record(job, Outcome::Failed(Failure::Retry("stopped".into())), 3))
        .collect();
    assert_eq!(delays[0], Some(Duration::from_secs(2)));
    assert_eq!(delays[5], Some(Duration::from_secs(60)));
    assert_eq!(delays[MAX_RETRIES as usize - 2], Some(MAX_BACKOFF));
    assert_eq!(
        delays[MAX_RETRIES as usize - 1],
        None,
        "gives up after MAX_RETRIES in a row"
    );
    let j = v.restore_status(job).expect("job");
    assert!(matches!(&j.state, RestoreJobState::Failed { reason } if reason.contains("stopped")));
    assert_eq!((j.retries, j.bytes_sent), (MAX_RETRIES + 1, 7));
}

#[test]
fn should_fail_at_once_on_a_permanent_error() {
    let mut v = vault();
    let snap = backup(&mut v, writer(0), &image(3, 1), 1);
    let job = start(&mut v, snap);
    let refused = Failure::Permanent("no restore is armed".into());
    assert_eq!(v.restore_record(job, Outcome::Failed(refused), 1), None);
    assert_eq!(
        state(&v, job),
        RestoreJobState::Failed {
            reason: "no restore is armed".into()
        }
    );
    v.delete_snapshot(snap, &crate::backup::tests::unlimited)
        .expect("unpinned");
}

#[test]
fn should_refuse_a_second_job_into_the_same_target() {
    let mut v = vault();
    let snap = backup(&mut v, writer(0), &image(3, 1), 1);
    start(&mut v, snap);
    let req = StartRestoreRequest {
        snapshot_id: snap,
        target: writer(1).principal,
    };
    assert!(matches!(
        v.start_restore(&req, 0),
        Err(VaultError::InvalidRequest(_))
    ));
}

#[test]
fn should_classify_rejects() {
    for code in [2, 5, 6] {
        assert!(matches!(Failure::from_reject(code, "x"), Failure::Retry(_)));
    }
    for code in [1, 3, 4] {
        assert!(matches!(
            Failure::from_reject(code, "x"),
            Failure::Permanent(_)
        ));
    }
    let delays: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
    assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60]);
}

/// Chunks that compress to almost nothing (one byte set in each) still make bounded
/// batches: the receiving kit decodes at most `MAX_BATCH_DECODED_BYTES` per message.
#[test]
fn should_bound_the_decoded_bytes_of_each_batch() {
    let mut v = vault();
    let chunks = 600u32;
    let mut img = vec![0u8; chunks as usize * CS as usize];
    for i in 0..chunks as usize {
        img[i * CS as usize + 7] = 1;
    }
    let snap = backup(&mut v, writer(0), &img, 1);
    let job = start(&mut v, snap);
    assert!(matches!(v.restore_step(job, 4), Some((_, Step::Begin(_)))));
    v.restore_record(job, Outcome::Acked, 1);
    let Some((_, Step::Push(batches))) = v.restore_step(job, 64) else {
        panic!("push after begin")
    };
    let decoded: Vec<u64> = batches
        .iter()
        .map(|b| b.request.chunks.iter().map(|c| u64::from(c.len)).sum())
        .collect();
    assert!(
        decoded.iter().all(|d| *d <= MAX_BATCH_DECODED_BYTES),
        "{decoded:?}"
    );
    let payload = batches.iter().map(|b| b.bytes).sum::<u64>()
        + u64::from(chunks) * ENTRY_OVERHEAD_BYTES as u64;
    assert!(
        payload < MAX_BATCH_PAYLOAD_BYTES as u64,
        "the payload budget alone would have sent them in one batch: {payload}"
    );
    assert_eq!(
        batches.len(),
        (chunks * CS).div_ceil(MAX_BATCH_DECODED_BYTES as u32) as usize
    );
}
