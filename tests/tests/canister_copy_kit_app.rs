//! A kit app (the example app) backed up both ways into one vault: a kit image pushed
//! by its kit, and a whole-canister copy driven by the vault. Both snapshots coexist in
//! one catalogue, list with their kind, download, and restore: the kit image into a
//! fresh kit app, the whole canister into a fresh canister the vault controls.

use candid::Principal;
use canvault_protocol::canister_image::{
    CanisterBackupRequest, CanisterJob, CanisterJobState, Consistency, RestoreCanisterRequest,
};
use canvault_protocol::vault_api::{RestoreJobState, SnapshotKind, SnapshotState};
use canvault_scenarios::app::AppScenario;
use canvault_scenarios::wasm;
use ic_management_canister_types::CanisterSettings;

fn wait(s: &mut AppScenario, id: u64, status: &str) -> CanisterJob {
    let vault = s.vault_client();
    for _ in 0..10_000 {
        let job: CanisterJob = vault
            .read(&mut s.ic, s.admin, status, (id,))
            .expect("status");
        if matches!(
            job.state,
            CanisterJobState::Done | CanisterJobState::Failed { .. }
        ) {
            return job;
        }
        s.ic.tick();
    }
    panic!("job {id} did not end");
}

#[test]
fn canister_copy_kit_app_backed_up_both_ways_lists_and_restores_both() {
    let mut s = AppScenario::new();
    s.fill(s.app, 2 << 20, 1);
    let content = s.content_digest(s.app);
    s.backup();

    // The vault becomes a controller of the app, then copies it whole.
    let settings = CanisterSettings {
        controllers: Some(vec![s.admin, s.vault]),
        ..Default::default()
    };
    s.ic.update_canister_settings(s.app, Some(s.admin), settings)
        .expect("controllers");
    let vault = s.vault_client();
    let req = CanisterBackupRequest {
        canister: s.app,
        consistency: Consistency::Running,
        label: Some("whole".into()),
    };
    let job: CanisterJob = vault
        .call(&mut s.ic, s.admin, "backup_canister", (req,))
        .expect("backup_canister");
    let job = wait(&mut s, job.id, "canister_backup_status");
    assert_eq!(job.state, CanisterJobState::Done, "{job:?}");

    let snapshots = s.snapshots();
    let complete: Vec<_> = snapshots
        .iter()
        .filter(|i| i.state == SnapshotState::Complete && i.source == s.app)
        .collect();
    let kit = complete
        .iter()
        .find(|i| i.kind == Some(SnapshotKind::KitImage))
        .expect("a kit image");
    let whole = complete
        .iter()
        .find(|i| matches!(i.kind, Some(SnapshotKind::WholeCanister(_))))
        .expect("a whole canister");
    let (kit_id, whole_id) = (kit.id, whole.id);
    assert!(
        whole.new_bytes < whole.image_size,
        "stored compressed and deduplicated: {} of {}",
        whole.new_bytes,
        whole.image_size
    );
    // Downloads work for both kinds (every chunk verified by the client).
    assert_eq!(s.download(whole_id).len() as u64, whole.image_size);

    // The kit image restores into a fresh kit app...
    let subnets = s.ic.topology().app_subnets;
    let kit_target =
        s.ic.create_canister_on_subnet(Some(s.admin), None, subnets[2]);
    s.ic.install_canister(
        kit_target,
        wasm("canvault_example_app"),
        candid::encode_args(()).expect("arg"),
        Some(s.admin),
    );
    let restored = s.restore_into(kit_target, kit_id);
    assert_eq!(restored.state, RestoreJobState::Done);
    assert_eq!(s.content_digest(kit_target), content);

    // ...and the whole canister into an empty canister the vault controls.
    let fork = s.ic.create_canister_on_subnet(
        Some(s.admin),
        Some(CanisterSettings {
            controllers: Some(vec![s.admin, s.vault]),
            ..Default::default()
        }),
        subnets[2],
    );
    let req = RestoreCanisterRequest {
        snapshot_id: whole_id,
        target: fork,
    };
    let job: CanisterJob = vault
        .call(&mut s.ic, s.admin, "restore_canister", (req,))
        .expect("restore_canister");
    let job = wait(&mut s, job.id, "canister_restore_status");
    assert_eq!(job.state, CanisterJobState::Done, "{job:?}");
    assert_eq!(s.content_digest(fork), content);
    let _: Principal = fork;
}
