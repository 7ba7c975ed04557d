//! A lying "vault" against the kit's restore endpoints, on real wasm: the admin armed a
//! principal (here an ingress sender standing in for a vault canister) and that
//! principal tries to switch the app to bytes nobody verified, or to make the app
//! spend memory before any content arrives. The live image may only change through a
//! verified restore.

use candid::Principal;
use canvault_kit::{ArmRestoreRequest, KitError, RestoreBeginRequest, RestoreChunksRequest};
use canvault_protocol::chunk::{self, MAX_BATCH_DECODED_BYTES, MIN_CHUNK_SIZE};
use canvault_protocol::merkle::image_root_of_bytes;
use canvault_protocol::vault_api::{ChunkBody, ChunkPut};
use canvault_scenarios::app::AppScenario;

const MIB: u64 = 1024 * 1024;
const CS: u32 = MIN_CHUNK_SIZE;
const SNAPSHOT: u64 = 7;

fn arm(s: &mut AppScenario, app: Principal, fake: Principal, expected_root: Option<[u8; 32]>) {
    let req = ArmRestoreRequest {
        vault: fake,
        snapshot_id: SNAPSHOT,
        expected_root: expected_root.map(canvault_protocol::Hash256),
    };
    let (r,): (Result<(), KitError>,) =
        s.ic.update_candid(app, s.admin, "canvault_arm_restore", (req,))
            .unwrap();
    r.unwrap();
}

fn begin(
    s: &mut AppScenario,
    app: Principal,
    fake: Principal,
    image: &[u8],
) -> Result<(), KitError> {
    let req = RestoreBeginRequest {
        snapshot_id: SNAPSHOT,
        image_size: image.len() as u64,
        chunk_size: CS,
        root: image_root_of_bytes(image, CS),
    };
    let (r,): (Result<(), KitError>,) =
        s.ic.update_candid(app, fake, "canvault_restore_begin", (req,))
            .unwrap();
    r
}

fn push(
    s: &mut AppScenario,
    app: Principal,
    fake: Principal,
    chunks: Vec<ChunkPut>,
) -> Result<u32, KitError> {
    let req = RestoreChunksRequest {
        snapshot_id: SNAPSHOT,
        chunks,
    };
    let (r,): (Result<u32, KitError>,) =
        s.ic.update_candid(app, fake, "canvault_restore_chunks", (req,))
            .unwrap();
    r
}

fn finish(s: &mut AppScenario, app: Principal, fake: Principal) -> Result<(), KitError> {
    let (r,): (Result<(), KitError>,) =
        s.ic.update_candid(app, fake, "canvault_restore_finish", (SNAPSHOT,))
            .unwrap();
    r
}

/// A real app image (posts) followed by reserved, all-zero space, and the index of
/// one of its zero chunks.
fn image_with_a_zero_chunk(s: &mut AppScenario) -> (Vec<u8>, u32) {
    s.fill(s.app, MIB, 3);
    let (r,): (Result<canvault_scenarios::app::AppStats, candid::Reserved>,) =
        s.ic.update_candid(s.app, s.admin, "reserve_to", (2 * MIB,))
            .unwrap();
    r.unwrap();
    let image = s.app_image(s.app);
    let zero = (0u32..)
        .zip(image.chunks(CS as usize))
        .filter(|(_, c)| chunk::is_zero(c))
        .map(|(i, _)| i)
        .last()
        .expect("the reserved space has zero chunks");
    (image, zero)
}

/// Any valid frame of other bytes than the image holds at `index`.
fn evil_chunk(index: u32) -> ChunkPut {
    ChunkPut::with_bytes(index, &vec![0x66; CS as usize])
}

/// Sends every chunk of `image` except `skip`, a few per call.
fn push_all_but(s: &mut AppScenario, app: Principal, fake: Principal, image: &[u8], skip: u32) {
    let chunks: Vec<ChunkPut> = (0u32..)
        .zip(image.chunks(CS as usize))
        .filter(|(i, _)| *i != skip)
        .map(|(i, raw)| ChunkPut::with_bytes(i, raw))
        .collect();
    for batch in chunks.chunks(4) {
        push(s, app, fake, batch.to_vec()).unwrap();
    }
}

/// H1: chunk i sent as `Data` (any valid frame), then again as `Zero`: the zero digest
/// must not replace the staged one while the evil bytes stay in staging.
#[test]
fn kit_a_data_then_zero_resend_cannot_switch_the_app_to_unverified_bytes() {
    for same_batch in [false, true] {
        let mut s = AppScenario::new();
        let (image, zero) = image_with_a_zero_chunk(&mut s);
        let app = s.fresh_app_elsewhere();
        let live = s.app_image(app);
        let fake = canvault_scenarios::principal("a vault that lies");
        arm(&mut s, app, fake, Some(image_root_of_bytes(&image, CS).0));
        begin(&mut s, app, fake, &image).unwrap();
        push_all_but(&mut s, app, fake, &image, zero);
        let zero_put = ChunkPut::with_bytes(zero, &vec![0; CS as usize]);
        assert!(matches!(zero_put.body, ChunkBody::Zero));
        let resend = if same_batch {
            push(&mut s, app, fake, vec![evil_chunk(zero), zero_put])
        } else {
            push(&mut s, app, fake, vec![evil_chunk(zero)]).unwrap();
            push(&mut s, app, fake, vec![zero_put])
        };
        assert!(
            matches!(resend, Err(KitError::BadChunk { index, .. }) if index == zero),
            "same batch {same_batch}: a second body for a staged index is refused: {resend:?}"
        );
        let finished = finish(&mut s, app, fake);
        assert!(finished.is_err(), "same batch {same_batch}: {finished:?}");
        assert_eq!(s.app_image(app), live, "the live image is untouched");
        assert_eq!(s.kit_status(app).restores_completed, 0);
    }
}

/// The same re-send with the same body is an idempotent repeat, and the restore completes.
#[test]
fn kit_resending_the_same_chunk_is_idempotent() {
    let mut s = AppScenario::new();
    let (image, zero) = image_with_a_zero_chunk(&mut s);
    let app = s.fresh_app_elsewhere();
    let fake = canvault_scenarios::principal("an honest pusher");
    arm(&mut s, app, fake, Some(image_root_of_bytes(&image, CS).0));
    begin(&mut s, app, fake, &image).unwrap();
    push_all_but(&mut s, app, fake, &image, zero);
    let zero_put = ChunkPut::with_bytes(zero, &vec![0; CS as usize]);
    push(&mut s, app, fake, vec![zero_put.clone()]).unwrap();
    push(&mut s, app, fake, vec![zero_put]).unwrap();
    push_all_but(&mut s, app, fake, &image, zero);
    finish(&mut s, app, fake).unwrap();
    assert_eq!(s.app_image(app), image);
}

/// M6: without an expected root, announcing a huge image costs the app nothing before
/// content arrives, images over the configured cap are refused, and one batch may not
/// carry more decoded bytes than `MAX_BATCH_DECODED_BYTES`.
#[test]
fn kit_an_unverified_restore_cannot_grow_staging_before_content_nor_overfill_a_batch() {
    let mut s = AppScenario::new();
    let app = s.fresh_app_elsewhere();
    let fake = canvault_scenarios::principal("a greedy vault");
    arm(&mut s, app, fake, None);
    let before = s.ic.get_stable_memory(app).len();
    let huge = RestoreBeginRequest {
        snapshot_id: SNAPSHOT,
        image_size: 512 * MIB,
        chunk_size: CS,
        root: canvault_protocol::Hash256([1; 32]),
    };
    let (r,): (Result<(), KitError>,) =
        s.ic.update_candid(app, fake, "canvault_restore_begin", (huge.clone(),))
            .unwrap();
    r.unwrap();
    assert!(
        s.ic.get_stable_memory(app).len() < before + 64 * MIB as usize,
        "staging did not grow for an image no content arrived for"
    );
    let too_big = RestoreBeginRequest {
        image_size: 1 << 40,
        ..huge
    };
    let (r,): (Result<(), KitError>,) =
        s.ic.update_candid(app, fake, "canvault_restore_begin", (too_big,))
            .unwrap();
    assert!(matches!(r, Err(KitError::InvalidRequest(_))), "{r:?}");
    // Zero chunks decode to their length: more than 16 MiB of them in one batch is refused.
    let zeros = u32::try_from(MAX_BATCH_DECODED_BYTES / u64::from(CS)).unwrap() + 1;
    let batch: Vec<ChunkPut> = (0..zeros)
        .map(|i| ChunkPut::with_bytes(i, &vec![0; CS as usize]))
        .collect();
    let r = push(&mut s, app, fake, batch);
    assert!(matches!(r, Err(KitError::InvalidRequest(_))), "{r:?}");
}
