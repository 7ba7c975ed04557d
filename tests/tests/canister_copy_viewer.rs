//! The least-privilege path: the vault is not a controller of the app. The owner lets
//! it read the app's snapshots (`snapshot_visibility = allowed_viewers`, spec 0.57.0),
//! takes a snapshot, and asks the vault to copy it (`ReadOwnerSnapshot`). The vault
//! reads it without stopping the app or deleting the snapshot, and the copy forks onto a
//! fresh canister the vault controls.

use candid::{CandidType, Principal};
use canvault_protocol::canister_image::{
    CanisterBackupRequest, CanisterJob, CanisterJobState, Consistency, RestoreCanisterRequest,
};
use canvault_protocol::vault_api::VaultInit;
use canvault_scenarios::vault::VaultClient;
use canvault_scenarios::{install, principal};
use ic_management_canister_types::CanisterSettings;
use serde_bytes::ByteBuf;

/// `snapshot_visibility` as the spec's candid has it (ic-management-canister-types 0.7
/// predates the field).
#[derive(CandidType, serde::Deserialize)]
enum SnapshotVisibility {
    #[serde(rename = "allowed_viewers")]
    AllowedViewers(Vec<Principal>),
}

#[derive(CandidType)]
struct Settings {
    snapshot_visibility: Option<SnapshotVisibility>,
}

#[derive(CandidType)]
struct UpdateSettings {
    canister_id: Principal,
    settings: Settings,
}

type Digest = (u64, u64, ByteBuf);

#[test]
fn canister_copy_an_allowed_viewer_vault_copies_the_owners_snapshot() {
    let mut ic = canvault_scenarios::harness(3);
    let owner = principal("owner");
    let init = VaultInit {
        owners: vec![owner],
        ..Default::default()
    };
    let vault = VaultClient::install(&mut ic, 1, &init, owner);
    let app = install(
        &mut ic,
        0,
        "heap_app",
        candid::encode_args(()).expect("arg"),
        owner,
    );
    let () = ic
        .update_candid(app, owner, "fill", (3u64, 32u32, 65_536u32))
        .expect("fill");
    let before: Digest = ic.query_candid(app, owner, "digest", ()).expect("digest");

    // Without the setting, the vault (not a controller) cannot read; with it, it can.
    let snapshot = ic
        .take_canister_snapshot(app, Some(owner), None)
        .expect("take");
    let req = |id: &[u8]| CanisterBackupRequest {
        canister: app,
        consistency: Consistency::ReadOwnerSnapshot {
            snapshot_id: ByteBuf::from(id.to_vec()),
        },
        label: None,
    };
    let refused: CanisterJob = vault
        .call(&mut ic, owner, "backup_canister", (req(&snapshot.id),))
        .expect("job");
    let refused = vault.wait_canister_job(&mut ic, owner, refused.id, "canister_backup_status");
    assert!(
        matches!(refused.state, CanisterJobState::Failed { .. }),
        "{refused:?}"
    );
    let args = UpdateSettings {
        canister_id: app,
        settings: Settings {
            snapshot_visibility: Some(SnapshotVisibility::AllowedViewers(vec![vault.id])),
        },
    };
    let () = ic
        .management_update(Some(owner), "update_settings", &args)
        .expect("update_settings");
    let job: CanisterJob = vault
        .call(&mut ic, owner, "backup_canister", (req(&snapshot.id),))
        .expect("job");
    let job = vault.wait_canister_job(&mut ic, owner, job.id, "canister_backup_status");
    assert_eq!(job.state, CanisterJobState::Done, "{job:?}");
    let left = ic.list_canister_snapshots(app, Some(owner)).expect("list");
    assert_eq!(left.len(), 1, "the owner's snapshot stays in place");

    let fork = ic.create_canister_on_subnet(
        Some(owner),
        Some(CanisterSettings {
            controllers: Some(vec![owner, vault.id]),
            ..Default::default()
        }),
        ic.topology().app_subnets[2],
    );
    let restore: CanisterJob = vault
        .call(
            &mut ic,
            owner,
            "restore_canister",
            (RestoreCanisterRequest {
                snapshot_id: job.snapshot_id.expect("id"),
                target: fork,
            },),
        )
        .expect("restore");
    let restore = vault.wait_canister_job(&mut ic, owner, restore.id, "canister_restore_status");
    assert_eq!(restore.state, CanisterJobState::Done, "{restore:?}");
    let after: Digest = ic.query_candid(fork, owner, "digest", ()).expect("digest");
    assert_eq!(after, before);
}
