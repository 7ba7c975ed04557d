//! The seeded chaos soak (issue #10): hundreds of steps drawn from a seed, mixing app
//! writes, on-demand and scheduled backups, data-set backups into personal vaults,
//! upgrades of the app and the vaults mid-flight, every fault kind of the harness,
//! retention passes with the clock jumping, and restores into fresh canisters and into
//! the app itself; the invariants of [`invariants`] and the live-image model of [`soak`]
//! are checked after every step.
//!
//! A failure names its seed and step and the trail of the steps before it; rerun one
//! seed with `CHAOS_SEEDS=<seed> CHAOS_STEPS=<steps>` (see `docs/testing.md`).
//!
//! Module map: [`adapter`] (every canister call: the one file to adapt when interfaces
//! change), [`model`] (images and verified snapshots), [`invariants`] (the vault walk
//! and downloads), [`steps`] and [`restore`] (the actions), [`soak`] (the world and its
//! per-step check), [`report`] (counters and the summary table), [`rng`].

pub mod adapter;
pub mod invariants;
pub mod model;
pub mod report;
pub mod restore;
pub mod rng;
pub mod soak;
pub mod steps;

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};

pub use report::{SeedResult, Tally, table};
pub use soak::Soak;

/// Steps of the trail printed with a failure.
const TRAIL: usize = 12;

/// Steps a failure report shows: `CHAOS_TRAIL`, else [`TRAIL`].
fn trail_len() -> usize {
    std::env::var("CHAOS_TRAIL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(TRAIL)
}

/// One soak run's shape.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Seeds, one independent world each.
    pub seeds: Vec<u64>,
    /// Steps per seed.
    pub steps: u64,
    /// Full content checks (chunk verification, downloads) every this many steps, and
    /// always after a restore and at the end.
    pub content_every: u64,
}

impl SoakConfig {
    /// `default`, overridden by `CHAOS_SEEDS` (`1,2,3` or a range `1..20`),
    /// `CHAOS_STEPS` and `CHAOS_CONTENT_EVERY`.
    ///
    /// # Panics
    /// On a malformed variable.
    pub fn from_env(default: SoakConfig) -> SoakConfig {
        let mut c = default;
        if let Ok(s) = std::env::var("CHAOS_SEEDS") {
            c.seeds = parse_seeds(&s);
        }
        if let Ok(s) = std::env::var("CHAOS_STEPS") {
            c.steps = s.trim().parse().expect("CHAOS_STEPS: a number");
        }
        if let Ok(s) = std::env::var("CHAOS_CONTENT_EVERY") {
            c.content_every = s
                .trim()
                .parse::<u64>()
                .expect("CHAOS_CONTENT_EVERY: a number")
                .max(1);
        }
        c
    }
}

/// `"1,2,3"` or `"1..20"` (end excluded).
///
/// # Panics
/// On a malformed list.
pub fn parse_seeds(s: &str) -> Vec<u64> {
    if let Some((a, b)) = s.split_once("..") {
        let (a, b): (u64, u64) = (
            a.trim().parse().expect("seed"),
            b.trim().parse().expect("seed"),
        );
        return (a..b).collect();
    }
    s.split(',')
        .map(|x| x.trim().parse().expect("CHAOS_SEEDS: numbers"))
        .collect()
}

/// Runs every seed of `config` (a panic or violation stops only its own seed).
pub fn run(config: &SoakConfig) -> Vec<SeedResult> {
    config
        .seeds
        .iter()
        .map(|seed| {
            let r = run_seed(*seed, config.steps, config.content_every);
            eprintln!(
                "chaos seed {seed}: {} steps, {}",
                r.tally.steps,
                r.failure.as_deref().unwrap_or("ok")
            );
            // Its row as it ends, so a long run cut short still reports what it did.
            eprint!("{}", table(std::slice::from_ref(&r)));
            r
        })
        .collect()
}

/// Runs one seed for `steps` steps and the final checks.
pub fn run_seed(seed: u64, steps: u64, content_every: u64) -> SeedResult {
    let mut tally = Tally::default();
    let mut trail: VecDeque<String> = VecDeque::new();
    let mut at = "setup".to_string();
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        let mut soak = Soak::new(seed)?;
        for step in 0..steps {
            soak.step = step;
            let action = soak.choose();
            at = format!("step {step} ({})", action.name());
            let result = soak.perform(action);
            let did = match &result {
                Ok(d) => d.clone(),
                Err(e) => e.clone(),
            };
            trail.push_back(format!("step {step} {}: {did}", action.name()));
            if trail.len() > trail_len() {
                trail.pop_front();
            }
            tally = soak.tally.clone();
            result?;
            let restored = std::mem::take(&mut soak.content_due);
            let content = restored || (step + 1) % content_every == 0;
            soak.check(content)?;
            tally = soak.tally.clone();
        }
        at = "final checks".to_string();
        soak.finish()?;
        tally = soak.tally.clone();
        Ok(())
    }));
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(violation)) => Some(violation),
        Err(panic) => Some(format!(
            "panic: {}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(non-text payload)")
        )),
    }
    .map(|why| {
        let trail: Vec<String> = trail.into_iter().collect();
        format!(
            "seed {seed}, {at}: {why}\n  reproduce: CHAOS_SEEDS={seed} CHAOS_STEPS={steps} cargo test -p canvault-scenarios --test chaos_soak -- --ignored --nocapture chaos_soak_long\n  last steps:\n    {}",
            trail.join("\n    ")
        )
    });
    SeedResult {
        seed,
        tally,
        failure,
    }
}
