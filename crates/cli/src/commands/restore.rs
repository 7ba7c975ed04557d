//! `canvault restore <id> --vault V --to CANISTER`.
//!
//! A whole-canister snapshot is loaded by the vault into a canister it controls
//! ([`super::canister::restore`]); a kit image is pushed into the target's kit:
//!
//! Two permissions meet here, on purpose: the target's controller (or kit admin) arms
//! the restore, naming the vault, the snapshot and its root; the vault's owner starts
//! the push. The caller must hold both, or the two halves are run by two people (arm
//! with `canvault_arm_restore`, then this command).

use std::time::Duration;

use candid::Principal;
use canvault_protocol::kit_api::ArmRestoreRequest;
use canvault_protocol::vault_api::{
    RestoreJob, RestoreJobState, SnapshotState, StartRestoreRequest,
};

use super::{canister, human_bytes};
use crate::cli::RestoreArgs;
use crate::client::{KitClient, VaultClient};
use crate::error::{CliError, CliResult};
use crate::progress::ProgressMode;
use crate::transport::Transport;

/// Arms the target, starts the job and, with `wait`, polls it to the end.
///
/// # Errors
/// The snapshot is not complete; the kit or the vault refused; the job failed; timeout.
pub fn restore(
    t: &dyn Transport,
    vault: Principal,
    snapshot_id: u64,
    target: Principal,
    wait: bool,
    timeout: Duration,
    progress: ProgressMode,
) -> CliResult<RestoreJob> {
    let v = VaultClient::new(t, vault);
    let info = v.get_snapshot(snapshot_id)?;
    if canister::is_whole_canister(&info) {
        return Err(CliError::Usage(format!(
            "snapshot {snapshot_id} is a whole canister, not a kit image: `canvault restore` loads it into a canister the vault controls"
        )));
    }
    let root = match (&info.state, info.root) {
        (SnapshotState::Complete, Some(root)) => root,
        (state, _) => {
            return Err(CliError::Usage(format!(
                "snapshot {snapshot_id} is {state:?}: only a complete snapshot can be restored"
            )));
        }
    };
    KitClient::new(t, target).arm_restore(ArmRestoreRequest {
        vault,
        snapshot_id,
        expected_root: Some(root),
    })?;
    let job = v.start_restore(StartRestoreRequest {
        snapshot_id,
        target,
    })?;
    if !wait {
        return Ok(job);
    }
    let bar = progress.chunks(u64::from(info.chunk_count), "restore");
    let mut waited = Duration::ZERO;
    loop {
        let job = v.restore_status(job.id)?;
        match &job.state {
            RestoreJobState::Done => {
                bar.finish_and_clear();
                return Ok(job);
            }
            RestoreJobState::Failed { reason } => {
                bar.finish_and_clear();
                return Err(CliError::Usage(format!(
                    "the restore of snapshot {snapshot_id} into {target} failed: {reason} (the target's current image is untouched)"
                )));
            }
            RestoreJobState::Pushing { next_index } => bar.set_position(u64::from(*next_index)),
            RestoreJobState::Finishing => bar.set_position(u64::from(info.chunk_count)),
            RestoreJobState::Starting => {}
        }
        if waited >= timeout {
            return Err(CliError::Timeout(format!(
                "restore job {} is still running after {}s (it goes on in the vault)",
                job.id,
                waited.as_secs()
            )));
        }
        waited += t.pause();
    }
}

/// `restore`.
///
/// # Errors
/// See [`restore`].
pub fn run(t: &dyn Transport, args: &RestoreArgs, progress: ProgressMode) -> CliResult<String> {
    let v = VaultClient::new(t, args.vault.vault);
    let info = v.get_snapshot(args.id)?;
    if canister::is_whole_canister(&info) {
        let job = canister::restore(
            &v,
            &info,
            args.to,
            !args.no_wait,
            Duration::from_secs(args.timeout),
            progress,
        )?;
        return Ok(canister::restored(&job, args.id, args.to));
    }
    let job = restore(
        t,
        args.vault.vault,
        args.id,
        args.to,
        !args.no_wait,
        Duration::from_secs(args.timeout),
        progress,
    )?;
    Ok(match job.state {
        RestoreJobState::Done => format!(
            "restored snapshot {} into {}: {} pushed, {} retries; the target verified every chunk and the root, then switched to the restored image\n",
            args.id,
            args.to,
            human_bytes(job.bytes_sent),
            job.retries
        ),
        _ => format!(
            "restore job {} started: snapshot {} into {}; follow it with `canvault backup status --app {}`\n",
            job.id, args.id, args.to, args.to
        ),
    })
}
