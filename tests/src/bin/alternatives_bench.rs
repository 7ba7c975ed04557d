//! canvault side by side with today's alternatives, on the same image (a program that
//! prints figures and writes tests/bench-results/alternatives_bench.json).
//!
//! ```text
//! scripts/build-wasm.sh
//! cargo run --release -p canvault-scenarios --bin alternatives_bench -- [SIZE_MIB]   (default 256)
//! ```
//!
//! The example app is filled with SIZE_MIB of articles (text-dense). canvault: the kit's
//! full backup (subnet A to the vault on B), an incremental backup after the most recent
//! 1% of posts are edited, a restore into a fresh app on C; and the vault's whole-canister
//! backup and fork of `tests/alt-app` holding the image on its heap. Today's
//! alternatives (`canvault_cli::demo::alternatives`), each from a fresh alt-app holding
//! the same image on A to a canister on B, each copy verified against the image: manual
//! native snapshots, Distrikt-style `pre_upgrade` serialisation, a naive push.

use candid::Encode;
use canvault_cli::demo::alternatives::{self, ALT_APP, Meter, PathCost};
use canvault_cli::demo::comparison::{
    Comparison, KIT_BACKUP_STEPS, KIT_RESTORE_STEPS, KIT_VERIFIES,
};
use canvault_protocol::canister_image::{
    CanisterBackupRequest, Consistency, RestoreCanisterRequest,
};
use canvault_scenarios::app::AppScenario;
use canvault_scenarios::bench_results::{BenchResults, Format, Table, column};
use canvault_scenarios::whole_canister::vault_job;
use canvault_scenarios::{install, wasm};
use ic_management_canister_types::CanisterSettings;
use serde_json::Value;

const MIB: u64 = 1024 * 1024;

fn kit(meter: &Meter, s: &AppScenario, path: &str, bytes: u64, steps: u64) -> PathCost {
    PathCost {
        bytes_moved: bytes,
        operator_steps: steps,
        ..meter.cost(&s.ic, path, KIT_VERIFIES)
    }
}

/// The vault's whole-canister backup of alt-app holding `image`, and its fork onto C
/// (verified against `image`).
fn whole_canister(s: &mut AppScenario, image: &[u8]) -> (PathCost, PathCost) {
    let subnets = s.ic.topology().app_subnets;
    let (admin, vault) = (s.admin, s.vault);
    let controlled = || CanisterSettings {
        controllers: Some(vec![admin, vault]),
        ..Default::default()
    };
    let app = alternatives::install_alt_app(&mut s.ic, admin, subnets[0], &wasm(ALT_APP), image)
        .expect("alt-app with the image");
    s.ic.update_canister_settings(app, Some(admin), controlled())
        .expect("the vault controls the app");
    let meter = Meter::start(&s.ic, &[app], &[vault]);
    let request = CanisterBackupRequest {
        canister: app,
        consistency: Consistency::StopTakeStart,
        label: None,
    };
    let client = s.vault_client();
    let (job, down) = vault_job(
        &mut s.ic,
        client,
        admin,
        ("backup_canister", request),
        "canister_backup_status",
        app,
    );
    let backup = PathCost {
        bytes_moved: job.bytes,
        downtime_rounds: down,
        operator_steps: 1,
        ..meter.cost(
            &s.ic,
            "canvault vault: whole-canister backup (stop, take, start, read)",
            KIT_VERIFIES,
        )
    };
    let fork =
        s.ic.create_canister_on_subnet(Some(admin), Some(controlled()), subnets[2]);
    let meter = Meter::start(&s.ic, &[fork], &[vault]);
    let request = RestoreCanisterRequest {
        snapshot_id: job.snapshot_id.expect("a snapshot"),
        target: fork,
    };
    let (job, _) = vault_job(
        &mut s.ic,
        client,
        admin,
        ("restore_canister", request),
        "canister_restore_status",
        fork,
    );
    let restore = PathCost {
        bytes_moved: job.bytes,
        operator_steps: 1,
        ..meter.cost(
            &s.ic,
            "canvault vault: fork onto C (upload, load, read back, start)",
            "SHA-256 per chunk + root; the loaded copy read back",
        )
    };
    alternatives::verify_copy(&mut s.ic, admin, fork, image, false, "whole-canister fork")
        .unwrap_or_else(|e| panic!("{e}"));
    (backup, restore)
}

fn rows<T: serde::Serialize>(items: &[T]) -> Vec<serde_json::Map<String, Value>> {
    items
        .iter()
        .map(|i| match serde_json::to_value(i).expect("serialises") {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size_mib: u64 = args
        .first()
        .map_or(256, |a| a.parse().expect("SIZE_MIB is a number"));
    let mut s = AppScenario::new();
    let (app, vault, admin) = (s.app, s.vault, s.admin);
    // SIZE_MIB of articles on top of what the empty app's image already holds.
    let empty = s.stats(app).image_bytes;
    let stats = s.fill_with(app, "fill_articles_to", empty + size_mib * MIB, 1);
    let image = s.app_image(app);

    let meter = Meter::start(&s.ic, &[app], &[vault]);
    let status = s.backup();
    let sent = |st: &canvault_kit::KitStatus| st.last_backup.as_ref().map_or(0, |b| b.bytes_sent);
    let full = kit(
        &meter,
        &s,
        "canvault kit: full backup",
        sent(&status),
        KIT_BACKUP_STEPS,
    );

    let count = (stats.posts / 100).max(1);
    s.ic.update_call(
        app,
        admin,
        "edit_posts",
        Encode!(&(stats.posts - count), &count, &5u64).unwrap(),
    )
    .expect("edit the most recent 1% of posts");
    let meter = Meter::start(&s.ic, &[app], &[vault]);
    let status = s.backup();
    let incremental = kit(
        &meter,
        &s,
        "canvault kit: incremental backup after 1% changed",
        sent(&status),
        KIT_BACKUP_STEPS,
    );

    let last = status.last_backup.expect("a backup").snapshot_id;
    let fresh = install(
        &mut s.ic,
        2,
        "canvault_example_app",
        Encode!().unwrap(),
        admin,
    );
    let meter = Meter::start(&s.ic, &[fresh], &[vault]);
    let job = s.restore_into(fresh, last);
    assert!(
        s.app_image(fresh) == s.app_image(app),
        "the restored image is byte-identical"
    );
    let restore = kit(
        &meter,
        &s,
        "canvault kit: restore",
        job.bytes_sent,
        KIT_RESTORE_STEPS,
    );

    let (whole_backup, whole_fork) = whole_canister(&mut s, &image);
    let whole_copy = whole_backup.then(&whole_fork, "canvault vault: whole-canister backup + fork");

    let subnets = s.ic.topology().app_subnets;
    let alts = alternatives::run_all(
        &mut s.ic,
        admin,
        (subnets[0], subnets[1]),
        &wasm(ALT_APP),
        &image,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let comparison = Comparison::new(
        image.len() as u64,
        [full, incremental, restore],
        vec![whole_backup, whole_fork, whole_copy],
        alts,
    );
    println!(
        "example app filled with {size_mib} MiB of articles: image {:.1} MiB, {} posts",
        image.len() as f64 / MIB as f64,
        stats.posts
    );
    println!("{}", comparison.render());

    let mut results = BenchResults::new(
        "alternatives_bench",
        &args,
        vec![
            ("size_mib", Value::from(size_mib)),
            ("image_bytes", Value::from(comparison.image_bytes)),
            ("posts", Value::from(stats.posts)),
            ("slice_bytes", Value::from(alternatives::SLICE)),
            ("push_window", Value::from(alternatives::PUSH_WINDOW)),
        ],
    );
    let paths: Vec<PathCost> = comparison
        .canvault
        .iter()
        .chain(&comparison.alternatives)
        .cloned()
        .collect();
    results.tables.push(Table {
        name: "paths".into(),
        columns: vec![
            column("path", "path", Format::Text),
            column("app_cycles", "app (B cycles)", Format::BCycles3),
            column("receiver_cycles", "vault/receiver (B)", Format::BCycles3),
            column("operator_cycles", "operator ingress (B)", Format::BCycles3),
            column("total_cycles", "total (B)", Format::BCycles3),
            column("bytes_moved", "MiB moved", Format::Mib1),
            column("rounds", "rounds (≈ s)", Format::Int),
            column("downtime_rounds", "downtime rounds", Format::Int),
            column("operator_steps", "operator ingress msgs", Format::Int),
            column("verifies", "verifies", Format::Text),
        ],
        rows: rows(&paths),
    });
    results.tables.push(Table {
        name: "ratios".into(),
        columns: vec![
            column("alternative", "canvault ÷ alternative", Format::Text),
            column("copy_cycles", "copy: cycles", Format::Dec3),
            column("copy_bytes", "copy: bytes", Format::Dec3),
            column("copy_rounds", "copy: rounds", Format::Dec3),
            column(
                "incremental_cycles",
                "after 1% changed: cycles",
                Format::Dec4,
            ),
        ],
        rows: rows(&comparison.ratios),
    });
    results.write();
}
