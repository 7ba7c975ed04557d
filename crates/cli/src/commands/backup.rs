//! `canvault backup now | status`: the kit endpoints of an app canister.

use std::time::Duration;

use candid::Principal;
use canvault_protocol::kit_api::{KitStatus, LastBackup};

use super::{human_bytes, utc};
use crate::client::KitClient;
use crate::error::{CliError, CliResult};
use crate::progress::ProgressMode;
use crate::transport::Transport;

/// How a backup ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupOutcome {
    /// The kit's status at the end.
    pub status: KitStatus,
    /// The backup just completed.
    pub backup: LastBackup,
    /// Network time spent waiting.
    pub waited: Duration,
}

/// Starts a backup and, with `wait`, polls until it ends.
///
/// # Errors
/// The kit refused (not an admin, no vault, already running); the backup failed; timeout.
pub fn run(
    t: &dyn Transport,
    app: Principal,
    wait: bool,
    timeout: Duration,
    progress: ProgressMode,
) -> CliResult<Option<BackupOutcome>> {
    let kit = KitClient::new(t, app);
    kit.backup_now()?;
    if !wait {
        return Ok(None);
    }
    // The backup just began (the freeze happens in `backup_now`): it counts once it ends.
    let before = kit.status()?;
    let mut waited = Duration::ZERO;
    let bar = progress.chunks(0, "backup");
    loop {
        let s = kit.status()?;
        match &s.backup {
            Some(b) => {
                bar.set_length(u64::from(b.chunks_total));
                bar.set_position(u64::from(b.chunks_done));
                bar.set_message(human_bytes(b.bytes_sent));
            }
            None if s.backups_completed > before.backups_completed => {
                bar.finish_and_clear();
                let backup = s
                    .last_backup
                    .clone()
                    .ok_or_else(|| CliError::Usage("the kit reports no backup".into()))?;
                return Ok(Some(BackupOutcome {
                    status: s,
                    backup,
                    waited,
                }));
            }
            None => {
                bar.finish_and_clear();
                let reason = s
                    .last_failure
                    .as_ref()
                    .map_or_else(|| "no reason given".to_string(), |f| f.reason.clone());
                return Err(CliError::Usage(format!(
                    "the backup of {app} failed: {reason} (the chunks it did not send stay dirty: the next backup retries them)"
                )));
            }
        }
        if waited >= timeout {
            return Err(CliError::Timeout(format!(
                "the backup of {app} is still running after {}s; follow it with `canvault backup status --app {app}`",
                waited.as_secs()
            )));
        }
        waited += t.pause();
    }
}

fn describe(b: &LastBackup) -> String {
    format!(
        "snapshot {} in vault {}: image {}, {} chunks sent ({}), root {}, completed {}",
        b.snapshot_id,
        b.vault,
        human_bytes(b.image_size),
        b.chunks_sent,
        human_bytes(b.bytes_sent),
        b.root,
        utc(b.completed_at_ns)
    )
}

/// `backup now`.
///
/// # Errors
/// See [`run`].
pub fn now(
    t: &dyn Transport,
    app: Principal,
    wait: bool,
    timeout_secs: u64,
    progress: ProgressMode,
) -> CliResult<String> {
    match run(t, app, wait, Duration::from_secs(timeout_secs), progress)? {
        None => Ok(format!(
            "backup of {app} started; follow it with `canvault backup status --app {app}`\n"
        )),
        Some(o) => Ok(format!(
            "backup of {app} complete: {}\n",
            describe(&o.backup)
        )),
    }
}

/// `backup status`.
///
/// # Errors
/// Not an admin of the app; network; not a kit.
pub fn status(t: &dyn Transport, app: Principal) -> CliResult<String> {
    let s = KitClient::new(t, app).status()?;
    let mut text = format!(
        "app {app}: image {}, chunk size {}, vault {}, automatic backups {}\n  {} chunks changed since the last backup; {} backups and {} restores completed\n",
        human_bytes(s.image_size),
        human_bytes(u64::from(s.chunk_size)),
        s.vault
            .map_or_else(|| "not configured".into(), |v| v.to_text()),
        if s.interval_seconds == 0 {
            "off".to_string()
        } else {
            format!("every {}s", s.interval_seconds)
        },
        s.dirty_chunks,
        s.backups_completed,
        s.restores_completed,
    );
    if let Some(b) = &s.backup {
        text.push_str(&format!(
            "  backup running: {}/{} chunks, {} sent, {} retries{}\n",
            b.chunks_done,
            b.chunks_total,
            human_bytes(b.bytes_sent),
            b.retries,
            b.last_error
                .as_ref()
                .map_or_else(String::new, |e| format!(", last error: {e}"))
        ));
    }
    if let Some(b) = &s.last_backup {
        text.push_str(&format!("  last backup: {}\n", describe(b)));
    }
    if let Some(f) = &s.last_failure {
        text.push_str(&format!(
            "  last failure: {} at {}\n",
            f.reason,
            utc(f.at_ns)
        ));
    }
    if let Some(r) = &s.restore {
        text.push_str(&format!(
            "  restore armed: snapshot {} from vault {}, {} of {} chunks staged\n",
            r.snapshot_id,
            r.vault,
            r.chunks_staged,
            r.chunks_total.map_or_else(|| "?".into(), |n| n.to_string())
        ));
    }
    Ok(text)
}
