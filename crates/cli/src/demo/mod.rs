//! `canvault demo`: the whole product on an in-process IC with three subnets, on the
//! real canister wasm, through the same client code as the real-network commands.
//!
//! 1. deploy the factory and a cycles wallet on subnet A, upload the vault module to
//!    the factory, deploy the example app on subnet A, and have the factory create the
//!    app's vault on subnet B (`vault create`, paid from the wallet);
//! 2. fill the app; back it up in full (`backup now`, with a progress bar);
//! 3. change some posts and add new ones; back up incrementally;
//! 4. delete the app; restore the last snapshot into a fresh canister on subnet C
//!    (`restore`);
//! 5. verify the restored image byte for byte and that the app answers as before;
//! 6. a canister that does not embed the kit (a heap-only app): `protect`, copy it whole
//!    into the vault through a native snapshot, delete it, fork it onto subnet C and
//!    compare its answers;
//! 7. today's alternatives (manual native snapshots, Distrikt-style pre_upgrade
//!    serialisation, a naive push) copy the image of the full backup to subnet B, each
//!    verified, measured side by side with the kit's backups and restore;
//! 8. report bytes, ratios, cycles by category (also in USD), instructions, rounds and
//!    time.

pub mod alternatives;
pub mod comparison;
mod report;
mod setup;
mod whole_canister;

use std::io::Write;
use std::time::{Duration, Instant};

use candid::Principal;
use canvault_protocol::Hash256;
use canvault_protocol::chunk::{chunk_count, chunk_len, is_zero};

pub use comparison::Comparison;
pub use report::{BackupReport, DemoReport, Phase};
pub use whole_canister::WholeCanisterReport;

use crate::cli::DemoArgs;
use crate::commands::{backup, human_bytes, restore, snapshot, vault};
use crate::error::{CliError, CliResult};
use crate::progress::ProgressMode;
use comparison::{KIT_BACKUP_STEPS, KIT_RESTORE_STEPS};
use setup::{AppStats, World};

const MIB: u64 = 1024 * 1024;
/// Longest the demo waits for a backup or restore, in IC time.
const WAIT: Duration = Duration::from_secs(24 * 3600);

/// Per-chunk digests of an image (for the byte counts of each backup).
fn chunk_hashes(image: &[u8], chunk_size: u32) -> Vec<(Hash256, bool)> {
    image
        .chunks(chunk_size as usize)
        .map(|c| (Hash256::of(c), is_zero(c)))
        .collect()
}

/// Uncompressed bytes a backup must send: non-zero chunks that differ from `previous`.
fn raw_bytes_to_send(image: &[u8], chunk_size: u32, previous: Option<&[(Hash256, bool)]>) -> u64 {
    let now = chunk_hashes(image, chunk_size);
    (0u32..)
        .zip(&now)
        .filter(|(i, (h, zero))| {
            !zero
                && previous
                    .and_then(|p| p.get(*i as usize))
                    .is_none_or(|(old, _)| old != h)
        })
        .map(|(i, _)| u64::from(chunk_len(i, image.len() as u64, chunk_size)))
        .sum()
}

fn backup_report(
    outcome: &backup::BackupOutcome,
    image: &[u8],
    chunk_size: u32,
    previous: Option<&[(Hash256, bool)]>,
) -> BackupReport {
    let b = &outcome.backup;
    let raw = raw_bytes_to_send(image, chunk_size, previous);
    BackupReport {
        snapshot_id: b.snapshot_id,
        chunks_in_image: chunk_count(b.image_size, chunk_size),
        chunks_sent: b.chunks_sent,
        raw_bytes_sent: raw,
        bytes_sent: b.bytes_sent,
        compression_ratio: if b.bytes_sent == 0 {
            1.0
        } else {
            raw as f64 / b.bytes_sent as f64
        },
        dedup_ratio: if raw == 0 {
            f64::INFINITY
        } else {
            b.image_size as f64 / raw as f64
        },
        ic_seconds: outcome.waited.as_secs_f64(),
        root: b.root.to_hex(),
    }
}

/// Writes a line of the transcript.
fn say(out: &mut dyn Write, text: &str) -> CliResult<()> {
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Usage(format!("cannot write the output: {e}")))
}

/// Runs the demo and prints its report (and writes it as JSON with `--json`).
///
/// # Errors
/// The canister wasm is not built; a step failed (with its cause); a verification failed.
pub fn run(args: &DemoArgs, progress: ProgressMode, out: &mut dyn Write) -> CliResult<()> {
    let started = Instant::now();
    say(
        out,
        "canvault demo: an in-process Internet Computer with 3 subnets, real canister wasm, no network",
    )?;
    let mut w = World::new(progress)?;
    let [subnet_a, subnet_b, subnet_c] = w.subnets;

    // 1. Deploy.
    let clock = w.clock();
    w.deploy_factory_and_wallet()?;
    let app = w.deploy_app(subnet_a)?;
    let created = vault::create(&w.t, &w.create_args(app, subnet_b))?;
    let vault_id = w.vault_of(app)?;
    w.configure(app, vault_id)?;
    w.end_phase(clock, "deploy factory, app, vault (via factory)");
    say(
        out,
        &format!(
            "  factory {} and wallet {} on subnet A",
            w.factory, w.wallet
        ),
    )?;
    say(
        out,
        &format!(
            "  app {app} on subnet A; {}",
            created.lines().next().unwrap_or_default()
        ),
    )?;

    // 2. Fill and back up in full.
    let clock = w.clock();
    let filled = w.fill(app, args.size_mib.max(1) * MIB, args.seed)?;
    w.end_phase(clock, "fill the app");
    say(
        out,
        &format!(
            "  filled the app: {} posts, image {}",
            filled.posts,
            human_bytes(filled.image_bytes)
        ),
    )?;

    let clock = w.clock();
    let meter = w.meter(&[app], &[vault_id]);
    let full = backup::run(&w.t, app, true, WAIT, progress)?
        .ok_or_else(|| CliError::Usage("no backup".into()))?;
    let full_cost = w.kit_cost(
        &meter,
        "canvault kit: full backup",
        full.backup.bytes_sent,
        KIT_BACKUP_STEPS,
    );
    w.end_phase(clock, "full backup (subnet A -> B)");
    let chunk_size = full.status.chunk_size;
    let image1 = w.app_image(app);
    let full_report = backup_report(&full, &image1, chunk_size, None);
    let hashes1 = chunk_hashes(&image1, chunk_size);
    say(
        out,
        &format!(
            "  full backup: snapshot {}, {} sent",
            full.backup.snapshot_id,
            human_bytes(full.backup.bytes_sent)
        ),
    )?;

    // 3. Change some data and back up incrementally.
    let clock = w.clock();
    w.change(app, filled.posts, args.seed)?;
    w.end_phase(clock, "edit and add posts");
    let clock = w.clock();
    let meter = w.meter(&[app], &[vault_id]);
    let incr = backup::run(&w.t, app, true, WAIT, progress)?
        .ok_or_else(|| CliError::Usage("no backup".into()))?;
    let incr_cost = w.kit_cost(
        &meter,
        "canvault kit: incremental backup after 1% changed",
        incr.backup.bytes_sent,
        KIT_BACKUP_STEPS,
    );
    w.end_phase(clock, "incremental backup");
    let image2 = w.app_image(app);
    let incr_report = backup_report(&incr, &image2, chunk_size, Some(&hashes1));
    say(
        out,
        &format!(
            "  incremental backup: snapshot {}, {} sent",
            incr.backup.snapshot_id,
            human_bytes(incr.backup.bytes_sent)
        ),
    )?;
    say(out, &snapshot::list(&w.t, vault_id, None)?)?;

    // 4. Disaster, then restore into a fresh canister on a third subnet.
    let before = w.answers(app)?;
    let clock = w.clock();
    w.delete(app)?;
    let fresh = w.deploy_app(subnet_c)?;
    w.end_phase(clock, "delete the app; fresh canister on C");
    say(
        out,
        &format!("  deleted app {app}; fresh canister {fresh} on subnet C"),
    )?;
    let clock = w.clock();
    let meter = w.meter(&[fresh], &[vault_id]);
    let job = restore::restore(
        &w.t,
        vault_id,
        incr.backup.snapshot_id,
        fresh,
        true,
        WAIT,
        progress,
    )?;
    let restore_cost = w.kit_cost(
        &meter,
        "canvault kit: restore",
        job.bytes_sent,
        KIT_RESTORE_STEPS,
    );
    w.end_phase(clock, "restore (subnet B -> C)");
    say(
        out,
        &format!(
            "  restored snapshot {} into {fresh}: {} pushed",
            incr.backup.snapshot_id,
            human_bytes(job.bytes_sent)
        ),
    )?;

    // 5. Verify.
    let restored_image_identical = w.app_image(fresh) == image2;
    let app_answers_identical = w.answers(fresh)? == before;

    // 6. A canister without the kit, copied whole and forked.
    let whole = whole_canister::run(&mut w, vault_id, (args.size_mib / 4).max(1), progress, out)?;
    say(out, &vault::status(&w.t, vault_id)?)?;

    // 7. Today's alternatives, on the image of the full backup.
    let alternatives = {
        let wasm = w.alt_app_module();
        let ic = w.t.ic();
        let mut ic = ic.borrow_mut();
        alternatives::run_all(&mut ic, operator(), (subnet_a, subnet_b), &wasm, &image1)?
    };
    let comparison = Comparison::new(
        image1.len() as u64,
        [full_cost, incr_cost, restore_cost],
        Vec::new(),
        alternatives,
    );
    say(
        out,
        "  today's alternatives: 3 copies of the image to subnet B, each verified",
    )?;

    // 8. Report.
    let roles = [
        ("factory", w.factory),
        ("wallet", w.wallet),
        ("app (deleted)", app),
        ("vault", vault_id),
        ("restored app", fresh),
    ];
    let heap_roles = [("heap (deleted)", whole.app), ("heap fork", whole.fork)];
    let canisters: Vec<_> = roles
        .iter()
        .chain(&heap_roles)
        .map(|(role, id)| w.canister_report(role, *id))
        .collect();
    let total_cycles = canisters.iter().map(|c| c.cycles.total).sum();
    let stored = crate::client::VaultClient::new(&w.t, vault_id)
        .status()?
        .chunk_bytes;
    let logical = (image1.len() + image2.len()) as u64;
    let report = DemoReport {
        image_bytes: filled.image_bytes,
        posts: filled.posts,
        full_backup: full_report,
        incremental_backup: incr_report,
        restore_bytes: job.bytes_sent,
        restored_image_identical,
        app_answers_identical,
        whole_canister: whole,
        alternatives: comparison,
        vault_storage_ratio: if stored == 0 {
            0.0
        } else {
            logical as f64 / stored as f64
        },
        vault_stored_bytes: stored,
        phases: w.phases.clone(),
        canisters,
        total_cycles,
        total_usd: report::usd(total_cycles),
        rounds: w.t.ic().borrow().rounds(),
        wall_seconds: started.elapsed().as_secs_f64(),
        usd_per_xdr: report::USD_PER_XDR,
    };
    say(out, &report.render())?;
    if let Some(path) = &args.json {
        let json =
            serde_json::to_vec_pretty(&report).map_err(|e| CliError::Usage(e.to_string()))?;
        std::fs::write(path, json).map_err(|e| CliError::io("write", path, &e))?;
        say(out, &format!("report written to {}", path.display()))?;
    }
    if !(restored_image_identical && app_answers_identical) {
        return Err(CliError::Integrity(
            "the restored app differs from the original".into(),
        ));
    }
    if !report.whole_canister.fork_answers_identical {
        return Err(CliError::Integrity(
            "the fork of the heap app answers differently from the original".into(),
        ));
    }
    say(
        out,
        "demo complete: backed up, deleted, restored on another subnet, verified; a canister without the kit copied whole and forked, verified",
    )
}

/// The principal the demo acts as (the operator of the app, the vault and the wallet).
#[must_use]
pub fn operator() -> Principal {
    Principal::self_authenticating(b"canvault demo operator")
}

impl World {
    /// What the restored and the original app answer: counts, every post page digest,
    /// first and last post, first user.
    fn answers(&self, app: Principal) -> CliResult<(AppStats, Vec<Vec<u8>>, String)> {
        let stats = self.stats(app)?;
        let pages = self.digest_pages(app)?;
        let sample = self.sample(app, stats.posts)?;
        Ok((stats, pages, sample))
    }
}
