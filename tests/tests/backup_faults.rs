//! Backups under faults injected by the harness: rejects of every code, dropped
//! responses, a trapping vault, an offline subnet. Each backup either completes or ends
//! as failed with a clear reason, and earlier snapshots stay intact and restorable.

use canvault_protocol::vault_api::{RestoreJobState, SnapshotState};
use canvault_scenarios::app::AppScenario;
use ic_harness::RejectCode;

const MIB: u64 = 1024 * 1024;

/// A scenario with one complete backup; returns it with that snapshot's id and image.
fn with_first_backup(seed: u64) -> (AppScenario, u64, Vec<u8>) {
    let mut s = AppScenario::new();
    s.fill(s.app, 4 * MIB, seed);
    let image = s.app_image(s.app);
    let first = s.backup().last_backup.expect("first backup").snapshot_id;
    // Change the app so the next backup has work to do.
    let _: (Result<u64, candid::Reserved>,) =
        s.ic.update_candid(s.app, s.admin, "add_posts", (2000u32, seed))
            .unwrap();
    (s, first, image)
}

/// The earlier snapshot is complete, downloads to its image, and restores.
fn assert_intact(s: &mut AppScenario, id: u64, image: &[u8]) {
    let info = s
        .snapshots()
        .into_iter()
        .find(|x| x.id == id)
        .expect("earlier snapshot kept");
    assert_eq!(info.state, SnapshotState::Complete);
    assert_eq!(s.download(id), image);
    let fresh = s.fresh_app_elsewhere();
    let job = s.restore_into(fresh, id);
    assert_eq!(job.state, RestoreJobState::Done, "{job:?}");
    assert_eq!(s.app_image(fresh), image);
}

#[test]
fn retryable_rejects_are_retried_and_the_backup_completes() {
    for code in [
        RejectCode::SysTransient,
        RejectCode::CanisterError,
        RejectCode::SysUnknown,
    ] {
        let (mut s, first, image) = with_first_backup(10 + code as u64);
        s.ic.inject_rejects(s.app, s.vault, 3, code);
        s.start_backup();
        let status = s.finish_backup();
        assert!(
            status.last_failure.is_none(),
            "{code:?}: {:?}",
            status.last_failure
        );
        let last = status.last_backup.unwrap();
        assert_ne!(last.snapshot_id, first);
        assert_eq!(s.download(last.snapshot_id), s.app_image(s.app), "{code:?}");
        assert!(
            s.ic.fault_log().iter().any(|l| l.contains("reject")),
            "the fault is visible in the log"
        );
        assert_intact(&mut s, first, &image);
    }
}

#[test]
fn permanent_rejects_end_the_backup_as_failed_with_the_reason() {
    for code in [
        RejectCode::SysFatal,
        RejectCode::DestinationInvalid,
        RejectCode::CanisterReject,
    ] {
        let (mut s, first, image) = with_first_backup(20 + code as u64);
        s.ic.inject_rejects(s.app, s.vault, 1, code);
        s.start_backup();
        let status = s.finish_backup();
        let failure = status.last_failure.expect("failed");
        assert!(
            failure
                .reason
                .contains(&format!("reject code {}", code as u32)),
            "{code:?}: {}",
            failure.reason
        );
        assert_eq!(
            status.last_backup.unwrap().snapshot_id,
            first,
            "the last complete backup is unchanged"
        );
        assert!(
            status.dirty_chunks > 0,
            "the failed backup's chunks are sent again next time"
        );
        assert_intact(&mut s, first, &image);
    }
}

#[test]
fn a_vault_that_never_answers_makes_the_backup_give_up_after_its_retries() {
    let (mut s, first, image) = with_first_backup(30);
    s.ic.inject_rejects(s.app, s.vault, 1_000, RejectCode::SysTransient);
    s.start_backup();
    let status = s.finish_backup();
    let failure = status.last_failure.expect("failed");
    assert!(
        failure.reason.contains("gave up after 20 failed attempts"),
        "{}",
        failure.reason
    );
    assert_intact(&mut s, first, &image);
}

#[test]
fn dropped_responses_a_trapping_vault_and_an_offline_subnet_only_delay_the_backup() {
    let (mut s, first, image) = with_first_backup(40);
    s.ic.drop_responses(s.app, s.vault, 2);
    s.ic.trap_next_execution(s.vault);
    s.start_backup();
    for _ in 0..4 {
        s.ic.tick();
    }
    let vault_subnet = s.ic.get_subnet(s.vault).unwrap();
    s.ic.take_subnet_offline(vault_subnet, 30);
    let status = s.finish_backup();
    assert!(status.last_failure.is_none(), "{:?}", status.last_failure);
    let last = status.last_backup.unwrap();
    assert_eq!(s.download(last.snapshot_id), s.app_image(s.app));
    assert_intact(&mut s, first, &image);
}
