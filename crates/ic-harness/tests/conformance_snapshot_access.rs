//! Who may drive native snapshots: senders on another subnet (dfinity/ic
//! `ic00_permissions.rs`: every snapshot method has `allow_remote_subnet_sender`) and the
//! `snapshot_visibility` setting (interface spec 0.57.0: controllers, allowed viewers or
//! public may list and read snapshots; only controllers take, load, delete or upload).
//!
//! Build the canisters first: `scripts/build-wasm.sh`.

mod common;

use candid::{CandidType, Encode, Nat, Principal};
use common::Setup;
use ic_harness::{HarnessBuilder, RejectCode};
use ic_management_canister_types::{
    DeleteCanisterSnapshotArgs, ReadCanisterSnapshotMetadataArgs,
    ReadCanisterSnapshotMetadataResult, Snapshot, TakeCanisterSnapshotArgs,
};
use serde::Deserialize;
use serde_bytes::ByteBuf;

/// `snapshot_visibility` as the spec's candid has it (ic-management-canister-types 0.7 has
/// no such field).
#[derive(CandidType, Deserialize, Clone)]
enum SnapshotVisibility {
    #[serde(rename = "controllers")]
    Controllers,
    #[serde(rename = "public")]
    Public,
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

/// The platform canister's `call` outcome: reply bytes, or (reject code, message).
type CallResult = Result<ByteBuf, (u32, String)>;

fn set_visibility(s: &mut Setup, canister: Principal, visibility: SnapshotVisibility) {
    let args = UpdateSettings {
        canister_id: canister,
        settings: Settings {
            snapshot_visibility: Some(visibility),
        },
    };
    let () =
        s.ic.management_update(Some(s.controller), "update_settings", &args)
            .expect("update_settings");
}

/// `driver` calls the management canister's `method` with `arg`; (reject code, message)
/// on failure.
fn drive(
    s: &mut Setup,
    driver: Principal,
    method: &str,
    arg: Vec<u8>,
) -> Result<Vec<u8>, (u32, String)> {
    let (result, _refund): (CallResult, Nat) = s.update(
        driver,
        "call",
        (
            Principal::management_canister(),
            method.to_string(),
            ByteBuf::from(arg),
            Nat::from(0u8),
            false,
        ),
    );
    result.map(ByteBuf::into_vec)
}

fn read_metadata(
    s: &mut Setup,
    sender: Principal,
    canister: Principal,
    snapshot: &Snapshot,
) -> Result<ReadCanisterSnapshotMetadataResult, ic_harness::CallError> {
    let args = ReadCanisterSnapshotMetadataArgs {
        canister_id: canister,
        snapshot_id: snapshot.id.clone(),
    };
    s.ic.management_update::<_, (ReadCanisterSnapshotMetadataResult,)>(
        Some(sender),
        "read_canister_snapshot_metadata",
        &args,
    )
    .map(|(m,)| m)
}

/// A controller on another subnet takes, reads, copies, loads and deletes snapshots.
#[test]
fn remote_subnet_controller_drives_every_snapshot_method() {
    let mut s = Setup::new(HarnessBuilder::new(), 2);
    let driver = s.install_on(1, None);
    let app = s.install_on(0, Some(vec![s.controller, driver]));
    for _ in 0..4 {
        let _: u64 = s.update1(app, "inc_heap", ());
    }
    let take = Encode!(&TakeCanisterSnapshotArgs {
        canister_id: app,
        replace_snapshot: None,
        uninstall_code: None,
        sender_canister_version: None,
    })
    .expect("encode");
    let reply = drive(&mut s, driver, "take_canister_snapshot", take).expect("remote take");
    let snapshot = candid::decode_one::<Snapshot>(&reply).expect("snapshot");
    let _: u64 = s.update1(app, "inc_heap", ());

    let list = Encode!(&ic_management_canister_types::CanisterIdRecord { canister_id: app })
        .expect("encode");
    drive(&mut s, driver, "list_canister_snapshots", list).expect("remote list");
    let load = Encode!(&ic_management_canister_types::LoadCanisterSnapshotArgs {
        canister_id: app,
        snapshot_id: snapshot.id.clone(),
        sender_canister_version: None,
    })
    .expect("encode");
    drive(&mut s, driver, "load_canister_snapshot", load).expect("remote load");
    assert_eq!(s.query1::<u64>(app, "get_heap", ()), 4);

    let delete = Encode!(&DeleteCanisterSnapshotArgs {
        canister_id: app,
        snapshot_id: snapshot.id,
    })
    .expect("encode");
    drive(&mut s, driver, "delete_canister_snapshot", delete).expect("remote delete");
    assert!(
        s.ic.list_canister_snapshots(app, Some(s.controller))
            .expect("list")
            .is_empty()
    );
}

/// An allowed viewer on another subnet copies a snapshot out but cannot take or delete;
/// `public` opens reading to anyone; `controllers` closes it again.
#[test]
fn snapshot_visibility_opens_reading_only() {
    let mut s = Setup::new(HarnessBuilder::new(), 2);
    let viewer = s.install_on(1, None);
    let app = s.install_on(0, None);
    let target = s.install_on(1, Some(vec![s.controller, viewer]));
    for _ in 0..3 {
        let _: u64 = s.update1(app, "inc_heap", ());
    }
    let snapshot =
        s.ic.take_canister_snapshot(app, Some(s.controller), None)
            .expect("take");
    let copy_args = (app, ByteBuf::from(snapshot.id.clone()), target);

    // Default visibility (controllers): the viewer's read is refused, so its copy traps.
    let refused =
        s.ic.update_candid::<_, (ByteBuf, u32)>(viewer, s.user, "copy_snapshot", copy_args.clone())
            .expect_err("no read right yet");
    assert!(
        format!("{refused:?}").contains("Only controllers"),
        "{refused:?}"
    );

    set_visibility(
        &mut s,
        app,
        SnapshotVisibility::AllowedViewers(vec![viewer]),
    );
    let (copy, _reads): (ByteBuf, u32) = s.update(viewer, "copy_snapshot", copy_args);
    s.ic.load_canister_snapshot(target, Some(s.controller), copy.into_vec())
        .expect("load the copy");
    assert_eq!(s.query1::<u64>(target, "get_heap", ()), 3);

    // Reading is all a viewer may do.
    let take = Encode!(&TakeCanisterSnapshotArgs {
        canister_id: app,
        replace_snapshot: None,
        uninstall_code: None,
        sender_canister_version: None,
    })
    .expect("encode");
    let (code, message) =
        drive(&mut s, viewer, "take_canister_snapshot", take).expect_err("a viewer cannot take");
    assert_eq!(code, RejectCode::CanisterError as u32);
    assert!(message.contains("Only controllers"), "{message}");
    let delete = Encode!(&DeleteCanisterSnapshotArgs {
        canister_id: app,
        snapshot_id: snapshot.id.clone(),
    })
    .expect("encode");
    let (code, _) =
        drive(&mut s, viewer, "delete_canister_snapshot", delete).expect_err("nor delete");
    assert_eq!(code, RejectCode::CanisterError as u32);

    // A user that is neither controller nor viewer: refused, then admitted by `public`.
    let user = s.user;
    assert!(read_metadata(&mut s, user, app, &snapshot).is_err());
    set_visibility(&mut s, app, SnapshotVisibility::Public);
    let meta = read_metadata(&mut s, user, app, &snapshot).expect("public read");
    assert!(meta.wasm_memory_size > 0);
    set_visibility(&mut s, app, SnapshotVisibility::Controllers);
    assert!(read_metadata(&mut s, user, app, &snapshot).is_err());
    assert_eq!(
        s.ic.list_canister_snapshots(app, Some(s.controller))
            .expect("list")
            .len(),
        1
    );
}
