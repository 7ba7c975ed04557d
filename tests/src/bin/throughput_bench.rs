//! Throughput of a backup and a restore against the floor the modelled network allows,
//! and what a backup does to the app's own update latency (a program that prints
//! figures, not a timed test).
//!
//! ```text
//! scripts/build-wasm.sh
//! cargo run --release -p canvault-scenarios --bin throughput_bench -- [SIZE_MIB]   (default 1024)
//! ```
//!
//! For the example app filled with posts and for incompressible media, it measures a
//! full backup (app on subnet 1, vault on subnet 2) and a restore into a fresh canister on
//! subnet 3, in rounds, next to the **floor**: the rounds the harness's cross-subnet model
//! needs at the least to carry the same bytes, computed from its limits:
//!
//! ```text
//! floor = ceil(request bytes / block payload) + 3 round trips
//! round trip = 2 × one-way latency + 1 round of execution
//! ```
//!
//! (one block of `MAX_BLOCK_PAYLOAD_BYTES` per round carries the stream; three exchanges
//! are sequential whatever the pipeline: begin, the last batch, commit or finish.)
//!
//! During the backup, one small app update (`add_posts(1, _)`) is submitted per round
//! while fewer than four are pending; the same updates are timed without a backup first.
//! Latency is in rounds from submission to answer; p50 and p99 are printed for both.
//! Writes tests/bench-results/throughput_bench.json.

use candid::Encode;
use canvault_scenarios::app::AppScenario;
use canvault_scenarios::bench_results::{BenchResults, Format, Table, column, row};
use canvault_scenarios::throughput::{floor_rounds, percentile};
use ic_harness::MessageId;
use ic_harness::limits::MAX_BLOCK_PAYLOAD_BYTES;
use serde_json::Value;

const MIB: u64 = 1024 * 1024;
/// App updates pending at once while a latency sample is taken.
const PENDING_UPDATES: usize = 4;
/// Updates timed without a backup.
const IDLE_SAMPLES: usize = 40;

/// Submits small app updates, a few at a time, and records their latency in rounds.
struct UpdateProbe {
    pending: Vec<(MessageId, u64)>,
    latencies: Vec<u64>,
    seed: u64,
}

impl UpdateProbe {
    fn new() -> Self {
        Self {
            pending: Vec::new(),
            latencies: Vec::new(),
            seed: 1 << 40,
        }
    }

    /// One round: submit an update if fewer than [`PENDING_UPDATES`] are pending, tick,
    /// collect answers.
    fn round(&mut self, s: &mut AppScenario) {
        if self.pending.len() < PENDING_UPDATES {
            self.seed += 1;
            let id =
                s.ic.submit_call(
                    s.app,
                    s.admin,
                    "add_posts",
                    Encode!(&1u32, &self.seed).unwrap(),
                )
                .expect("ingress accepted");
            self.pending.push((id, s.ic.rounds()));
        }
        s.ic.tick();
        self.collect(s);
    }

    /// Records the updates answered by now.
    fn collect(&mut self, s: &AppScenario) {
        let now = s.ic.rounds();
        let ic = &s.ic;
        let latencies = &mut self.latencies;
        self.pending
            .retain(|(id, at)| match ic.ingress_status(*id) {
                Some(result) => {
                    result.expect("app update succeeds");
                    latencies.push(now - at);
                    false
                }
                None => true,
            });
    }

    fn drain(&mut self, s: &mut AppScenario) {
        while !self.pending.is_empty() {
            s.ic.tick();
            self.collect(s);
        }
    }
}

struct Phase {
    rounds: u64,
    bytes: u64,
    floor: u64,
}

impl Phase {
    fn ratio(&self) -> f64 {
        self.rounds as f64 / self.floor as f64
    }
}

fn main() {
    let size_mib: u64 = std::env::args()
        .nth(1)
        .map_or(1024, |a| a.parse().expect("SIZE_MIB is a number"));
    let bytes = size_mib * MIB;
    println!(
        "canvault throughput benchmark: {size_mib} MiB images, 64 KiB chunks; block payload {} bytes per round",
        MAX_BLOCK_PAYLOAD_BYTES
    );
    println!(
        "| image | phase | MiB sent | rounds | floor | rounds / floor | app update p50 / p99 (rounds) | idle p50 / p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for shape in ["example app, posts", "random"] {
        let mut s = AppScenario::new();
        let app = s.app;
        match shape {
            "random" => s.fill_with(app, "fill_media_to", bytes, 2),
            _ => s.fill_with(app, "fill_to", bytes, 1),
        };
        let latency = s.ic.cross_subnet_latency_rounds();

        let mut idle = UpdateProbe::new();
        while idle.latencies.len() + idle.pending.len() < IDLE_SAMPLES {
            idle.round(&mut s);
        }
        idle.drain(&mut s);

        let frozen = s.image_digest(app);
        let vault = s.vault;
        s.ic.reset_metrics(app);
        let start = s.ic.rounds();
        s.start_backup();
        let mut busy = UpdateProbe::new();
        // Updates are submitted only once the image is frozen (they change it).
        while s
            .kit_status(app)
            .backup
            .is_some_and(|b| b.snapshot_id.is_none())
        {
            s.ic.tick();
        }
        while s.kit_status(app).backup.is_some() {
            busy.round(&mut s);
        }
        let status = s.kit_status(app);
        assert!(status.last_failure.is_none(), "{:?}", status.last_failure);
        let backup = Phase {
            rounds: s.ic.rounds() - start,
            bytes: s.ic.metrics(app).bytes_sent,
            floor: floor_rounds(s.ic.metrics(app).bytes_sent, latency),
        };
        busy.drain(&mut s);
        let (p50, p99) = (
            percentile(&busy.latencies, 50.0),
            percentile(&busy.latencies, 99.0),
        );
        let (i50, i99) = (
            percentile(&idle.latencies, 50.0),
            percentile(&idle.latencies, 99.0),
        );

        let last = status.last_backup.expect("complete").snapshot_id;
        let fresh = s.fresh_app_elsewhere();
        s.ic.reset_metrics(vault);
        let start = s.ic.rounds();
        let job = s.restore_into(fresh, last);
        assert_eq!(
            job.state,
            canvault_protocol::vault_api::RestoreJobState::Done,
            "{job:?}"
        );
        let restore = Phase {
            rounds: s.ic.rounds() - start,
            bytes: s.ic.metrics(vault).bytes_sent,
            floor: floor_rounds(s.ic.metrics(vault).bytes_sent, latency),
        };
        assert!(
            s.image_digest(fresh) == frozen,
            "the restored image is the image at the freeze, byte for byte"
        );
        for (phase, m, updates) in [
            ("full backup", &backup, Some((p50, p99))),
            ("restore", &restore, None),
        ] {
            let probe = updates.map_or("-".to_string(), |(a, b)| format!("{a} / {b}"));
            let idle_text = updates.map_or("-".to_string(), |_| format!("{i50} / {i99}"));
            println!(
                "| {shape} | {phase} | {:.1} | {} | {} | {:.2} | {probe} | {idle_text} |",
                m.bytes as f64 / MIB as f64,
                m.rounds,
                m.floor,
                m.ratio()
            );
            let mut fields = vec![
                ("image", Value::from(shape)),
                ("phase", Value::from(phase)),
                ("label", Value::from(format!("{shape}: {phase}"))),
                ("bytes_sent", Value::from(m.bytes)),
                ("rounds", Value::from(m.rounds)),
                ("floor_rounds", Value::from(m.floor)),
                ("of_floor", Value::from(m.ratio())),
            ];
            if let Some((a, b)) = updates {
                fields.push(("update_p50", Value::from(a)));
                fields.push(("update_p99", Value::from(b)));
                fields.push(("idle_update_p50", Value::from(i50)));
                fields.push(("idle_update_p99", Value::from(i99)));
            }
            rows.push(row(fields));
        }
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut results = BenchResults::new(
        "throughput_bench",
        &args,
        vec![
            ("size_mib", Value::from(size_mib)),
            ("block_payload_bytes", Value::from(MAX_BLOCK_PAYLOAD_BYTES)),
        ],
    );
    results.tables.push(Table {
        name: "phases".into(),
        columns: vec![
            column("label", "image, phase", Format::Text),
            column("bytes_sent", "MiB sent", Format::Mib1),
            column("rounds", "rounds", Format::Int),
            column("floor_rounds", "floor", Format::Int),
            column("of_floor", "rounds / floor", Format::Dec2),
            column("update_p50", "app update p50", Format::Int),
            column("update_p99", "app update p99", Format::Int),
            column("idle_update_p50", "idle p50", Format::Int),
            column("idle_update_p99", "idle p99", Format::Int),
        ],
        rows,
    });
    results.write();
}
