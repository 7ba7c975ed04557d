//! `backup now | status`, `vault create | status`, `snapshot list`, `restore`, and the
//! error sentences, end to end on the in-process IC through the CLI's command dispatch.

mod common;

use candid::{Encode, Principal};
use canvault_cli::transport::{HarnessTransport, Transport};
use canvault_factory_api::FactoryInit;
use common::{Env, harness, install, principal, run_with, stats};

#[test]
fn should_back_up_and_report_status_list_and_vault_gauges() {
    let env = Env::new(3);
    let app = env.app.to_text();
    let vault = env.vault.to_text();
    let out = env.run(&["backup", "status", "--app", &app]).unwrap();
    assert!(
        out.contains(&format!("vault {vault}")) && out.contains("0 backups"),
        "{out}"
    );

    let out = env.backup();
    assert!(
        out.starts_with(&format!(
            "backup of {app} complete: snapshot 0 in vault {vault}"
        )),
        "{out}"
    );
    let out = env.run(&["backup", "status", "--app", &app]).unwrap();
    assert!(
        out.contains("1 backups") && out.contains("last backup: snapshot 0"),
        "{out}"
    );

    env.fill(env.app, 1);
    let out = env.backup();
    assert!(out.contains("complete: snapshot 1"), "{out}");

    let list = env.run(&["snapshot", "list", "--vault", &vault]).unwrap();
    let rows: Vec<&str> = list.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(
        rows.iter()
            .all(|r| r.contains("complete") && r.contains(&app)),
        "{list}"
    );
    assert!(
        rows[1].trim_start().starts_with('1') && rows[1].contains("       0  "),
        "snapshot 1's parent is 0: {list}"
    );
    let filtered = env
        .run(&[
            "snapshot",
            "list",
            "--vault",
            &vault,
            "--source",
            &principal("nobody").to_text(),
        ])
        .unwrap();
    assert!(filtered.contains("holds no snapshots"), "{filtered}");

    let out = env.run(&["vault", "status", "--vault", &vault]).unwrap();
    assert!(
        out.contains("snapshots: 2 complete, 0 in progress, 0 failed"),
        "{out}"
    );
    assert!(out.contains("retention: keep last 10"), "{out}");

    let started = env
        .run(&["backup", "now", "--app", &app, "--no-wait"])
        .unwrap();
    assert!(started.contains("started"), "{started}");
    let e = env
        .run(&["backup", "now", "--app", &app])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("a backup is already in progress; wait for it to finish"),
        "{e}"
    );
}

#[test]
fn should_restore_into_a_fresh_canister_on_another_subnet() {
    let env = Env::new(4);
    env.backup();
    let image = env.image(env.app);
    let before = stats(&env.t, env.app);
    let fresh = env.fresh_app(2);
    let out = env
        .run(&[
            "restore",
            "0",
            "--vault",
            &env.vault.to_text(),
            "--to",
            &fresh.to_text(),
        ])
        .unwrap();
    assert!(
        out.starts_with(&format!("restored snapshot 0 into {fresh}")),
        "{out}"
    );
    assert_eq!(
        env.image(fresh),
        image,
        "the restored image is the backed-up one, byte for byte"
    );
    assert_eq!(
        stats(&env.t, fresh),
        before,
        "the restored app answers as before"
    );

    let e = env
        .run(&[
            "restore",
            "7",
            "--vault",
            &env.vault.to_text(),
            "--to",
            &fresh.to_text(),
        ])
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("snapshot 7 in vault {} does not exist", env.vault)),
        "{e}"
    );
}

#[test]
fn should_explain_refusals_missing_canisters_and_cycles_in_sentences() {
    let env = Env::new(1);
    env.backup();
    let stranger = env.t.as_caller(principal("stranger"));
    let vault = env.vault.to_text();
    let e = run_with(stranger.clone(), &["snapshot", "list", "--vault", &vault])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "the vault refused: {} is not an owner or reader of vault {vault} (ask an owner to grant you the Reader role)",
            principal("stranger")
        )
    );
    let e = run_with(
        stranger.clone(),
        &["backup", "now", "--app", &env.app.to_text()],
    )
    .unwrap_err()
    .to_string();
    // The kit's inspect_message drops a stranger's ingress (IC0406) before the method
    // would refuse it.
    assert!(
        e.starts_with(&format!(
            "the canvault kit of canister {} refused to start a backup",
            env.app
        )) || e.starts_with(&format!(
            "{} refused canvault_backup_now: you ({}) are not allowed",
            env.app,
            principal("stranger")
        )),
        "{e}"
    );
    assert!(
        e.contains("only the app's controllers") || e.contains("IC0406"),
        "{e}"
    );
    let e = run_with(
        stranger,
        &[
            "restore",
            "0",
            "--vault",
            &vault,
            "--to",
            &env.app.to_text(),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("is not an owner or reader"), "{e}");

    let missing = Principal::from_slice(&[9, 9, 9, 9, 9, 9, 9, 9, 1, 1]).to_text();
    let e = env
        .run(&["vault", "status", "--vault", &missing])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "canister {missing} does not exist on the in-process IC"
        )),
        "{e}"
    );
    let e = env
        .run(&["snapshot", "list", "--vault", &env.app.to_text()])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("has no method list_snapshots; is it the right canister?"),
        "{e}"
    );

    env.t.ic().borrow_mut().freeze_canister(env.app);
    let e = env
        .run(&["backup", "now", "--app", &env.app.to_text()])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!("canister {} is out of cycles", env.app)),
        "{e}"
    );

    let e = env
        .run(&["snapshot", "verify", "/nonexistent/x.canvault"])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("cannot open /nonexistent/x.canvault"), "{e}");
    let e = env
        .run(&["snapshot", "list", "--vault", "not-a-principal"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid value 'not-a-principal'"), "{e}");
}

/// Deploys the factory and uploads the vault module through the CLI.
fn factory(t: &HarnessTransport, subnet: Principal) -> Principal {
    let me = t.caller();
    let init = Encode!(&FactoryInit {
        admins: vec![me],
        config: None
    })
    .unwrap();
    let f = install(t, subnet, "canvault_factory", init);
    let status = run_with(t.clone(), &["factory", "status", "--factory", &f.to_text()]).unwrap();
    assert!(status.contains("current vault version: none"), "{status}");
    let module = ic_harness::canister_wasm_dir().join("canvault_vault.wasm");
    let args = [
        "factory",
        "upload-version",
        "--factory",
        &f.to_text(),
        "--wasm",
        module.to_str().unwrap(),
        "--label",
        "0.1.0",
    ];
    let out = run_with(t.clone(), &args).unwrap();
    assert!(
        out.starts_with("uploaded vault version 0.1.0") && out.contains("new vaults get it"),
        "{out}"
    );
    let e = run_with(t.as_caller(principal("stranger")), &args)
        .unwrap_err()
        .to_string();
    // Ingress from a non-admin is dropped by the factory's inspect_message (IC0406).
    assert!(
        e.contains("only the factory's admins") || e.contains("are not allowed"),
        "{e}"
    );
    let status = run_with(t.clone(), &["factory", "status", "--factory", &f.to_text()]).unwrap();
    assert!(status.contains("current vault version: 0.1.0"), "{status}");
    f
}

#[test]
fn should_create_a_vault_through_the_factory_paid_from_a_wallet() {
    let t = harness();
    let subnets = t.ic().borrow().topology().app_subnets;
    let f = factory(&t, subnets[0]);
    let wallet = install(
        &t,
        subnets[0],
        "canvault_cli_test_wallet",
        Encode!().unwrap(),
    );
    let app = install(&t, subnets[0], "canvault_example_app", Encode!().unwrap());
    let run = |args: &[&str]| run_with(t.clone(), args);
    let (app, subnet) = (app.to_text(), subnets[2].to_text());
    let (f, wallet) = (f.to_text(), wallet.to_text());
    let me = t.caller().to_text();
    let args = [
        "vault",
        "create",
        "--factory",
        &f,
        "--wallet",
        &wallet,
        "--app",
        &app,
        "--subnet",
        &subnet,
        "--owner",
        &me,
    ];
    let out = run(&args).unwrap();
    assert!(
        out.starts_with("created vault ") && out.contains(&format!("subnet {subnet}")),
        "{out}"
    );
    let created = out.split_whitespace().nth(2).unwrap().to_string();
    assert!(
        out.contains(&format!("writers {app}")),
        "the app is the writer: {out}"
    );

    let status = run(&["vault", "status", "--vault", &created]).unwrap();
    assert!(status.contains("snapshots: 0 complete"), "{status}");
    assert_eq!(
        t.ic()
            .borrow()
            .get_subnet(Principal::from_text(&created).unwrap()),
        Some(subnets[2])
    );

    let e = run(&[&args[..], &["--fee-cycles", "1"]].concat())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is out of cycles") && e.contains("raise --fee-cycles"),
        "{e}"
    );
    let stranger = t.as_caller(principal("stranger"));
    let e = run_with(stranger, &args).unwrap_err().to_string();
    assert!(e.contains("Only a controller of the wallet"), "{e}");
}

#[test]
fn dfx_json_declares_the_three_canisters_with_their_interfaces_and_modules() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dfx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("dfx.json")).unwrap()).unwrap();
    for (name, krate) in [
        ("factory", "canvault_factory"),
        ("vault", "canvault_vault"),
        ("example_app", "canvault_example_app"),
    ] {
        let c = &dfx["canisters"][name];
        assert_eq!(c["type"], "custom", "{name}");
        assert_eq!(c["build"], "scripts/build-wasm.sh", "{name}");
        let did = c["candid"].as_str().unwrap();
        assert!(root.join(did).exists(), "{name}: {did} exists");
        assert_eq!(
            c["wasm"],
            format!("target/wasm32-unknown-unknown/canister/{krate}.wasm"),
            "{name}"
        );
    }
}
