//! The demo's report: what moved, what it cost, how long it took. Printed as a table and
//! written as JSON with `--json`.
//!
//! Cycles are the harness's fee model (the IC's 13-node application subnet fee table,
//! `ic_harness::fees`); USD at 1T cycles = 1 XDR and 1 XDR = 1.36643 USD.

use std::fmt::Write as _;

use ic_harness::{CanisterMetrics, CyclesBurned};
use serde::Serialize;

use super::WholeCanisterReport;

use crate::commands::{human_bytes, human_cycles};

/// US dollars per XDR used for the USD figures (IMF rate, see docs/operations.md).
pub const USD_PER_XDR: f64 = 1.36643;
/// Cycles per XDR (fixed by the protocol).
pub const CYCLES_PER_XDR: f64 = 1e12;

/// Cycles in US dollars.
#[must_use]
pub fn usd(cycles: u128) -> f64 {
    cycles as f64 / CYCLES_PER_XDR * USD_PER_XDR
}

/// One phase of the demo.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Phase {
    /// What it did.
    pub name: String,
    /// Wall-clock seconds on this machine.
    pub wall_seconds: f64,
    /// IC rounds executed.
    pub rounds: u64,
    /// Simulated IC time, seconds.
    pub ic_seconds: f64,
    /// Cycles burned by every canister during the phase.
    pub cycles: u128,
}

/// Cycles of one canister by category.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Cycles {
    /// Base fee per execution.
    pub execution: u128,
    /// Instructions.
    pub instructions: u128,
    /// Per-call fees of calls it made.
    pub calls: u128,
    /// Bytes of the calls it made.
    pub bytes: u128,
    /// Ingress messages it received.
    pub ingress: u128,
    /// Storage over time.
    pub storage: u128,
    /// Canister creation fees it paid.
    pub creation: u128,
    /// Burned explicitly or lost with dropped calls.
    pub other: u128,
    /// All of them.
    pub total: u128,
}

impl From<&CyclesBurned> for Cycles {
    fn from(c: &CyclesBurned) -> Self {
        Self {
            execution: c.execution,
            instructions: c.instructions,
            calls: c.calls,
            bytes: c.bytes,
            ingress: c.ingress,
            storage: c.storage,
            creation: c.creation,
            other: c.burned + c.lost,
            total: c.total(),
        }
    }
}

/// One canister's totals.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct CanisterReport {
    /// Its role in the demo.
    pub role: String,
    /// Its id.
    pub id: String,
    /// Its subnet.
    pub subnet: String,
    /// Cycles by category.
    pub cycles: Cycles,
    /// Instructions executed.
    pub instructions: u64,
    /// The largest single replicated execution (a DTS slice is 2B).
    pub max_instructions_per_execution: u64,
    /// The largest single query the demo made to it (free, not sliced; the limit is 5B).
    pub max_instructions_per_query: u64,
    /// Payload bytes it sent.
    pub bytes_sent: u64,
}

impl CanisterReport {
    /// From the harness's metrics.
    #[must_use]
    pub fn new(
        role: &str,
        id: candid::Principal,
        subnet: Option<candid::Principal>,
        m: &CanisterMetrics,
    ) -> Self {
        Self {
            role: role.to_string(),
            id: id.to_text(),
            subnet: subnet.map_or_else(|| "-".into(), |s| s.to_text()),
            cycles: Cycles::from(&m.cycles_burned),
            instructions: m.instructions,
            max_instructions_per_execution: m.max_instructions_per_execution,
            max_instructions_per_query: m.max_instructions_per_query,
            bytes_sent: m.bytes_sent,
        }
    }
}

/// A backup as the demo saw it.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct BackupReport {
    /// The vault's snapshot id.
    pub snapshot_id: u64,
    /// Chunks in the image.
    pub chunks_in_image: u32,
    /// Chunks sent with data.
    pub chunks_sent: u32,
    /// Uncompressed bytes of the chunks sent.
    pub raw_bytes_sent: u64,
    /// Encoded bytes sent.
    pub bytes_sent: u64,
    /// `raw_bytes_sent / bytes_sent`.
    pub compression_ratio: f64,
    /// Image bytes over uncompressed bytes sent: how much the backup did not resend.
    pub dedup_ratio: f64,
    /// IC time the backup took, seconds.
    pub ic_seconds: f64,
    /// The image root.
    pub root: String,
}

/// The whole report.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct DemoReport {
    /// Image size after the fill, bytes.
    pub image_bytes: u64,
    /// Posts in the app.
    pub posts: u64,
    /// The full backup.
    pub full_backup: BackupReport,
    /// The incremental backup.
    pub incremental_backup: BackupReport,
    /// Encoded bytes the restore pushed.
    pub restore_bytes: u64,
    /// Restored image equals the backed-up image byte for byte.
    pub restored_image_identical: bool,
    /// The restored app answers every query as the original did.
    pub app_answers_identical: bool,
    /// The canister without the kit: whole-canister backup and fork.
    pub whole_canister: WholeCanisterReport,
    /// Logical bytes of the two snapshots over the bytes the vault stores.
    pub vault_storage_ratio: f64,
    /// Bytes the vault stores.
    pub vault_stored_bytes: u64,
    /// Per phase.
    pub phases: Vec<Phase>,
    /// Per canister.
    pub canisters: Vec<CanisterReport>,
    /// Every canister's cycles added up.
    pub total_cycles: u128,
    /// In USD.
    pub total_usd: f64,
    /// Rounds executed in all.
    pub rounds: u64,
    /// Wall-clock seconds in all.
    pub wall_seconds: f64,
    /// USD per XDR used.
    pub usd_per_xdr: f64,
}

fn backup_line(s: &mut String, name: &str, b: &BackupReport) {
    let _ = writeln!(
        s,
        "  {name:<14} snapshot {:>2}: {:>4}/{:<4} chunks sent, {:>10} raw -> {:>10} on the wire (compression {:.2}x, dedup {:.1}x), {:.0}s of IC time",
        b.snapshot_id,
        b.chunks_sent,
        b.chunks_in_image,
        human_bytes(b.raw_bytes_sent),
        human_bytes(b.bytes_sent),
        b.compression_ratio,
        b.dedup_ratio,
        b.ic_seconds
    );
}

impl DemoReport {
    /// The human-readable report.
    #[must_use]
    pub fn render(&self) -> String {
        let mut s = String::new();
        let ok = |b: bool| if b { "yes" } else { "NO" };
        let _ = writeln!(s, "\ncanvault demo report");
        let _ = writeln!(s, "====================");
        let _ = writeln!(
            s,
            "app image: {} ({} posts)",
            human_bytes(self.image_bytes),
            self.posts
        );
        let _ = writeln!(s, "\nbytes moved");
        backup_line(&mut s, "full", &self.full_backup);
        backup_line(&mut s, "incremental", &self.incremental_backup);
        let _ = writeln!(
            s,
            "  {:<14} {} pushed into a fresh canister on a third subnet",
            "restore",
            human_bytes(self.restore_bytes)
        );
        let _ = writeln!(
            s,
            "  vault stores {} for two snapshots of {} each: {:.2}x smaller than the images",
            human_bytes(self.vault_stored_bytes),
            human_bytes(self.image_bytes),
            self.vault_storage_ratio
        );
        let w = &self.whole_canister;
        let _ = writeln!(
            s,
            "  {:<14} heap app ({} of heap data): image {}, {} read in {} rounds (stop, snapshot, start, read)",
            "whole canister",
            human_bytes(w.heap_data_bytes),
            human_bytes(w.image_bytes),
            human_bytes(w.bytes_read),
            w.backup_rounds
        );
        let _ = writeln!(
            s,
            "  {:<14} {} uploaded into an empty canister on a third subnet in {} rounds (upload, load, read back, start)",
            "fork",
            human_bytes(w.bytes_uploaded),
            w.fork_rounds
        );
        let _ = writeln!(s, "\nverification");
        let _ = writeln!(
            s,
            "  restored image identical byte for byte: {}",
            ok(self.restored_image_identical)
        );
        let _ = writeln!(
            s,
            "  restored app answers as before:         {}",
            ok(self.app_answers_identical)
        );
        let _ = writeln!(
            s,
            "  heap app fork answers as before:        {}",
            ok(w.fork_answers_identical)
        );
        let _ = writeln!(
            s,
            "\ncycles by canister and category (harness fee model; USD at 1T cycles = 1 XDR = ${USD_PER_XDR})"
        );
        let _ = writeln!(
            s,
            "  {:<14} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8} {:>8}",
            "canister",
            "exec",
            "instr",
            "calls",
            "bytes",
            "ingress",
            "storage",
            "creation",
            "total",
            "USD",
            "instrs",
            "max/msg"
        );
        for c in &self.canisters {
            let y = &c.cycles;
            let _ = writeln!(
                s,
                "  {:<14} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8} {:>8}",
                c.role,
                human_cycles(y.execution),
                human_cycles(y.instructions),
                human_cycles(y.calls),
                human_cycles(y.bytes),
                human_cycles(y.ingress),
                human_cycles(y.storage),
                human_cycles(y.creation),
                human_cycles(y.total),
                format!("${:.4}", usd(y.total)),
                human_cycles(u128::from(c.instructions)),
                human_cycles(u128::from(c.max_instructions_per_execution)),
            );
        }
        let _ = writeln!(
            s,
            "  {:<14}{:70} {:>9} {:>10}",
            "all",
            "",
            human_cycles(self.total_cycles),
            format!("${:.4}", self.total_usd)
        );
        let _ = writeln!(
            s,
            "  (exec..total: cycles burned; instrs: instructions of replicated executions; max/msg: the largest of them, a DTS slice is 2B;\n   queries the demo made for verification are free and counted apart: largest {})",
            self.canisters
                .iter()
                .max_by_key(|c| c.max_instructions_per_query)
                .map_or_else(String::new, |c| format!(
                    "{} instructions ({})",
                    human_cycles(u128::from(c.max_instructions_per_query)),
                    c.role
                ))
        );
        let _ = writeln!(s, "\nphases");
        let _ = writeln!(
            s,
            "  {:<42} {:>8} {:>8} {:>9} {:>10}",
            "phase", "wall", "rounds", "IC time", "cycles"
        );
        for p in &self.phases {
            let _ = writeln!(
                s,
                "  {:<42} {:>7.1}s {:>8} {:>8.0}s {:>10}",
                p.name,
                p.wall_seconds,
                p.rounds,
                p.ic_seconds,
                human_cycles(p.cycles)
            );
        }
        let _ = writeln!(
            s,
            "  {:<42} {:>7.1}s {:>8}",
            "total", self.wall_seconds, self.rounds
        );
        s
    }
}
