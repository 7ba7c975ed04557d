//! The pipelined push and restore (issue #13) on real wasm: a bandwidth-bound backup and
//! its restore take at most 1.5 times the rounds the modelled network allows, the app's
//! own updates are not held back, and congestion rejects in the middle of the pipeline
//! cost retries, never data. Rounds are simulated and deterministic, not wall-clock.

use candid::Encode;
use canvault_protocol::vault_api::RestoreJobState;
use canvault_scenarios::app::AppScenario;
use canvault_scenarios::throughput::{floor_rounds, percentile};
use ic_harness::RejectCode;

const MIB: u64 = 1024 * 1024;

/// An app holding `mib` MiB of incompressible media (every byte goes over the wire).
fn random_app(mib: u64) -> AppScenario {
    let mut s = AppScenario::new();
    let app = s.app;
    s.fill_with(app, "fill_media_to", mib * MIB, 7);
    s
}

/// Submits one small app update and ticks until it is answered; returns its rounds.
fn update_latency(s: &mut AppScenario, seed: u64) -> u64 {
    let id =
        s.ic.submit_call(s.app, s.admin, "add_posts", Encode!(&1u32, &seed).unwrap())
            .expect("ingress accepted");
    let at = s.ic.rounds();
    let result = s.ic.await_call(id);
    result.expect("the app update succeeds");
    s.ic.rounds() - at
}

/// Asserts that a transfer of `bytes` took at most 1.5 times its floor.
fn within_floor(phase: &str, rounds: u64, bytes: u64, latency: u64) {
    let floor = floor_rounds(bytes, latency);
    println!("{phase}: {rounds} rounds, floor {floor} ({bytes} bytes sent)");
    assert!(
        rounds * 2 <= floor * 3,
        "{phase}: {rounds} rounds for a floor of {floor}"
    );
}

#[test]
fn a_bandwidth_bound_backup_and_its_restore_stay_within_one_and_a_half_times_the_floor() {
    let mut s = random_app(128);
    let (app, vault) = (s.app, s.vault);
    let latency = s.ic.cross_subnet_latency_rounds();
    s.ic.reset_metrics(app);
    let start = s.ic.rounds();
    let status = s.backup();
    let rounds = s.ic.rounds() - start;
    within_floor("backup", rounds, s.ic.metrics(app).bytes_sent, latency);

    let last = status.last_backup.expect("complete").snapshot_id;
    let fresh = s.fresh_app_elsewhere();
    s.ic.reset_metrics(vault);
    let start = s.ic.rounds();
    let job = s.restore_into(fresh, last);
    assert_eq!(job.state, RestoreJobState::Done, "{job:?}");
    let rounds = s.ic.rounds() - start;
    within_floor("restore", rounds, s.ic.metrics(vault).bytes_sent, latency);
    assert!(s.images_equal(app, fresh), "restored byte for byte");
}

#[test]
fn app_updates_during_a_backup_wait_at_most_one_round_more_than_without() {
    let mut s = random_app(96);
    let app = s.app;
    let idle: Vec<u64> = (0..8)
        .map(|i| update_latency(&mut s, 1 << 40 | i))
        .collect();
    s.start_backup();
    let mut busy = Vec::new();
    let mut seed = 1 << 41;
    while s.kit_status(app).backup.is_some() {
        seed += 1;
        busy.push(update_latency(&mut s, seed));
    }
    assert!(busy.len() >= 8, "the backup spanned {} updates", busy.len());
    let (idle99, busy99) = (percentile(&idle, 99.0), percentile(&busy, 99.0));
    assert!(
        busy99 <= idle99 + 1,
        "p99 {busy99} rounds during a backup, {idle99} without: {busy:?}"
    );
    let status = s.kit_status(app);
    assert!(status.last_failure.is_none(), "{:?}", status.last_failure);
}

#[test]
fn congestion_rejects_in_the_middle_of_the_pipeline_cost_retries_not_data() {
    let mut s = random_app(96);
    let (app, vault) = (s.app, s.vault);
    s.start_backup();
    // Let the pipeline fill, then refuse a run of calls as a saturated path would.
    while s.kit_status(app).backup.is_none_or(|b| b.chunks_done == 0) {
        s.ic.tick();
    }
    s.ic.inject_rejects(app, vault, 6, RejectCode::SysTransient);
    let status = s.finish_backup();
    assert!(status.last_failure.is_none(), "{:?}", status.last_failure);
    let last = status.last_backup.expect("complete");
    let snapshot = s.download(last.snapshot_id);
    assert_eq!(snapshot, s.app_image(app), "the snapshot is the image");
}

#[test]
fn the_in_flight_ceiling_an_admin_sets_is_bounded() {
    let mut s = AppScenario::new();
    let app = s.app;
    for (window, accepted) in [(0, false), (1, true), (256, true), (257, false)] {
        let config = canvault_kit::KitConfig {
            window: Some(window),
            ..Default::default()
        };
        let (r,): (Result<(), canvault_kit::KitError>,) =
            s.ic.update_candid(app, s.admin, "canvault_configure", (config,))
                .unwrap();
        match (r, accepted) {
            (Ok(()), true) => {}
            (Err(canvault_kit::KitError::InvalidRequest(_)), false) => {}
            (other, _) => panic!("window {window}: {other:?}"),
        }
    }
}
