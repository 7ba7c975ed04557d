//! Every call the soak makes to a canister endpoint, in one place: when an interface
//! changes, this is the file to adapt.
//!
//! Each call answers `Ok` or `Err(text)`: a reject (a fault, a stopped canister) and a
//! typed error the endpoint returned are both ordinary outcomes under chaos; the soak
//! decides which ones an invariant forbids.

use std::cell::RefCell;

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Encode, Principal};
use canvault_kit::{ArmRestoreRequest, DatasetInfo, KitConfig, KitError, KitStatus};
use canvault_protocol::vault_api::{
    RestoreJob, RetentionPolicy, SnapshotId, SnapshotInfo, StartRestoreRequest, VaultError,
    VaultInit, VaultStatus,
};
use ic_harness::{CanisterId, Harness};
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager};
use ic_stable_structures::{StableBTreeMap, VectorMemory};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::app::AppStats;

/// The example app's crate name.
pub const APP_WASM: &str = "canvault_example_app";
/// The vault's crate name.
pub const VAULT_WASM: &str = "canvault_vault";

/// The outcome of a call under chaos.
pub type Outcome<T> = Result<T, String>;

/// A user of the example app (the app's own record type, read back from its image).
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// When the user joined.
    pub joined_at_ns: u64,
}

/// A post of the example app (its own record type).
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// Id.
    pub id: u64,
    /// Author's user id.
    pub author: u64,
    /// When it was posted.
    pub created_at_ns: u64,
    /// The text.
    pub text: String,
    /// Times it was edited.
    pub edits: u32,
}

canvault_kit::candid_storable!(User);
canvault_kit::candid_storable!(Post);

fn update<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
    ic: &mut Harness,
    canister: CanisterId,
    sender: Principal,
    method: &str,
    args: A,
) -> Outcome<R> {
    let (r,): (R,) = ic
        .update_candid(canister, sender, method, args)
        .map_err(|e| format!("{method}: {e}"))?;
    Ok(r)
}

fn query<A: ArgumentEncoder, R: for<'de> ArgumentDecoder<'de>>(
    ic: &mut Harness,
    canister: CanisterId,
    sender: Principal,
    method: &str,
    args: A,
) -> Outcome<R> {
    ic.query_candid(canister, sender, method, args)
        .map_err(|e| format!("{method}: {e}"))
}

/// Flattens `Result<T, E>` answers into [`Outcome`].
fn typed<T, E: std::fmt::Debug>(method: &str, r: Outcome<Result<T, E>>) -> Outcome<T> {
    r?.map_err(|e| format!("{method}: {e:?}"))
}

// ---- the example app: writes by its controller and by its users ----

/// `add_posts(count, seed)`.
pub fn add_posts(
    ic: &mut Harness,
    app: CanisterId,
    admin: Principal,
    count: u32,
    seed: u64,
) -> Outcome<u64> {
    typed(
        "add_posts",
        update::<_, Result<u64, candid::Reserved>>(ic, app, admin, "add_posts", (count, seed)),
    )
}

/// `edit_posts(first_id, count, seed)`.
pub fn edit_posts(
    ic: &mut Harness,
    app: CanisterId,
    admin: Principal,
    first: u64,
    count: u64,
    seed: u64,
) -> Outcome<u64> {
    typed(
        "edit_posts",
        update::<_, Result<u64, candid::Reserved>>(
            ic,
            app,
            admin,
            "edit_posts",
            (first, count, seed),
        ),
    )
}

/// One `fill_to(bytes, seed)` call (it may stop early; call again to go on).
pub fn fill_to(
    ic: &mut Harness,
    app: CanisterId,
    admin: Principal,
    bytes: u64,
    seed: u64,
) -> Outcome<AppStats> {
    typed(
        "fill_to",
        update::<_, Result<AppStats, candid::Reserved>>(ic, app, admin, "fill_to", (bytes, seed)),
    )
}

/// `stats()`.
pub fn stats(ic: &mut Harness, app: CanisterId, admin: Principal) -> Outcome<AppStats> {
    query::<_, (AppStats,)>(ic, app, admin, "stats", ()).map(|(s,)| s)
}

/// `join(name)` as `user`: their user id.
pub fn join(ic: &mut Harness, app: CanisterId, user: Principal, name: &str) -> Outcome<u64> {
    typed(
        "join",
        update::<_, Result<u64, candid::Reserved>>(ic, app, user, "join", (name.to_string(),)),
    )
}

/// `post(text)` as `user`: the post id.
pub fn post(ic: &mut Harness, app: CanisterId, user: Principal, text: &str) -> Outcome<u64> {
    typed(
        "post",
        update::<_, Result<u64, candid::Reserved>>(ic, app, user, "post", (text.to_string(),)),
    )
}

/// `opt_in_personal_vault(vault)` as `user`.
pub fn opt_in(
    ic: &mut Harness,
    app: CanisterId,
    user: Principal,
    vault: CanisterId,
) -> Outcome<()> {
    typed(
        "opt_in_personal_vault",
        update::<_, Result<(), candid::Reserved>>(ic, app, user, "opt_in_personal_vault", (vault,)),
    )
}

/// `backup_my_data()` as `user`.
pub fn backup_my_data(ic: &mut Harness, app: CanisterId, user: Principal) -> Outcome<()> {
    typed(
        "backup_my_data",
        update::<_, Result<(), candid::Reserved>>(ic, app, user, "backup_my_data", ()),
    )
}

/// `my_data_backup()` as `user`.
pub fn my_data_backup(
    ic: &mut Harness,
    app: CanisterId,
    user: Principal,
) -> Outcome<Option<DatasetInfo>> {
    let (r,): (Result<Option<DatasetInfo>, candid::Reserved>,) =
        query(ic, app, user, "my_data_backup", ())?;
    r.map_err(|_| "my_data_backup refused".to_string())
}

// ---- the kit in the app ----

/// `canvault_configure` with only the backup interval set.
pub fn set_interval(
    ic: &mut Harness,
    app: CanisterId,
    admin: Principal,
    seconds: u64,
) -> Outcome<()> {
    let config = KitConfig {
        interval_seconds: Some(seconds),
        ..KitConfig::default()
    };
    typed(
        "canvault_configure",
        update::<_, Result<(), KitError>>(ic, app, admin, "canvault_configure", (config,)),
    )
}

/// `canvault_backup_now`.
pub fn backup_now(ic: &mut Harness, app: CanisterId, admin: Principal) -> Outcome<()> {
    typed(
        "canvault_backup_now",
        update::<_, Result<(), KitError>>(ic, app, admin, "canvault_backup_now", ()),
    )
}

/// `canvault_status`.
pub fn kit_status(ic: &mut Harness, app: CanisterId, admin: Principal) -> Outcome<KitStatus> {
    let (r,): (Result<KitStatus, KitError>,) = query(ic, app, admin, "canvault_status", ())?;
    r.map_err(|e| format!("canvault_status: {e:?}"))
}

/// `canvault_arm_restore` for `snapshot_id` from `vault`, with the root it must have.
pub fn arm_restore(
    ic: &mut Harness,
    app: CanisterId,
    admin: Principal,
    vault: CanisterId,
    snapshot_id: SnapshotId,
    expected_root: Option<canvault_protocol::Hash256>,
) -> Outcome<()> {
    let req = ArmRestoreRequest {
        vault,
        snapshot_id,
        expected_root,
    };
    typed(
        "canvault_arm_restore",
        update::<_, Result<(), KitError>>(ic, app, admin, "canvault_arm_restore", (req,)),
    )
}

/// `canvault_abandon_restore`.
pub fn abandon_restore(ic: &mut Harness, app: CanisterId, admin: Principal) -> Outcome<()> {
    typed(
        "canvault_abandon_restore",
        update::<_, Result<(), KitError>>(ic, app, admin, "canvault_abandon_restore", ()),
    )
}

// ---- the vault ----

/// `list_snapshots(None)` as a reader.
pub fn list_snapshots(
    ic: &mut Harness,
    vault: CanisterId,
    reader: Principal,
) -> Outcome<Vec<SnapshotInfo>> {
    let (r,): (Result<Vec<SnapshotInfo>, VaultError>,) =
        query(ic, vault, reader, "list_snapshots", (None::<Principal>,))?;
    r.map_err(|e| format!("list_snapshots: {e:?}"))
}

/// `status()`.
pub fn vault_status(
    ic: &mut Harness,
    vault: CanisterId,
    reader: Principal,
) -> Outcome<VaultStatus> {
    let (r,): (Result<VaultStatus, VaultError>,) = query(ic, vault, reader, "status", ())?;
    r.map_err(|e| format!("status: {e:?}"))
}

/// `set_retention(policy)` as an owner.
pub fn set_retention(
    ic: &mut Harness,
    vault: CanisterId,
    owner: Principal,
    policy: RetentionPolicy,
) -> Outcome<()> {
    typed(
        "set_retention",
        update::<_, Result<(), VaultError>>(ic, vault, owner, "set_retention", (policy,)),
    )
}

/// `apply_retention()` as an owner: the snapshots it deleted.
pub fn apply_retention(
    ic: &mut Harness,
    vault: CanisterId,
    owner: Principal,
) -> Outcome<Vec<SnapshotId>> {
    typed(
        "apply_retention",
        update::<_, Result<Vec<SnapshotId>, VaultError>>(ic, vault, owner, "apply_retention", ()),
    )
}

/// `delete_snapshot(id)` as an owner.
pub fn delete_snapshot(
    ic: &mut Harness,
    vault: CanisterId,
    owner: Principal,
    id: SnapshotId,
) -> Outcome<()> {
    typed(
        "delete_snapshot",
        update::<_, Result<(), VaultError>>(ic, vault, owner, "delete_snapshot", (id,)),
    )
}

/// `start_restore` of `snapshot_id` into `target`, as an owner.
pub fn start_restore(
    ic: &mut Harness,
    vault: CanisterId,
    owner: Principal,
    snapshot_id: SnapshotId,
    target: CanisterId,
) -> Outcome<RestoreJob> {
    let req = StartRestoreRequest {
        snapshot_id,
        target,
    };
    typed(
        "start_restore",
        update::<_, Result<RestoreJob, VaultError>>(ic, vault, owner, "start_restore", (req,)),
    )
}

/// `restore_status(job)` as an owner.
pub fn restore_status(
    ic: &mut Harness,
    vault: CanisterId,
    owner: Principal,
    job: u64,
) -> Outcome<RestoreJob> {
    let (r,): (Result<RestoreJob, VaultError>,) =
        query(ic, vault, owner, "restore_status", (job,))?;
    r.map_err(|e| format!("restore_status: {e:?}"))
}

// ---- canister lifecycle ----

/// Upgrades the app as on the IC: stop (open calls finish), upgrade, start. The
/// canister is started again even if a stage fails.
pub fn upgrade_app(ic: &mut Harness, app: CanisterId, admin: Principal) -> Outcome<()> {
    upgrade(ic, app, admin, APP_WASM, Encode!().expect("encodes"))
}

/// Upgrades a vault with the same module (no argument): stop, upgrade, start.
pub fn upgrade_vault(ic: &mut Harness, vault: CanisterId, controller: Principal) -> Outcome<()> {
    upgrade(
        ic,
        vault,
        controller,
        VAULT_WASM,
        Encode!(&None::<VaultInit>).expect("encodes"),
    )
}

fn upgrade(
    ic: &mut Harness,
    id: CanisterId,
    controller: Principal,
    wasm: &str,
    arg: Vec<u8>,
) -> Outcome<()> {
    let stopped = ic
        .stop_canister(id, Some(controller))
        .map_err(|e| format!("stop: {e}"));
    let upgraded = stopped.and_then(|()| {
        ic.upgrade_canister(id, crate::wasm(wasm), arg, Some(controller))
            .map_err(|e| format!("upgrade: {e}"))
    });
    let started = ic
        .start_canister(id, Some(controller))
        .map_err(|e| format!("start: {e}"));
    upgraded.and(started)
}

/// A fresh example app on the `subnet`-th subnet (no vault configured).
pub fn install_fresh_app(ic: &mut Harness, subnet: usize, admin: Principal) -> CanisterId {
    crate::install(ic, subnet, APP_WASM, Encode!().expect("encodes"), admin)
}

/// Stops and deletes a canister (best effort: a fresh restore target is done with).
pub fn delete(ic: &mut Harness, id: CanisterId, controller: Principal) -> Outcome<()> {
    ic.stop_canister(id, Some(controller))
        .map_err(|e| format!("stop: {e}"))?;
    ic.delete_canister(id, Some(controller))
        .map_err(|e| format!("delete: {e}"))
}

/// A personal vault owned and controlled by `user`, the app its only writer.
pub fn install_personal_vault(
    ic: &mut Harness,
    subnet: usize,
    user: Principal,
    app: CanisterId,
) -> CanisterId {
    let init = VaultInit {
        owners: vec![user],
        writers: vec![app],
        readers: vec![],
        retention: None,
    };
    crate::install(
        ic,
        subnet,
        VAULT_WASM,
        Encode!(&init).expect("encodes"),
        user,
    )
}

// ---- reading state without executing anything ----

/// The app's image, read from its raw stable memory with the kit's layout code.
pub fn app_image(ic: &Harness, app: CanisterId) -> Vec<u8> {
    let raw = ic.get_stable_memory(app);
    canvault_kit::Kit::load(VectorMemory::new(RefCell::new(raw))).image_bytes()
}

/// The bytes `backup_my_data` hands the kit for user `user_id` when the app's image is
/// `image`: `(Option<User>, Vec<Post>)` candid-encoded, posts in id order, as the app
/// builds them (its users map is memory 0, posts memory 1).
pub fn dataset_bytes(image: &[u8], user_id: u64) -> Vec<u8> {
    let mm = MemoryManager::init(VectorMemory::new(RefCell::new(image.to_vec())));
    let users: StableBTreeMap<u64, User, _> = StableBTreeMap::init(mm.get(MemoryId::new(0)));
    let posts: StableBTreeMap<u64, Post, _> = StableBTreeMap::init(mm.get(MemoryId::new(1)));
    let user = users.get(&user_id);
    let mine: Vec<Post> = posts
        .iter()
        .map(|e| e.value())
        .filter(|p| p.author == user_id)
        .collect();
    Encode!(&user, &mine).expect("encodes")
}
