//! What a soak run counts, and the summary table it prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Counters of one seed's run (summed over seeds for the table).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Steps run.
    pub steps: u64,
    /// Steps by action name.
    pub actions: BTreeMap<&'static str, u64>,
    /// Faults armed, by kind.
    pub faults_armed: BTreeMap<String, u64>,
    /// Fault lines the harness logged as fired ("fault fired", subnets offline, freezes).
    pub faults_fired: u64,
    /// Image backups seen complete (complete snapshots of the app in its vault).
    pub backups_completed: u64,
    /// Image backups the kit reported failed.
    pub backups_failed: u64,
    /// On-demand backups whose snapshot was found to hold the image of the call.
    pub on_demand_verified: u64,
    /// On-demand backups that ended while scheduled ones also completed and none of
    /// those snapshots holds the image of the call: the on-demand one failed (the
    /// kit clears a failure when the next backup completes, so the soak cannot tell).
    pub on_demand_unverified: u64,
    /// `canvault_backup_now` calls refused (a backup running, a restore armed, a fault).
    pub backups_refused: u64,
    /// Data-set backups seen complete (snapshots in the personal vaults).
    pub dataset_backups_completed: u64,
    /// Data-set backups the kit reported failed.
    pub dataset_backups_failed: u64,
    /// Restores that ended `Done` and verified byte for byte.
    pub restores_done: u64,
    /// Restores that ended `Failed` with the target unchanged.
    pub restores_failed: u64,
    /// Upgrades completed (app, vaults).
    pub upgrades: u64,
    /// Snapshots deleted by retention or an owner.
    pub snapshots_deleted: u64,
    /// Complete snapshots verified by a full download (counted per download).
    pub downloads_verified: u64,
    /// Bytes of complete snapshots that did not download to their image (must be 0).
    pub bytes_lost: u64,
    /// App writes applied.
    pub writes: u64,
    /// App writes rejected (faults): the image stayed unchanged.
    pub writes_rejected: u64,
}

impl Tally {
    /// Counts one step of `action`.
    pub fn action(&mut self, action: &'static str) {
        self.steps += 1;
        *self.actions.entry(action).or_default() += 1;
    }

    /// Counts one armed fault of `kind`.
    pub fn fault(&mut self, kind: impl Into<String>) {
        *self.faults_armed.entry(kind.into()).or_default() += 1;
    }

    /// Adds `other` into `self`.
    pub fn absorb(&mut self, other: &Tally) {
        self.steps += other.steps;
        for (k, v) in &other.actions {
            *self.actions.entry(k).or_default() += v;
        }
        for (k, v) in &other.faults_armed {
            *self.faults_armed.entry(k.clone()).or_default() += v;
        }
        self.faults_fired += other.faults_fired;
        self.backups_completed += other.backups_completed;
        self.backups_failed += other.backups_failed;
        self.on_demand_verified += other.on_demand_verified;
        self.on_demand_unverified += other.on_demand_unverified;
        self.backups_refused += other.backups_refused;
        self.dataset_backups_completed += other.dataset_backups_completed;
        self.dataset_backups_failed += other.dataset_backups_failed;
        self.restores_done += other.restores_done;
        self.restores_failed += other.restores_failed;
        self.upgrades += other.upgrades;
        self.snapshots_deleted += other.snapshots_deleted;
        self.downloads_verified += other.downloads_verified;
        self.bytes_lost += other.bytes_lost;
        self.writes += other.writes;
        self.writes_rejected += other.writes_rejected;
    }
}

/// One seed's result.
#[derive(Debug, Clone)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// Its counters.
    pub tally: Tally,
    /// The violation or panic that stopped it, with its step.
    pub failure: Option<String>,
}

/// The summary table of a run: one row per seed, totals, faults by kind.
pub fn table(results: &[SeedResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>8} {:>6} {:>7} {:>6} {:>9} {:>7} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10}  result",
        "seed",
        "steps",
        "writes",
        "faults",
        "fired",
        "backups",
        "bk_failed",
        "on_demand",
        "ds_backup",
        "ds_fail",
        "restores",
        "rs_fail",
        "downloads",
        "bytes_lost"
    );
    let mut total = Tally::default();
    for r in results {
        let t = &r.tally;
        total.absorb(t);
        let armed: u64 = t.faults_armed.values().sum();
        let _ = writeln!(
            out,
            "{:>8} {:>6} {:>7} {:>6} {:>9} {:>7} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10}  {}",
            r.seed,
            t.steps,
            t.writes,
            armed,
            t.faults_fired,
            t.backups_completed,
            t.backups_failed,
            format!("{}/{}", t.on_demand_verified, t.on_demand_unverified),
            t.dataset_backups_completed,
            t.dataset_backups_failed,
            t.restores_done,
            t.restores_failed,
            t.downloads_verified,
            t.bytes_lost,
            r.failure
                .as_deref()
                .and_then(|f| f.lines().next())
                .unwrap_or("ok"),
        );
    }
    let armed: u64 = total.faults_armed.values().sum();
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    let _ = writeln!(
        out,
        "{:>8} {:>6} {:>7} {:>6} {:>9} {:>7} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10}  {} of {} seeds failed",
        "total",
        total.steps,
        total.writes,
        armed,
        total.faults_fired,
        total.backups_completed,
        total.backups_failed,
        format!(
            "{}/{}",
            total.on_demand_verified, total.on_demand_unverified
        ),
        total.dataset_backups_completed,
        total.dataset_backups_failed,
        total.restores_done,
        total.restores_failed,
        total.downloads_verified,
        total.bytes_lost,
        failed,
        results.len(),
    );
    let _ = writeln!(out, "\nfaults armed and survived, by kind:");
    for (kind, n) in &total.faults_armed {
        let _ = writeln!(out, "  {kind:<34} {n:>6}");
    }
    let _ = writeln!(out, "\nsteps by action:");
    for (action, n) in &total.actions {
        let _ = writeln!(out, "  {action:<34} {n:>6}");
    }
    let _ = writeln!(
        out,
        "\nalso: {} backups refused (busy), {} writes rejected by faults, {} upgrades, {} snapshots deleted",
        total.backups_refused, total.writes_rejected, total.upgrades, total.snapshots_deleted
    );
    out
}
