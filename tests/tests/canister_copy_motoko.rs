//! A real Motoko canister through the vault: `crates/ic-harness/test-canisters/motoko/store.mo`,
//! compiled by moc from the `motoko` npm package with its default settings (a 64-bit
//! `persistent actor` with enhanced orthogonal persistence), runs on subnet A; a vault
//! on subnet B copies it whole through a native snapshot; it is deleted and restored
//! onto a fresh canister on subnet C, which answers as before (stable and transient
//! state: a snapshot load is not an upgrade, so even transient variables come back).
//!
//! `moc.js` installs the package into `<target>/motoko` on first use and caches the
//! module there; the test is skipped, with a message, only when `npm` is missing.

use candid::{Nat, Principal};
use canvault_protocol::canister_image::{
    CanisterBackupRequest, CanisterJob, CanisterJobState, Consistency, RestoreCanisterRequest,
};
use canvault_protocol::vault_api::{SnapshotKind, VaultInit};
use canvault_scenarios::principal;
use canvault_scenarios::vault::VaultClient;
use ic_harness::Harness;
use ic_management_canister_types::CanisterSettings;

/// The compiled store canister, or `None` (with a message) when npm is not installed.
fn store_wasm() -> Option<Vec<u8>> {
    ic_harness::motoko::compile(std::path::Path::new(ic_harness::motoko::STORE_SOURCE))
}

type Answers = ((Nat, Nat, Nat), Vec<Option<Nat>>);

fn answers(ic: &mut Harness, store: Principal, caller: Principal) -> Answers {
    let counters: (Nat, Nat, Nat) = ic
        .query_candid(store, caller, "counters", ())
        .expect("counters");
    let gets = (0..40u32)
        .map(|i| {
            let (v,): (Option<Nat>,) = ic
                .query_candid(store, caller, "get", (format!("key-{i}"),))
                .expect("get");
            v
        })
        .collect();
    (counters, gets)
}

#[test]
fn a_motoko_persistent_actor_is_backed_up_by_the_vault_and_restored_on_another_subnet() {
    let Some(wasm) = store_wasm() else { return };
    let mut ic = canvault_scenarios::harness(3);
    let owner = principal("owner");
    let vault = VaultClient::install(
        &mut ic,
        1,
        &VaultInit {
            owners: vec![owner],
            ..Default::default()
        },
        owner,
    );
    let [a, _, c] = {
        let s = ic.topology().app_subnets;
        [s[0], s[1], s[2]]
    };
    let controlled = || CanisterSettings {
        controllers: Some(vec![owner, vault.id]),
        ..Default::default()
    };
    let store = ic.create_canister_on_subnet(Some(owner), Some(controlled()), a);
    ic.install_canister(store, wasm, candid::encode_args(()).unwrap(), Some(owner));
    for i in 0..40u32 {
        let (_,): (Nat,) = ic
            .update_candid(store, owner, "put", (format!("key-{i}"), Nat::from(i * i)))
            .expect("put");
    }
    let before = answers(&mut ic, store, owner);
    assert_eq!(
        before.0,
        (Nat::from(40u32), Nat::from(40u32), Nat::from(40u32))
    );

    let req = CanisterBackupRequest {
        canister: store,
        consistency: Consistency::StopTakeStart,
        label: Some("motoko".into()),
    };
    let job: CanisterJob = vault
        .call(&mut ic, owner, "backup_canister", (req,))
        .expect("backup_canister");
    let job = vault.wait_canister_job(&mut ic, owner, job.id, "canister_backup_status");
    assert_eq!(job.state, CanisterJobState::Done, "{job:?}");
    let snapshot = job.snapshot_id.expect("a snapshot");
    let info = vault.snapshot(&mut ic, owner, snapshot).expect("info");
    let Some(SnapshotKind::WholeCanister(layout)) = info.kind else {
        panic!("kind {:?}", info.kind)
    };
    assert!(
        layout.wasm_memory_bytes > 0 && layout.wasm_module_bytes > 0,
        "the 64-bit heap and the module are copied: {layout:?}"
    );

    ic.stop_canister(store, Some(owner)).expect("stop");
    ic.delete_canister(store, Some(owner)).expect("delete");
    let fork = ic.create_canister_on_subnet(Some(owner), Some(controlled()), c);
    let req = RestoreCanisterRequest {
        snapshot_id: snapshot,
        target: fork,
    };
    let job: CanisterJob = vault
        .call(&mut ic, owner, "restore_canister", (req,))
        .expect("restore_canister");
    let job = vault.wait_canister_job(&mut ic, owner, job.id, "canister_restore_status");
    assert_eq!(job.state, CanisterJobState::Done, "{job:?}");
    assert_eq!(ic.get_subnet(fork), Some(c));
    assert_eq!(
        answers(&mut ic, fork, owner),
        before,
        "the fork answers as the original"
    );

    // The fork is a live Motoko canister: it takes writes and keeps its stable state.
    let (writes,): (Nat,) = ic
        .update_candid(fork, owner, "put", ("after".to_string(), Nat::from(1u32)))
        .expect("put on the fork");
    assert_eq!(writes, Nat::from(41u32));
}
