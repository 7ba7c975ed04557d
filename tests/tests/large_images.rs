//! Backup and restore of multi-GiB images, byte for byte, with the figures of issue #13
//! (rounds against the modelled floor, the largest kit execution, resident memory).
//! Long, so ignored by default; its last run's output is committed under
//! tests/bench-results/. Run it with:
//!
//! ```text
//! scripts/build-wasm.sh
//! CANVAULT_LARGE_GIB=4 cargo test --release -p canvault-scenarios --test large_images -- --ignored --nocapture
//! CANVAULT_LARGE_GIB=16 CANVAULT_LARGE_SHAPES=empty cargo test --release ...   (same)
//! ```
//!
//! `CANVAULT_LARGE_SHAPES` is a comma-separated list of `posts` (the example app's
//! posts), `random` (incompressible media) and `empty` (a reserved, all-zero image);
//! default `posts,random`. Three 4 GiB canisters fit in RAM here; beyond, set
//! `IC_HARNESS_STABLE_MEMORY_DIR` to keep stable memory on disk (much slower for the
//! example app's small accesses: docs/harness.md, "Storage modes").

use candid::Encode;
use canvault_protocol::vault_api::RestoreJobState;
use canvault_scenarios::app::AppScenario;
use canvault_scenarios::throughput::{floor_rounds, resident_memory};

const GIB: u64 = 1024 * 1024 * 1024;
const MIB: f64 = 1024.0 * 1024.0;

#[test]
#[ignore = "multi-GiB: minutes to hours; see the module documentation"]
fn multi_gib_images_back_up_and_restore_byte_for_byte() {
    let gib: u64 = std::env::var("CANVAULT_LARGE_GIB")
        .ok()
        .map_or(4, |v| v.parse().expect("CANVAULT_LARGE_GIB is a number"));
    let shapes = std::env::var("CANVAULT_LARGE_SHAPES").unwrap_or_else(|_| "posts,random".into());
    println!(
        "{gib} GiB images, 64 KiB chunks; stable memory {}",
        std::env::var("IC_HARNESS_STABLE_MEMORY_DIR")
            .map_or("in RAM".into(), |d| format!("on disk in {d}"))
    );
    println!(
        "| image | phase | MiB sent | rounds | floor | rounds / floor | largest kit execution | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for shape in shapes.split(',') {
        let mut s = AppScenario::new();
        let app = s.app;
        let stats = match shape {
            "random" => s.fill_with(app, "fill_media_to", gib * GIB, 2),
            "posts" => s.fill_with(app, "fill_to", gib * GIB, 1),
            // A thousand posts in a reserved, all-zero image: the chunk count of a large
            // image without its bytes (table work, root walks, zero chunks).
            "empty" => {
                s.ic.update_call(
                    app,
                    s.admin,
                    "add_posts",
                    Encode!(&1_000u32, &3u64).unwrap(),
                )
                .expect("admin adds posts");
                let (r,): (Result<canvault_scenarios::app::AppStats, candid::Reserved>,) =
                    s.ic.update_candid(app, s.admin, "reserve_to", (gib * GIB,))
                        .unwrap();
                r.expect("admin reserves")
            }
            other => panic!("unknown shape {other}: posts, random or empty"),
        };
        assert!(stats.image_bytes >= gib * GIB);
        let latency = s.ic.cross_subnet_latency_rounds();
        let vault = s.vault;

        s.ic.reset_metrics(app);
        let start = s.ic.rounds();
        let status = s.backup();
        let backup_rounds = s.ic.rounds() - start;
        let m = s.ic.metrics(app);
        row(
            shape,
            "full backup",
            m.bytes_sent,
            backup_rounds,
            latency,
            m.max_instructions_per_execution,
        );

        let last = status.last_backup.expect("complete").snapshot_id;
        let fresh = s.fresh_app_elsewhere();
        s.ic.reset_metrics(vault);
        s.ic.reset_metrics(fresh);
        let start = s.ic.rounds();
        let job = s.restore_into(fresh, last);
        assert_eq!(job.state, RestoreJobState::Done, "{job:?}");
        let restore_rounds = s.ic.rounds() - start;
        let sent = s.ic.metrics(vault).bytes_sent;
        let largest = s.ic.metrics(fresh).max_instructions_per_execution;
        row(shape, "restore", sent, restore_rounds, latency, largest);
        assert!(
            s.images_equal(app, fresh),
            "{shape}: the restored image equals the app's, byte for byte"
        );
        println!(
            "|  ↳ {shape}: restored image equal to the app's, byte for byte ({} bytes) | | | | | | | |",
            stats.image_bytes
        );
    }
}

fn row(shape: &str, phase: &str, bytes: u64, rounds: u64, latency: u64, largest: u64) {
    let floor = floor_rounds(bytes, latency);
    let (peak, _) = resident_memory();
    println!(
        "| {shape} | {phase} | {:.1} | {rounds} | {floor} | {:.2} | {largest} | {:.0} |",
        bytes as f64 / MIB,
        rounds as f64 / floor as f64,
        peak as f64 / MIB
    );
}
