//! `protect`, `backup canister` and the whole-canister `restore`, end to end on the
//! in-process IC through the CLI's command dispatch: a heap-only canister that knows
//! nothing of canvault (tests/heap-app) is protected, copied into a vault on another
//! subnet, deleted, and restored into a fresh canister on a third subnet.

mod common;

use candid::{Encode, Principal};
use canvault_cli::transport::Transport;
use canvault_protocol::vault_api::VaultInit;
use common::{Env, arg, harness, install, principal, run_with};
use ic_management_canister_types::CanisterSettings;
use serde_bytes::ByteBuf;

/// The heap app's digest: entries, value bytes, SHA-256.
fn digest(env: &Env, app: Principal) -> (u64, u64, ByteBuf) {
    let r = env.t.query(app, "digest", Encode!().unwrap()).unwrap();
    candid::decode_args(&r).unwrap()
}

/// A heap app on subnet A, filled; a vault on subnet B owned by the operator.
fn setup() -> (Env, Principal, Principal) {
    let t = harness();
    let subnets = t.ic().borrow().topology().app_subnets;
    let app = install(&t, subnets[0], "heap_app", Encode!().unwrap());
    let init = VaultInit {
        owners: vec![t.caller()],
        ..VaultInit::default()
    };
    let vault = install(&t, subnets[1], "canvault_vault", Encode!(&init).unwrap());
    t.update(app, "fill", Encode!(&7u64, &300u32, &3000u32).unwrap())
        .unwrap();
    let env = Env {
        t,
        app,
        vault,
        subnets,
    };
    (env, app, vault)
}

fn controllers(env: &Env, canister: Principal) -> Vec<Principal> {
    let ic = env.t.ic();
    let status = ic
        .borrow_mut()
        .canister_status(canister, Some(env.t.caller()))
        .unwrap();
    status.settings.controllers
}

#[test]
fn protect_shows_the_change_and_applies_it_only_when_confirmed() {
    let (env, app, vault) = setup();
    let (a, v) = (app.to_text(), vault.to_text());
    let out = env.run(&["protect", &a, "--vault", &v]).unwrap();
    assert!(
        out.contains(&format!("vault {v} will become a controller of {a}"))
            && out.contains("Nothing changed: run it again with --yes"),
        "{out}"
    );
    assert!(
        !controllers(&env, app).contains(&vault),
        "a dry run changes nothing"
    );

    let out = env.run(&["protect", &a, "--vault", &v, "--yes"]).unwrap();
    assert!(
        out.contains(&format!("done: {v} is a controller of {a}")),
        "{out}"
    );
    let now = controllers(&env, app);
    assert!(
        now.contains(&vault) && now.contains(&env.t.caller()),
        "the vault is added, the operator stays: {now:?}"
    );
    let out = env.run(&["protect", &a, "--vault", &v, "--yes"]).unwrap();
    assert!(out.contains("already a controller"), "{out}");
    assert_eq!(controllers(&env, app).len(), now.len(), "idempotent");
}

#[test]
fn protect_refuses_a_caller_who_is_not_a_controller() {
    let (env, app, vault) = setup();
    let stranger = env.t.as_caller(principal("stranger"));
    let err = run_with(
        stranger,
        &[
            "protect",
            &app.to_text(),
            "--vault",
            &vault.to_text(),
            "--yes",
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("canister_status") || err.contains("not allowed"),
        "{err}"
    );
    assert!(!controllers(&env, app).contains(&vault));
}

#[test]
fn a_protected_heap_canister_is_backed_up_deleted_and_restored_on_another_subnet() {
    let (env, app, vault) = setup();
    let (a, v) = (app.to_text(), vault.to_text());
    let before = digest(&env, app);
    assert!(before.0 == 300, "filled: {before:?}");

    // Not protected yet: the vault cannot stop or snapshot the app.
    let err = env
        .run(&["backup", "canister", &a, "--vault", &v])
        .unwrap_err()
        .to_string();
    assert!(err.contains(&v), "the vault's refusal names it: {err}");

    env.run(&["protect", &a, "--vault", &v, "--yes"]).unwrap();
    let out = env.run(&["backup", "canister", &a, "--vault", &v]).unwrap();
    assert!(
        out.starts_with(&format!(
            "backup of {a} complete: whole-canister snapshot 0 in vault {v}"
        )),
        "{out}"
    );
    let list = env.run(&["snapshot", "list", "--vault", &v]).unwrap();
    assert!(
        list.contains("whole canister"),
        "the listing says the kind: {list}"
    );

    // Off-chain: the snapshot downloads to a file, exports to the directory
    // `icp canister snapshot upload` reads, and imports back to the very same image.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("heap.cvsnap");
    env.download(vault, 0, &file);
    let native = dir.path().join("native");
    let out = env
        .run(&["snapshot", "export", arg(&file), "--dir", arg(&native)])
        .unwrap();
    assert!(out.contains("wasm_module.bin"), "{out}");
    let module = std::fs::read(native.join("wasm_module.bin")).unwrap();
    assert!(
        module == common::wasm("heap_app"),
        "the module is the installed one"
    );
    let heap = std::fs::metadata(native.join("wasm_memory.bin"))
        .unwrap()
        .len();
    assert!(
        heap >= 300 * 3000,
        "the heap holds the values: {heap} bytes"
    );
    assert!(
        !native.join("stable_memory.bin").exists(),
        "no stable memory file for a canister without stable memory, as icp-cli writes it"
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(native.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(metadata["wasm_memory_size"], heap, "{metadata}");
    let again = dir.path().join("again.cvsnap");
    env.run(&[
        "snapshot",
        "import",
        arg(&native),
        "-o",
        arg(&again),
        "--source",
        &a,
    ])
    .unwrap();
    let root = |f: &std::path::Path| {
        let out = env.run(&["snapshot", "verify", arg(f)]).unwrap();
        out.split_whitespace()
            .find(|w| w.len() == 64 && w.chars().all(|c| c.is_ascii_hexdigit()))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("a root in {out}"))
    };
    assert_eq!(
        root(&again),
        root(&file),
        "import rebuilds the image the vault stored"
    );
    let err = env
        .run(&["snapshot", "upload", arg(&again), "--vault", &v])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("whole-canister snapshot"),
        "a whole canister is never uploaded as a kit image: {err}"
    );

    // A tampered directory is refused with the file named, and nothing is written.
    let heap_file = native.join("wasm_memory.bin");
    let heap_bytes = std::fs::read(&heap_file).unwrap();
    std::fs::write(&heap_file, &heap_bytes[..heap_bytes.len() - 1]).unwrap();
    let bad = dir.path().join("bad.cvsnap");
    let err = env
        .run(&[
            "snapshot",
            "import",
            arg(&native),
            "-o",
            arg(&bad),
            "--source",
            &a,
        ])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("wasm_memory.bin") && err.contains("metadata.json says"),
        "{err}"
    );
    assert!(!bad.exists(), "nothing written");

    // The app is deleted; a fresh canister on subnet C, controlled by the operator and
    // the vault, receives the snapshot.
    {
        let ic = env.t.ic();
        let mut ic = ic.borrow_mut();
        ic.stop_canister(app, Some(env.t.caller())).unwrap();
        ic.delete_canister(app, Some(env.t.caller())).unwrap();
    }
    let fork = {
        let ic = env.t.ic();
        let mut ic = ic.borrow_mut();
        let settings = CanisterSettings {
            controllers: Some(vec![env.t.caller(), vault]),
            ..CanisterSettings::default()
        };
        ic.create_canister_on_subnet(Some(env.t.caller()), Some(settings), env.subnets[2])
    };
    let out = env
        .run(&["restore", "0", "--vault", &v, "--to", &fork.to_text()])
        .unwrap();
    assert!(
        out.starts_with(&format!("restored whole-canister snapshot 0 into {fork}"))
            && out.contains("matched the stored root"),
        "{out}"
    );
    assert!(
        digest(&env, fork) == before,
        "the fork answers as the app did"
    );
}

#[test]
fn backup_canister_checks_a_native_snapshot_id_before_calling() {
    let (env, app, vault) = setup();
    for bad in ["zz", ""] {
        let err = env
            .run(&[
                "backup",
                "canister",
                &app.to_text(),
                "--vault",
                &vault.to_text(),
                "--snapshot",
                bad,
            ])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--snapshot"), "{err}");
    }
}

#[test]
fn protect_every_sets_the_vaults_schedule_only_when_confirmed() {
    let (env, app, vault) = setup();
    let (a, v) = (app.to_text(), vault.to_text());
    let schedules = || -> usize {
        let r = env
            .t
            .query(vault, "list_canister_schedules", Encode!().unwrap())
            .unwrap();
        let list: Result<
            Vec<canvault_protocol::canister_image::CanisterScheduleInfo>,
            candid::Reserved,
        > = candid::decode_one(&r).unwrap();
        list.unwrap().len()
    };
    let out = env
        .run(&["protect", &a, "--vault", &v, "--every", "3600"])
        .unwrap();
    assert!(
        out.contains("every 3600s") && out.contains("Nothing changed"),
        "{out}"
    );
    assert_eq!(schedules(), 0, "a dry run schedules nothing");
    let out = env
        .run(&["protect", &a, "--vault", &v, "--every", "3600", "--yes"])
        .unwrap();
    assert!(out.contains("scheduled: the vault backs"), "{out}");
    assert_eq!(schedules(), 1);
    let err = env
        .run(&["protect", &a, "--vault", &v, "--viewer", "--every", "3600"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--every") || err.contains("cannot be used"),
        "{err}"
    );
}
