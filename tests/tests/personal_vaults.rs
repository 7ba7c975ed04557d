//! End users opt in to personal vaults: the user owns and controls the vault, the app
//! is only a writer. Each user's data set lands only in their own vault, incrementally;
//! the user downloads it; the app's admin can neither read nor delete it.

use candid::{Decode, Encode, Principal};
use canvault_protocol::kit_api::DatasetInfo;
use canvault_protocol::vault_api::{Role, SnapshotInfo, SnapshotState, VaultError, VaultInit};
use canvault_scenarios::app::AppScenario;
use canvault_scenarios::vault::VaultClient;

#[derive(candid::CandidType, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
struct User {
    id: u64,
    name: String,
    joined_at_ns: u64,
}

#[derive(candid::CandidType, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
struct Post {
    id: u64,
    author: u64,
    created_at_ns: u64,
    text: String,
    edits: u32,
}

type AppResult<T> = Result<T, candid::Reserved>;

fn app_call<T: candid::CandidType + for<'de> serde::Deserialize<'de>>(
    s: &mut AppScenario,
    who: Principal,
    method: &str,
    arg: Vec<u8>,
) -> T {
    let bytes =
        s.ic.update_call(s.app, who, method, arg)
            .unwrap_or_else(|r| panic!("{method}: {r}"));
    let (r,): (AppResult<T>,) = candid::decode_args(&bytes).unwrap();
    r.unwrap_or_else(|_| panic!("{method} refused"))
}

fn my_backup(s: &mut AppScenario, user: Principal) -> Option<DatasetInfo> {
    let bytes =
        s.ic.query_call(s.app, user, "my_data_backup", Encode!().unwrap())
            .unwrap();
    let (r,): (AppResult<Option<DatasetInfo>>,) = candid::decode_args(&bytes).unwrap();
    r.unwrap()
}

/// Backs the user's data up and waits until it completed; returns the data set's state.
fn backup_and_wait(s: &mut AppScenario, user: Principal, after: Option<u64>) -> DatasetInfo {
    let () = app_call(s, user, "backup_my_data", Encode!().unwrap());
    for _ in 0..2_000 {
        if let Some(info) = my_backup(s, user)
            && info.last_backup.as_ref().map(|l| l.snapshot_id) != after
            && info.last_backup.is_some()
        {
            assert!(info.last_failure.is_none(), "{:?}", info.last_failure);
            return info;
        }
        s.ic.tick();
    }
    panic!(
        "the data-set backup of {user} did not complete: {:?}",
        my_backup(s, user)
    );
}

#[test]
fn three_users_opt_in_and_each_ones_data_lands_only_in_their_own_vault() {
    let mut s = AppScenario::new();
    let users: Vec<(Principal, &str)> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| (canvault_scenarios::principal(n), *n))
        .collect();
    let mut vaults = Vec::new();
    for (user, name) in &users {
        // The user's own vault: they are its owner and only controller; the app only writes.
        let init = VaultInit {
            owners: vec![*user],
            writers: vec![s.app],
            readers: vec![],
            retention: None,
        };
        let vault = VaultClient::install(&mut s.ic, 1, &init, *user);
        vaults.push(vault);
        let _: u64 = app_call(&mut s, *user, "join", Encode!(&name.to_string()).unwrap());
        for i in 0..5 {
            let _: u64 = app_call(
                &mut s,
                *user,
                "post",
                Encode!(&format!("{name}'s post number {i}")).unwrap(),
            );
        }
        let () = app_call(
            &mut s,
            *user,
            "opt_in_personal_vault",
            Encode!(&vault.id).unwrap(),
        );
    }

    let mut first = Vec::new();
    for (user, _) in &users {
        first.push(backup_and_wait(&mut s, *user, None));
    }

    for (i, (user, name)) in users.iter().enumerate() {
        let vault = vaults[i];
        assert_eq!(first[i].vault, vault.id);
        let snapshots: Vec<SnapshotInfo> = vault.list(&mut s.ic, *user, None);
        assert_eq!(
            snapshots.len(),
            1,
            "{name}'s vault holds only {name}'s snapshot"
        );
        assert_eq!(snapshots[0].state, SnapshotState::Complete);
        assert_eq!(snapshots[0].source, s.app);
        // The user downloads their data and finds exactly their posts.
        let bytes = vault.download(&mut s.ic, *user, snapshots[0].id, 1000);
        let (profile, posts) = Decode!(&bytes, Option<User>, Vec<Post>).unwrap();
        assert_eq!(profile.unwrap().name, *name);
        assert_eq!(posts.len(), 5);
        assert!(
            posts.iter().all(|p| p.text.starts_with(name)),
            "only {name}'s posts: {posts:?}"
        );
    }

    // The app's admin (the app operator) can neither read nor delete a user's vault.
    let alice_vault = vaults[0];
    let (alice, _) = users[0];
    let (r,): (Result<Vec<SnapshotInfo>, VaultError>,) =
        s.ic.query_candid(
            alice_vault.id,
            s.admin,
            "list_snapshots",
            (None::<Principal>,),
        )
        .unwrap();
    assert_eq!(
        r,
        Err(VaultError::Unauthorized {
            caller: s.admin,
            needed: Role::Reader
        })
    );
    // An ingress update from a principal without the role is dropped by the vault's
    // `canister_inspect_message` (IC0406) before it executes.
    let refused =
        s.ic.update_candid::<_, (Result<(), VaultError>,)>(
            alice_vault.id,
            s.admin,
            "delete_snapshot",
            (first[0].last_backup.as_ref().unwrap().snapshot_id,),
        )
        .expect_err("the admin holds no role in the user's vault");
    assert!(format!("{refused:?}").contains("IC0406"), "{refused:?}");
    let err =
        s.ic.stop_canister(alice_vault.id, Some(s.admin))
            .expect_err("the admin is not a controller");
    assert!(err.message.contains("IC0512"), "{err}");
    assert!(s.ic.canister_exists(alice_vault.id));
    // The user can.
    let status = s.ic.canister_status(alice_vault.id, Some(alice)).unwrap();
    assert_eq!(status.settings.controllers, vec![alice]);

    // One more post: the next backup of alice's data sends only the changed chunk.
    let _: u64 = app_call(
        &mut s,
        alice,
        "post",
        Encode!(&"alice again".to_string()).unwrap(),
    );
    let second = backup_and_wait(
        &mut s,
        alice,
        first[0].last_backup.as_ref().map(|l| l.snapshot_id),
    );
    let last = second.last_backup.unwrap();
    assert_eq!(
        last.chunks_sent, 1,
        "a small data set changes in one 64 KiB chunk"
    );
    assert_eq!(alice_vault.list(&mut s.ic, alice, None).len(), 2);
}
