//! Whole-canister copies, for canisters that do not embed the kit (Rust or Motoko,
//! heap included): `canvault protect`, `canvault backup canister`, and the
//! whole-canister half of `canvault restore`.
//!
//! The vault drives native snapshots across subnets, which needs a right on the app:
//! - as a **controller** (`protect`): it stops, snapshots, starts and reads the app,
//!   and can load a snapshot into a canister it controls. A controller has full power
//!   over the app, so `protect` shows what changes and applies it only with `--yes`;
//! - as a **snapshot viewer** (`protect --viewer`, least privilege): the owner takes
//!   the snapshots and the vault only reads them (`backup canister --snapshot ID`).

use std::time::Duration;

use candid::Principal;
use canvault_protocol::canister_image::{
    CanisterBackupRequest, CanisterJob, CanisterJobState, CanisterSchedule, Consistency,
    MAX_NATIVE_SNAPSHOT_ID_BYTES, RestoreCanisterRequest,
};
use canvault_protocol::vault_api::{SnapshotInfo, SnapshotKind};
use serde_bytes::ByteBuf;

use super::human_bytes;
use canvault_factory_api::{
    CreateForkTargetRequest, FactoryError, FactoryStatus, ForkTargetResponse, SubnetChoice,
};

use crate::cli::{BackupCanisterArgs, ConsistencyArg, ForkArgs, ProtectArgs};
use crate::client::{ManagementClient, VaultClient, call_plain};
use crate::error::{CliError, CliResult};
use crate::progress::ProgressMode;
use crate::transport::Transport;

/// Most controllers a canister may have (interface specification).
const MAX_CONTROLLERS: usize = 10;

/// `protect`: shows what the vault will be allowed to do and why; with `yes`, grants it.
///
/// # Errors
/// The caller is not a controller of the canister; too many controllers; network.
pub fn protect(t: &dyn Transport, args: &ProtectArgs) -> CliResult<String> {
    let (canister, vault) = (args.canister, args.vault.vault);
    let status = ManagementClient::new(t, canister).status()?;
    let controllers = status.settings.controllers;
    let mut text = String::new();
    let already = controllers.contains(&vault);
    if args.viewer {
        text += &format!(
            "vault {vault} will be allowed to READ the snapshots of {canister} (snapshot visibility: allowed viewers), nothing else.\n\
             You take the snapshots (`icp canister snapshot create {canister}`, stopping it first for a consistent image);\n\
             the vault copies each one with `canvault backup canister {canister} --vault {vault} --snapshot ID` and leaves it in place.\n"
        );
    } else if already {
        text += &format!("vault {vault} is already a controller of {canister}.\n");
    } else {
        if controllers.len() >= MAX_CONTROLLERS {
            return Err(CliError::Usage(format!(
                "{canister} already has {MAX_CONTROLLERS} controllers, the most a canister may have: remove one first"
            )));
        }
        text += &format!(
            "vault {vault} will become a controller of {canister} (controllers now: {}).\n\
             It needs this to stop the canister, take a native snapshot, start it again and read the snapshot\n\
             (module, heap, stable memory, chunk store), and to load a snapshot into it when you restore.\n\
             A controller has full power over the canister: the vault's code only ever stops, snapshots, starts,\n\
             reads and deletes its own snapshots, and loads a snapshot when a vault owner starts a restore.\n\
             Least privilege instead: `canvault protect {canister} --vault {vault} --viewer`.\n",
            list(&controllers)
        );
    }
    if let Some(every) = args.every {
        text += &format!(
            "The vault will then back it up whole every {every}s ({}).\n",
            if args.running {
                "snapshots while it runs"
            } else {
                "stopped for the time of each snapshot"
            }
        );
    }
    if !args.yes {
        text += "Nothing changed: run it again with --yes to apply.\n";
        return Ok(text);
    }
    let management = ManagementClient::new(t, canister);
    if args.viewer {
        management.set_snapshot_viewers(vec![vault])?;
        text += &format!("done: {vault} may read the snapshots of {canister}.\n");
    } else if !already {
        let mut new = controllers;
        new.push(vault);
        management.set_controllers(new)?;
        text += &format!("done: {vault} is a controller of {canister}.\n");
    }
    if let Some(interval_secs) = args.every {
        let consistency = if args.running {
            Consistency::Running
        } else {
            Consistency::StopTakeStart
        };
        let info = VaultClient::new(t, vault).set_canister_schedule(CanisterSchedule {
            canister,
            interval_secs,
            consistency,
            label: Some("scheduled".into()),
        })?;
        text += &format!(
            "scheduled: the vault backs {canister} up whole every {interval_secs}s; the first is due at {}\n",
            super::utc(info.next_due_ns)
        );
    }
    text += &format!(
        "back it up now: canvault backup canister {canister} --vault {vault}{}\n",
        if args.viewer { " --snapshot ID" } else { "" }
    );
    Ok(text)
}

fn list(principals: &[Principal]) -> String {
    if principals.is_empty() {
        return "none".into();
    }
    principals
        .iter()
        .map(Principal::to_text)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The request `backup canister` sends.
///
/// # Errors
/// A snapshot id that is not hex or too long.
fn backup_request(args: &BackupCanisterArgs) -> CliResult<CanisterBackupRequest> {
    let consistency = match (&args.snapshot, args.consistency) {
        (Some(id), _) => {
            let bytes = hex::decode(id).map_err(|e| {
                CliError::Usage(format!(
                    "--snapshot {id}: not a hex snapshot id ({e}); `icp canister snapshot list` shows them"
                ))
            })?;
            if bytes.is_empty() || bytes.len() > MAX_NATIVE_SNAPSHOT_ID_BYTES {
                return Err(CliError::Usage(format!(
                    "--snapshot {id}: a snapshot id has 1 to {MAX_NATIVE_SNAPSHOT_ID_BYTES} bytes"
                )));
            }
            Consistency::ReadOwnerSnapshot {
                snapshot_id: ByteBuf::from(bytes),
            }
        }
        (None, ConsistencyArg::Stop) => Consistency::StopTakeStart,
        (None, ConsistencyArg::Running) => Consistency::Running,
    };
    Ok(CanisterBackupRequest {
        canister: args.canister,
        consistency,
        label: args.label.clone(),
    })
}

/// Polls a canister job until it is done or failed; `status` reads it again.
fn wait(
    t: &dyn Transport,
    mut job: CanisterJob,
    total_bytes: u64,
    label: &str,
    timeout: Duration,
    progress: ProgressMode,
    status: &dyn Fn(u64) -> CliResult<CanisterJob>,
) -> CliResult<CanisterJob> {
    let bar = progress.bytes(total_bytes, label);
    let mut waited = Duration::ZERO;
    loop {
        match &job.state {
            CanisterJobState::Done => {
                bar.finish_and_clear();
                return Ok(job);
            }
            CanisterJobState::Failed { reason } => {
                bar.finish_and_clear();
                return Err(CliError::Usage(format!(
                    "canister job {} failed: {reason} (the canister was started again and the job's native snapshots deleted)",
                    job.id
                )));
            }
            _ => {
                if bar.length().is_some_and(|len| len < job.bytes) {
                    bar.set_length(job.bytes);
                }
                bar.set_position(job.bytes);
            }
        }
        if waited >= timeout {
            return Err(CliError::Timeout(format!(
                "canister job {} is still running after {}s (it goes on in the vault: `canvault snapshot list`)",
                job.id,
                waited.as_secs()
            )));
        }
        waited += t.pause();
        job = status(job.id)?;
    }
}

/// Starts a whole-canister backup into `vault` and, with `wait_for_it`, polls it to the
/// end.
///
/// # Errors
/// The vault refused (not an owner; not a controller or viewer of the canister); the
/// job failed; timeout.
pub fn backup_job(
    t: &dyn Transport,
    vault: Principal,
    req: CanisterBackupRequest,
    wait_for_it: bool,
    timeout: Duration,
    progress: ProgressMode,
) -> CliResult<CanisterJob> {
    let v = VaultClient::new(t, vault);
    let job = v.backup_canister(req)?;
    if !wait_for_it {
        return Ok(job);
    }
    wait(t, job, 0, "canister backup", timeout, progress, &|id| {
        v.canister_backup_status(id)
    })
}

/// `backup canister`.
///
/// # Errors
/// See [`backup_job`].
pub fn backup(
    t: &dyn Transport,
    args: &BackupCanisterArgs,
    progress: ProgressMode,
) -> CliResult<String> {
    let vault = args.vault.vault;
    let job = backup_job(
        t,
        vault,
        backup_request(args)?,
        !args.no_wait,
        Duration::from_secs(args.timeout),
        progress,
    )?;
    if args.no_wait {
        return Ok(format!(
            "canister backup job {} started: {} into vault {vault}\n",
            job.id, args.canister
        ));
    }
    let snapshot = job.snapshot_id.ok_or_else(|| {
        CliError::Usage(format!(
            "canister job {} is done but names no snapshot",
            job.id
        ))
    })?;
    Ok(format!(
        "backup of {} complete: whole-canister snapshot {snapshot} in vault {vault}, {} read\n",
        args.canister,
        human_bytes(job.bytes)
    ))
}

/// True if `info` is a whole-canister snapshot.
#[must_use]
pub fn is_whole_canister(info: &SnapshotInfo) -> bool {
    matches!(info.kind, Some(SnapshotKind::WholeCanister(_)))
}

/// Restores the whole-canister snapshot `info` into `target` (the vault must control
/// it); with `wait`, polls to the end.
///
/// # Errors
/// The vault refused; the job failed; timeout.
pub fn restore(
    v: &VaultClient<'_>,
    info: &SnapshotInfo,
    target: Principal,
    wait_for_it: bool,
    timeout: Duration,
    progress: ProgressMode,
) -> CliResult<CanisterJob> {
    let job = v.restore_canister(RestoreCanisterRequest {
        snapshot_id: info.id,
        target,
    })?;
    if !wait_for_it {
        return Ok(job);
    }
    wait(
        v.transport(),
        job,
        info.image_size,
        "canister restore",
        timeout,
        progress,
        &|id| v.canister_restore_status(id),
    )
}

/// The sentence for a finished (or started) whole-canister restore.
#[must_use]
pub fn restored(job: &CanisterJob, id: u64, target: Principal) -> String {
    match job.state {
        CanisterJobState::Done => format!(
            "restored whole-canister snapshot {id} into {target}: {} uploaded, {} retries; the loaded state was read back and matched the stored root, and {target} runs\n",
            human_bytes(job.bytes),
            job.retries
        ),
        _ => format!(
            "canister restore job {} started: snapshot {id} into {target}\n",
            job.id
        ),
    }
}

/// A fresh canister on the chosen subnet from the factory (paid by the wallet, an owner
/// of the vault), then the whole-canister restore into it, waited for.
///
/// # Errors
/// Not a whole-canister snapshot; the factory or the wallet refused; the restore failed.
pub fn fork_job(
    t: &dyn Transport,
    args: &ForkArgs,
    progress: ProgressMode,
) -> CliResult<(ForkTargetResponse, CanisterJob)> {
    let v = VaultClient::new(t, args.vault.vault);
    let info = v.get_snapshot(args.id)?;
    if !is_whole_canister(&info) {
        return Err(CliError::Usage(format!(
            "snapshot {} is a kit image: restore it into a canister running the app's module with `canvault restore`",
            args.id
        )));
    }
    let subnet = match (args.subnet, args.avoid_subnet) {
        (Some(subnet), _) => SubnetChoice::Subnet { subnet },
        (None, avoid) => SubnetChoice::Default { avoid },
    };
    let req = CreateForkTargetRequest {
        vault: v.id,
        subnet,
        initial_cycles: args.initial_cycles,
    };
    let fee = match args.fee_cycles {
        Some(fee) => fee,
        None => {
            call_plain::<_, FactoryStatus>(t, args.factory, false, "status", (), "factory")?
                .fixed_cost
        }
    };
    let arg = candid::encode_one(&req).map_err(|e| CliError::Usage(e.to_string()))?;
    let reply = super::vault::wallet_call(
        t,
        args.wallet,
        args.factory,
        "create_fork_target",
        arg,
        args.initial_cycles.saturating_add(fee),
    )?;
    let created: Result<ForkTargetResponse, FactoryError> =
        candid::decode_one(&reply).map_err(|e| CliError::BadReply {
            canister: args.factory,
            method: "create_fork_target".into(),
            kind: "factory",
            message: e.to_string(),
        })?;
    let created = created.map_err(|e| CliError::Rejected {
        canister: args.factory,
        method: "create_fork_target".into(),
        message: e.to_string(),
    })?;
    let job = restore(
        &v,
        &info,
        created.canister_id,
        true,
        Duration::from_secs(args.timeout),
        progress,
    )?;
    Ok((created, job))
}

/// `fork`.
///
/// # Errors
/// See [`fork_job`].
pub fn fork(t: &dyn Transport, args: &ForkArgs, progress: ProgressMode) -> CliResult<String> {
    let (created, job) = fork_job(t, args, progress)?;
    Ok(format!(
        "forked whole-canister snapshot {} onto {} (subnet {}, deployment {}): {} uploaded, loaded, read back and matched the stored root; it runs\n  controllers: {}\n",
        args.id,
        created.canister_id,
        created.subnet.map_or_else(
            || "chosen by the cycles minting canister".into(),
            |s| s.to_text()
        ),
        created.deployment_id,
        human_bytes(job.bytes),
        list(&created.controllers),
    ))
}
