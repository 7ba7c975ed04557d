//! End-to-end backup and restore on real wasm, across subnets: the example app (with
//! the kit) on subnet A, its vault on subnet B, restores into a fresh app on subnet C.

use candid::Encode;
use canvault_protocol::merkle::image_root_of_bytes;
use canvault_protocol::vault_api::{RestoreJobState, SnapshotState, VaultInit};
use canvault_scenarios::app::AppScenario as Setup;

const MIB: u64 = 1024 * 1024;

fn wasm(name: &str) -> Vec<u8> {
    canvault_scenarios::wasm(if name == "app" {
        "canvault_example_app"
    } else {
        "canvault_vault"
    })
}

#[test]
fn a_64_mib_app_backs_up_across_subnets_and_restores_into_a_fresh_canister_elsewhere() {
    let mut s = Setup::new();
    let before = s.fill(s.app, 64 * MIB, 1);
    let image = s.app_image(s.app);
    let status = s.backup();
    let last = status.last_backup.expect("a complete backup");
    assert_eq!(last.root, image_root_of_bytes(&image, status.chunk_size));
    let snap = s
        .snapshots()
        .into_iter()
        .find(|x| x.id == last.snapshot_id)
        .unwrap();
    assert_eq!(snap.state, SnapshotState::Complete);
    assert_eq!(snap.root, Some(last.root));
    let digest_before = s.content_digest(s.app);

    // Disaster: the app is deleted.
    s.ic.stop_canister(s.app, Some(s.admin)).unwrap();
    s.ic.delete_canister(s.app, Some(s.admin)).unwrap();

    // A fresh app on a third subnet restores the snapshot.
    let subnet_c = s.ic.topology().app_subnets[2];
    let fresh =
        s.ic.create_canister_on_subnet(Some(s.admin), None, subnet_c);
    s.ic.install_canister(fresh, wasm("app"), Encode!().unwrap(), Some(s.admin));
    let job = s.restore_into(fresh, last.snapshot_id);
    assert_eq!(job.state, RestoreJobState::Done, "{job:?}");

    assert_eq!(
        s.app_image(fresh),
        image,
        "restored image is byte-identical"
    );
    assert_eq!(s.stats(fresh), before);
    assert_eq!(
        s.content_digest(fresh),
        digest_before,
        "the app answers as before"
    );
    let kit = s.kit_status(fresh);
    assert_eq!(kit.restores_completed, 1);
}

#[test]
fn the_snapshot_is_the_image_at_begin_while_the_app_keeps_writing() {
    let mut s = Setup::new();
    s.fill(s.app, 12 * MIB, 2);
    s.start_backup();
    let at_begin = s.app_image(s.app);
    // The app keeps serving writes while chunks are in flight.
    for round in 0..6u64 {
        let (r,): (Result<u64, candid::Reserved>,) =
            s.ic.update_candid(s.app, s.admin, "edit_posts", (round * 4000, 2000u64, round))
                .unwrap();
        assert!(r.is_ok());
        let (r,): (Result<u64, candid::Reserved>,) =
            s.ic.update_candid(s.app, s.admin, "add_posts", (500u32, round))
                .unwrap();
        assert!(r.is_ok());
    }
    assert_ne!(
        s.app_image(s.app),
        at_begin,
        "the app did change during the backup"
    );
    let status = s.finish_backup();
    let last = status.last_backup.expect("complete");
    assert_eq!(s.download(last.snapshot_id), at_begin);
}

#[test]
fn after_one_percent_changes_the_next_backup_sends_only_changed_chunks() {
    let mut s = Setup::new();
    let stats = s.fill(s.app, 32 * MIB, 3);
    let sent_before = s.ic.metrics(s.app).bytes_sent;
    s.backup();
    let full_bytes = s.ic.metrics(s.app).bytes_sent - sent_before;

    // Users edit 1% of the posts (the most recent ones) and post 1% more.
    let one_percent = stats.posts / 100;
    let first = stats.posts - one_percent;
    let _: (Result<u64, candid::Reserved>,) =
        s.ic.update_candid(s.app, s.admin, "edit_posts", (first, one_percent, 9u64))
            .unwrap();
    let _: (Result<u64, candid::Reserved>,) =
        s.ic.update_candid(s.app, s.admin, "add_posts", (one_percent as u32, 9u64))
            .unwrap();
    let dirty = s.kit_status(s.app).dirty_chunks;
    let image = s.app_image(s.app);

    let sent_before = s.ic.metrics(s.app).bytes_sent;
    let inc = s.backup().last_backup.unwrap();
    let inc_bytes = s.ic.metrics(s.app).bytes_sent - sent_before;
    assert!(
        inc.chunks_sent <= dirty,
        "only changed chunks carry data: {} > {dirty}",
        inc.chunks_sent
    );
    assert!(
        inc_bytes * 50 <= full_bytes,
        "incremental moved {inc_bytes} bytes, more than 2% of the full backup's {full_bytes}"
    );
    assert_eq!(s.download(inc.snapshot_id), image);
}

#[test]
fn a_backup_survives_an_app_upgrade_and_a_vault_upgrade_in_the_middle() {
    let mut s = Setup::new();
    s.fill(s.app, 24 * MIB, 4);
    let image = s.app_image(s.app);
    s.start_backup();
    for _ in 0..3 {
        s.ic.tick();
    }
    let midway = s.kit_status(s.app).backup.expect("still in progress");
    assert!(midway.chunks_done < midway.chunks_total, "{midway:?}");

    // Upgrade the app the IC way: stop (in-flight calls finish), upgrade, start.
    s.ic.stop_canister(s.app, Some(s.admin)).unwrap();
    s.ic.upgrade_canister(s.app, wasm("app"), Encode!().unwrap(), Some(s.admin))
        .unwrap();
    s.ic.start_canister(s.app, Some(s.admin)).unwrap();
    for _ in 0..3 {
        s.ic.tick();
    }
    // Then the vault, while the kit keeps pushing (its calls get rejected and retried).
    s.ic.stop_canister(s.vault, Some(s.admin)).unwrap();
    s.ic.upgrade_canister(
        s.vault,
        wasm("vault"),
        Encode!(&None::<VaultInit>).unwrap(),
        Some(s.admin),
    )
    .unwrap();
    for _ in 0..3 {
        s.ic.tick();
    }
    s.ic.start_canister(s.vault, Some(s.admin)).unwrap();

    let status = s.finish_backup();
    assert!(status.last_failure.is_none(), "{:?}", status.last_failure);
    let last = status.last_backup.unwrap();
    assert_eq!(s.download(last.snapshot_id), image);
}

#[test]
fn restoring_a_mostly_empty_image_keeps_every_execution_under_one_dts_slice() {
    let mut s = Setup::new();
    let (r,): (Result<canvault_scenarios::app::AppStats, candid::Reserved>,) =
        s.ic.update_candid(s.app, s.admin, "reserve_to", (96 * MIB,))
            .unwrap();
    r.unwrap();
    let image = s.app_image(s.app);
    let last = s.backup().last_backup.unwrap();
    let subnet_c = s.ic.topology().app_subnets[2];
    let fresh =
        s.ic.create_canister_on_subnet(Some(s.admin), None, subnet_c);
    s.ic.install_canister(fresh, wasm("app"), Encode!().unwrap(), Some(s.admin));
    s.ic.reset_metrics(fresh);
    let job = s.restore_into(fresh, last.snapshot_id);
    assert_eq!(job.state, RestoreJobState::Done, "{job:?}");
    assert_eq!(s.app_image(fresh), image);
    let largest = s.ic.metrics(fresh).max_instructions_per_execution;
    assert!(
        largest < 2_000_000_000,
        "largest restore execution: {largest} instructions"
    );
}
