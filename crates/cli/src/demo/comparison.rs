//! canvault side by side with today's alternatives ([`super::alternatives`]) on the same
//! image: every figure measured, every ratio computed from those figures.

use std::fmt::Write as _;

use serde::Serialize;

use super::alternatives::PathCost;
use crate::commands::{human_bytes, human_cycles};

/// What the kit's backups and restores check.
pub const KIT_VERIFIES: &str = "SHA-256 per chunk + root";
/// Ingress messages of a kit backup: `canvault_backup_now` (none on the kit's schedule).
pub const KIT_BACKUP_STEPS: u64 = 1;
/// Ingress messages of a kit restore: install the app, `canvault_arm_restore`,
/// `start_restore` (polling is by query).
pub const KIT_RESTORE_STEPS: u64 = 3;

/// canvault against one alternative: canvault's figure divided by the alternative's
/// (below 1: canvault spends less).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Ratio {
    /// The alternative.
    pub alternative: String,
    /// Cycles of canvault's copy (full backup + restore) over the alternative's copy.
    pub copy_cycles: f64,
    /// Bytes moved, the same way.
    pub copy_bytes: f64,
    /// Rounds, the same way.
    pub copy_rounds: f64,
    /// Cycles of canvault's incremental backup after 1% changed over the alternative's
    /// copy (an alternative copies everything again).
    pub incremental_cycles: f64,
}

/// The side-by-side comparison.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Bytes of the image every path copied.
    pub image_bytes: u64,
    /// canvault's paths: full backup, incremental backup, restore, full backup +
    /// restore, then any others measured (whole-canister).
    pub canvault: Vec<PathCost>,
    /// The alternatives.
    pub alternatives: Vec<PathCost>,
    /// canvault against each alternative.
    pub ratios: Vec<Ratio>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

impl Comparison {
    /// From measured costs: the kit's `full`, `incremental` backup and `restore`, any
    /// `others` of canvault's, and the `alternatives`.
    #[must_use]
    pub fn new(
        image_bytes: u64,
        [full, incremental, restore]: [PathCost; 3],
        others: Vec<PathCost>,
        alternatives: Vec<PathCost>,
    ) -> Self {
        let copy = full.then(&restore, "canvault kit: full backup + restore");
        let ratios = alternatives
            .iter()
            .map(|a| Ratio {
                alternative: a.path.clone(),
                copy_cycles: ratio(copy.total_cycles as f64, a.total_cycles as f64),
                copy_bytes: ratio(copy.bytes_moved as f64, a.bytes_moved as f64),
                copy_rounds: ratio(copy.rounds as f64, a.rounds as f64),
                incremental_cycles: ratio(incremental.total_cycles as f64, a.total_cycles as f64),
            })
            .collect();
        let mut canvault = vec![full, incremental, restore, copy];
        canvault.extend(others);
        Self {
            image_bytes,
            canvault,
            alternatives,
            ratios,
        }
    }

    /// The table and the ratios, as markdown.
    #[must_use]
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "compared with today's alternatives (image of {}, copied to another subnet; a round is about a second)",
            human_bytes(self.image_bytes)
        );
        let _ = writeln!(
            s,
            "| path | app cycles | receiver cycles | operator cycles | total cycles | moved | rounds | downtime rounds | operator steps | verifies |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for p in self.canvault.iter().chain(&self.alternatives) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                p.path,
                human_cycles(p.app_cycles),
                human_cycles(p.receiver_cycles),
                human_cycles(p.operator_cycles),
                human_cycles(p.total_cycles),
                human_bytes(p.bytes_moved),
                p.rounds,
                p.downtime_rounds,
                p.operator_steps,
                p.verifies
            );
        }
        let _ = writeln!(
            s,
            "\ncanvault / alternative (full backup + restore; incremental backup after 1% changed)"
        );
        let _ = writeln!(
            s,
            "| alternative | copy cycles | copy bytes | copy rounds | incremental cycles |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        for r in &self.ratios {
            let _ = writeln!(
                s,
                "| {} | {:.3} | {:.3} | {:.3} | {:.4} |",
                r.alternative, r.copy_cycles, r.copy_bytes, r.copy_rounds, r.incremental_cycles
            );
        }
        s
    }
}
