//! canvault's backup benchmark (a program that prints figures, not a timed test).
//!
//! ```text
//! scripts/build-wasm.sh
//! cargo run --release -p canvault-scenarios --bin backup_bench -- [SIZE_MIB] [CHUNK_KIB]   (default 1024 64)
//! ```
//!
//! For four images of SIZE_MIB — the example app filled with posts, the example app
//! filled with articles (long-form posts: text-dense), incompressible media, and a
//! mostly-empty image — it measures a full backup, an incremental backup after 1% of
//! the data changed, and a restore into a fresh canister on a third subnet: bytes sent,
//! cycles charged (the harness's 13-node fee model, every canister involved), rounds,
//! source instructions per MiB and the largest single execution. Each cost is compared
//! with the naive baseline: every byte of the image sent uncompressed once, in
//! 2,000,000-byte calls (about 1.07T cycles per GiB). Writes
//! tests/bench-results/backup_bench.json (docs/benchmarks.md's table; no wall-clock
//! figures in it).

use std::time::Instant;

use candid::{Encode, Principal};
use canvault_scenarios::app::{AppScenario, AppStats};
use canvault_scenarios::bench_results::{BenchResults, Format, Table, column, row};
use ic_harness::CanisterMetrics;
use serde_json::{Map, Value};

const MIB: u64 = 1024 * 1024;
// Default chunk size of this benchmark: see docs/benchmarks.md for 64 KiB vs 1 MiB.

/// Cycles of the naive baseline for `bytes`: 1,000 per byte plus, per 2,000,000-byte
/// call, the call fee (260,000) and the receiver's execution base fee (5,000,000).
fn baseline_cycles(bytes: u64) -> u128 {
    let calls = u128::from(bytes.div_ceil(2_000_000));
    u128::from(bytes) * 1_000 + calls * (260_000 + 5_000_000)
}

struct Measured {
    burned: ic_harness::CyclesBurned,
    bytes_sent: u64,
    cycles: u128,
    rounds: u64,
    source_instructions: u64,
    max_execution: u64,
    wall_secs: f64,
}

/// Runs `f`, measuring the canisters involved; `source` is the one whose instructions count.
fn measure(
    s: &mut AppScenario,
    involved: &[Principal],
    source: Principal,
    f: impl FnOnce(&mut AppScenario),
) -> Measured {
    for c in involved {
        s.ic.reset_metrics(*c);
    }
    let rounds = s.ic.rounds();
    let started = Instant::now();
    f(s);
    let metrics: Vec<(Principal, CanisterMetrics)> =
        involved.iter().map(|c| (*c, s.ic.metrics(*c))).collect();
    let src = &metrics
        .iter()
        .find(|(c, _)| *c == source)
        .expect("source is involved")
        .1;
    let mut burned = ic_harness::CyclesBurned::default();
    for (_, m) in &metrics {
        let c = &m.cycles_burned;
        burned.execution += c.execution;
        burned.instructions += c.instructions;
        burned.calls += c.calls;
        burned.bytes += c.bytes;
        burned.ingress += c.ingress;
        burned.storage += c.storage;
    }
    Measured {
        burned,
        bytes_sent: metrics.iter().map(|(_, m)| m.bytes_sent).sum(),
        cycles: metrics.iter().map(|(_, m)| m.cycles_burned.total()).sum(),
        rounds: s.ic.rounds() - rounds,
        source_instructions: src.instructions,
        max_execution: src.max_instructions_per_execution,
        wall_secs: started.elapsed().as_secs_f64(),
    }
}

fn call(s: &mut AppScenario, method: &str, arg: Vec<u8>) {
    let app = s.app;
    let admin = s.admin;
    s.ic.update_call(app, admin, method, arg)
        .unwrap_or_else(|r| panic!("{method}: {r}"));
}

fn fill(s: &mut AppScenario, shape: &str, bytes: u64) -> AppStats {
    let app = s.app;
    match shape {
        "example app, posts" => s.fill_with(app, "fill_to", bytes, 1),
        "example app, articles" => s.fill_with(app, "fill_articles_to", bytes, 1),
        "random" => s.fill_with(app, "fill_media_to", bytes, 2),
        _ => {
            call(s, "add_posts", Encode!(&1_000u32, &3u64).unwrap());
            let (r,): (Result<AppStats, candid::Reserved>,) =
                s.ic.update_candid(s.app, s.admin, "reserve_to", (bytes,))
                    .unwrap();
            r.expect("admin reserves")
        }
    }
}

/// Changes 1% of the data: the most recent 1% of posts are edited (users edit what they
/// just wrote); for the media image, 1% more media is appended.
fn change_one_percent(s: &mut AppScenario, shape: &str, stats: &AppStats) {
    if shape == "random" {
        let (r,): (Result<AppStats, candid::Reserved>,) =
            s.ic.update_candid(
                s.app,
                s.admin,
                "fill_media_to",
                (stats.image_bytes + stats.image_bytes / 100, 4u64),
            )
            .unwrap();
        r.expect("admin fills");
        return;
    }
    let count = (stats.posts / 100).max(1);
    call(
        s,
        "edit_posts",
        Encode!(&(stats.posts - count), &count, &5u64).unwrap(),
    );
}

/// The JSON row of a phase (no wall-clock figure).
fn json_row(shape: &str, phase: &str, image: u64, m: &Measured) -> Map<String, Value> {
    let b = &m.burned;
    let n = |x: u128| Value::from(u64::try_from(x).unwrap_or(u64::MAX));
    row(vec![
        ("image", Value::from(shape)),
        ("phase", Value::from(phase)),
        ("label", Value::from(format!("{shape}: {phase}"))),
        ("image_bytes", Value::from(image)),
        ("bytes_sent", Value::from(m.bytes_sent)),
        ("cycles", n(m.cycles)),
        (
            "of_baseline",
            Value::from(m.cycles as f64 / baseline_cycles(image) as f64),
        ),
        ("rounds", Value::from(m.rounds)),
        (
            "kit_instructions_per_mib",
            Value::from(m.source_instructions / (image / MIB).max(1)),
        ),
        ("largest_execution", Value::from(m.max_execution)),
        ("cycles_bytes", n(b.bytes)),
        ("cycles_instructions", n(b.instructions)),
        ("cycles_execution", n(b.execution)),
        ("cycles_calls", n(b.calls)),
        ("cycles_storage", n(b.storage)),
    ])
}

fn row_line(label: &str, image: u64, m: &Measured) {
    let base = baseline_cycles(image);
    println!(
        "| {label} | {:.1} | {:.3} | {:.1}% | {} | {} | {:.2e} | {:.1} |",
        m.bytes_sent as f64 / MIB as f64,
        m.cycles as f64 / 1e12,
        m.cycles as f64 * 100.0 / base as f64,
        m.rounds,
        m.source_instructions / (image / MIB).max(1),
        m.max_execution,
        m.wall_secs,
    );
}

fn breakdown(m: &Measured) {
    let b = &m.burned;
    let g = |x: u128| x as f64 / 1e9;
    println!(
        "|  ↳ cycles by category (B) | bytes {:.2} · instructions {:.2} · execution {:.2} · calls {:.2} · storage {:.2} | | | | | | |",
        g(b.bytes),
        g(b.instructions),
        g(b.execution),
        g(b.calls),
        g(b.storage)
    );
}

fn main() {
    let size_mib: u64 = std::env::args()
        .nth(1)
        .map_or(1024, |a| a.parse().expect("SIZE_MIB is a number"));
    let chunk_kib: u32 = std::env::args()
        .nth(2)
        .map_or(64, |a| a.parse().expect("CHUNK_KIB is a number"));
    let bytes = size_mib * MIB;
    println!(
        "canvault backup benchmark: images of {size_mib} MiB, {chunk_kib} KiB chunks, deflate frames; harness fee model of a 13-node subnet"
    );
    println!(
        "baseline (every byte sent uncompressed once): {:.3}T cycles\n",
        baseline_cycles(bytes) as f64 / 1e12
    );
    println!(
        "| image, phase | MiB sent | T cycles | % of baseline | rounds | source instr/MiB | largest execution | wall s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for shape in [
        "example app, posts",
        "example app, articles",
        "random",
        "mostly empty",
    ] {
        let mut s = AppScenario::new();
        let config = canvault_kit::KitConfig {
            chunk_size: Some(chunk_kib * 1024),
            ..Default::default()
        };
        let (r,): (Result<(), canvault_kit::KitError>,) =
            s.ic.update_candid(s.app, s.admin, "canvault_configure", (config,))
                .unwrap();
        r.expect("chunk size accepted");
        let stats = fill(&mut s, shape, bytes);
        let image = stats.image_bytes;
        let raw = s.app_image(s.app);
        let data_chunks = raw
            .chunks(chunk_kib as usize * 1024)
            .filter(|c| c.iter().any(|b| *b != 0))
            .count();
        println!(
            "| {shape}: image {:.1} MiB, {data_chunks} non-zero chunks | | | | | | | |",
            image as f64 / MIB as f64
        );
        let (app, vault) = (s.app, s.vault);
        let full = measure(&mut s, &[app, vault], app, |s| {
            s.backup();
        });
        row_line(&format!("{shape}, full backup"), image, &full);
        rows.push(json_row(shape, "full backup", image, &full));
        breakdown(&full);
        change_one_percent(&mut s, shape, &stats);
        let inc = measure(&mut s, &[app, vault], app, |s| {
            s.backup();
        });
        row_line(
            &format!("{shape}, incremental after 1% changed"),
            image,
            &inc,
        );
        rows.push(json_row(shape, "incremental after 1% changed", image, &inc));
        breakdown(&inc);
        println!(
            "|  ↳ incremental / full | {:.2}% of the cycles | | | | | | |",
            inc.cycles as f64 * 100.0 / full.cycles as f64
        );
        let last = s.kit_status(app).last_backup.expect("complete").snapshot_id;
        let fresh = s.fresh_app_elsewhere();
        let restore = measure(&mut s, &[vault, fresh], fresh, |s| {
            let job = s.restore_into(fresh, last);
            assert_eq!(
                job.state,
                canvault_protocol::vault_api::RestoreJobState::Done,
                "{job:?}"
            );
        });
        assert_eq!(
            s.app_image(fresh),
            s.app_image(app),
            "restored image is byte-identical"
        );
        row_line(&format!("{shape}, restore"), image, &restore);
        rows.push(json_row(shape, "restore", image, &restore));
    }
    println!(
        "\nsource instr/MiB: instructions of the app (kit) canister per MiB of image (restore: of the target);"
    );
    println!(
        "largest execution: the largest single message execution of that canister in the phase."
    );
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut results = BenchResults::new(
        "backup_bench",
        &args,
        vec![
            ("size_mib", Value::from(size_mib)),
            ("chunk_kib", Value::from(chunk_kib)),
            (
                "baseline_cycles",
                Value::from(u64::try_from(baseline_cycles(bytes)).unwrap_or(u64::MAX)),
            ),
        ],
    );
    results.tables.push(Table {
        name: "phases".into(),
        columns: vec![
            column("label", "image, phase", Format::Text),
            column("bytes_sent", "MiB sent", Format::Mib1),
            column("cycles", "cycles (T)", Format::TCycles3),
            column("of_baseline", "% of baseline", Format::Percent1),
            column("rounds", "rounds", Format::Int),
            column("kit_instructions_per_mib", "kit instr/MiB", Format::Int),
            column("largest_execution", "largest execution", Format::Int),
        ],
        rows,
    });
    results.write();
}
