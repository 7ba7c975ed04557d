//! What the app's endpoints call: each checks the caller, then calls one kit function.
//! Admin endpoints accept the app's controllers and the configured admins; the restore
//! endpoints accept only the armed vault (checked in `restore.rs`).

use std::cell::RefCell;
use std::time::Duration;

use candid::Principal;
use canvault_protocol::chunk::valid_chunk_size;
use canvault_protocol::kit_api::{
    ArmRestoreRequest, BackupProgress, KitConfig, KitError, KitStatus, RestoreBeginRequest,
    RestoreChunksRequest, RestoreProgress,
};
use ic_cdk_timers::TimerId;

use crate::dataset::Preempted;
use crate::kit::WASM_PAGE;
use crate::{driver, hooks, now, with_kit};

thread_local! {
    static SCHEDULE: RefCell<Option<TimerId>> = const { RefCell::new(None) };
}

fn require_admin() -> Result<Principal, KitError> {
    let caller = ic_cdk::api::msg_caller();
    let admin = ic_cdk::api::is_controller(&caller)
        || with_kit(|k| k.state().config.admins.contains(&caller));
    if admin {
        Ok(caller)
    } else {
        Err(KitError::Unauthorized(caller))
    }
}

/// Changes kit settings.
///
/// # Errors
/// Not an admin; an invalid chunk size or window.
pub fn configure(config: KitConfig) -> Result<(), KitError> {
    /// Highest ceiling of calls in flight an admin may set (each holds a batch's
    /// bookkeeping on the app's heap).
    const MAX_WINDOW: u32 = 256;
    require_admin()?;
    if let Some(cs) = config.chunk_size
        && !valid_chunk_size(cs)
    {
        return Err(KitError::InvalidRequest(format!(
            "chunk size {cs} must be a multiple of 65536 between 65536 and 1048576"
        )));
    }
    if let Some(w) = config.window
        && !(1..=MAX_WINDOW).contains(&w)
    {
        return Err(KitError::InvalidRequest(format!(
            "window {w} must be between 1 and {MAX_WINDOW}"
        )));
    }
    with_kit(|k| {
        k.update_state(|s| {
            let c = &mut s.config;
            c.vault = config.vault.or(c.vault);
            c.admins = config.admins.unwrap_or_else(|| c.admins.clone());
            c.interval_seconds = config.interval_seconds.unwrap_or(c.interval_seconds);
            c.chunk_size = config.chunk_size.unwrap_or(c.chunk_size);
            c.window = config.window.unwrap_or(c.window);
            if config.max_unverified_restore_bytes.is_some() {
                c.max_unverified_restore_bytes = config.max_unverified_restore_bytes;
            }
        });
    });
    arm_timers();
    Ok(())
}

/// Freezes the image now and starts pushing it: the backup holds the image as it is
/// at this call, whatever the app writes next.
///
/// A data-set backup in progress gives way: it stops (its vault-side snapshot is
/// aborted) and is queued again, to run after this one.
///
/// # Errors
/// Not an admin; no vault configured; an image backup running or a restore armed.
pub fn backup_now() -> Result<(), KitError> {
    require_admin()?;
    start_backup(Urgency::Now)
}

/// When an image backup must hold the image.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Urgency {
    /// At the request (`backup_now`): a running data set gives way at once.
    Now,
    /// Soon (the schedule): a running data set finishes first, or gives way after
    /// `DATASET_YIELD_AFTER_NS`.
    Soon,
}

fn start_backup(urgency: Urgency) -> Result<(), KitError> {
    if urgency == Urgency::Now && with_kit(|k| k.state().config.vault.is_some()) {
        let preempted = with_kit(|k| k.preempt_dataset_backup());
        if let Some(Preempted {
            vault_snapshot: Some((vault, snapshot_id)),
        }) = preempted
        {
            driver::abort_in_vault(
                vault,
                snapshot_id,
                "the data-set backup gave way to an on-demand image backup".into(),
            );
        }
    }
    let (vault, busy, dataset_running) = with_kit(|k| {
        let s = k.state();
        (
            s.config.vault,
            s.backup.is_some() || s.restore.is_some(),
            s.backup
                .as_ref()
                .is_some_and(|b| matches!(b.target, crate::state::Target::Dataset(_))),
        )
    });
    let vault = vault.ok_or(KitError::NotConfigured)?;
    if dataset_running {
        // Image backups are never starved by data sets: this one starts before any
        // queued data set, and the running one gives way if it takes too long.
        with_kit(|k| {
            k.update_state(|s| {
                s.image_backup_requested_at_ns.get_or_insert(now());
            });
        });
        driver::kick();
        return Ok(());
    }
    if !busy && let Some(hook) = hooks().before_snapshot {
        hook();
    }
    if let Err(e) = with_kit(|k| k.freeze(vault, now())) {
        if e == KitError::BackupInProgress {
            // The watchdog: a backup in progress whose pump died is resumed.
            driver::kick();
        }
        return Err(e);
    }
    driver::schedule(Duration::ZERO);
    Ok(())
}

/// Backup and restore progress.
///
/// # Errors
/// Not an admin.
pub fn status() -> Result<KitStatus, KitError> {
    require_admin()?;
    Ok(with_kit(|k| {
        let s = k.state();
        KitStatus {
            image_size: s.image_pages * WASM_PAGE,
            chunk_size: s.known_chunk_size,
            vault: s.config.vault,
            interval_seconds: s.config.interval_seconds,
            dirty_chunks: k.dirty_chunks(),
            backup: s.backup.as_ref().map(|b| BackupProgress {
                snapshot_id: b.snapshot_id,
                started_at_ns: b.started_at_ns,
                image_size: b.image_size,
                chunks_total: b.chunks_total,
                chunks_done: b.chunks_done,
                bytes_sent: b.bytes_sent,
                retries: b.retries,
                last_error: b.last_error.clone(),
            }),
            last_backup: s.last_backup.clone(),
            last_failure: s.last_failure.clone(),
            restore: s.restore.as_ref().map(|r| RestoreProgress {
                vault: r.vault,
                snapshot_id: r.snapshot_id,
                expected_root: r.expected_root,
                chunks_staged: u32::try_from(k.staged.len()).unwrap_or(u32::MAX),
                chunks_total: r
                    .begun
                    .map(|g| canvault_protocol::chunk::chunk_count(g.image_size, g.chunk_size)),
            }),
            backups_completed: s.backups_completed,
            restores_completed: s.restores_completed,
            foreign_stable_memory: k.foreign_stable_memory().map(|f| f.to_string()),
            image_backup_requested_at_ns: s.image_backup_requested_at_ns,
        }
    }))
}

/// Arms a restore.
///
/// # Errors
/// Not an admin; a backup running.
pub fn arm_restore(req: ArmRestoreRequest) -> Result<(), KitError> {
    require_admin()?;
    with_kit(|k| k.arm_restore(req))
}

/// Drops the armed restore.
///
/// # Errors
/// Not an admin; nothing armed.
pub fn abandon_restore() -> Result<(), KitError> {
    require_admin()?;
    with_kit(|k| k.abandon_restore())
}

/// Queues a backup of the app-defined data set `name` (e.g. one user's posts) to
/// `vault` (e.g. that user's personal vault, where this app is a writer). The app's
/// endpoint decides who may ask; the kit stages the bytes and sends only the chunks
/// that changed since that data set's last backup.
///
/// # Errors
/// See `Kit::queue_dataset`: a bad name, a data set over 64 MiB, the image vault, a
/// full queue.
pub fn backup_dataset(name: &str, vault: Principal, bytes: Vec<u8>) -> Result<(), KitError> {
    with_kit(|k| k.queue_dataset(name, vault, bytes))?;
    driver::schedule(Duration::ZERO);
    Ok(())
}

/// The state of data set `name`: its vault, last backup, queued jobs.
#[must_use]
pub fn dataset_info(name: &str) -> Option<canvault_protocol::kit_api::DatasetInfo> {
    with_kit(|k| k.dataset_info(name))
}

/// The armed vault announces the image.
///
/// # Errors
/// See `Kit::restore_begin`.
pub fn restore_begin(req: RestoreBeginRequest) -> Result<(), KitError> {
    let caller = ic_cdk::api::msg_caller();
    with_kit(|k| k.restore_begin(caller, &req))
}

/// The armed vault pushes chunks.
///
/// # Errors
/// See `Kit::restore_chunks`.
pub fn restore_chunks(req: RestoreChunksRequest) -> Result<u32, KitError> {
    let caller = ic_cdk::api::msg_caller();
    with_kit(|k| k.restore_chunks(caller, req))
}

/// The armed vault asks to verify and switch; then the app's `after_restore` runs.
///
/// # Errors
/// See `Kit::restore_finish`.
pub fn restore_finish(snapshot_id: u64) -> Result<(), KitError> {
    let caller = ic_cdk::api::msg_caller();
    let switched = with_kit(|k| k.restore_finish(caller, snapshot_id, now()))?;
    // `switched == false`: a retry of a finish already applied, answered as success.
    if switched && let Some(hook) = hooks().after_restore {
        hook();
    }
    Ok(())
}

/// (Re-)arms the backup schedule and resumes a backup in progress.
pub(crate) fn arm_timers() {
    let (interval, active) = with_kit(|k| {
        (
            k.state().config.interval_seconds,
            k.state().backup.is_some(),
        )
    });
    SCHEDULE.with(|t| {
        if let Some(id) = t.borrow_mut().take() {
            ic_cdk_timers::clear_timer(id);
        }
        if interval > 0 {
            let id = ic_cdk_timers::set_timer_interval(Duration::from_secs(interval), || async {
                // A backup still running or a restore armed: skip this tick.
                if let Err(e) = start_backup(Urgency::Soon) {
                    ic_cdk::println!("canvault: scheduled backup skipped: {e}");
                }
            });
            *t.borrow_mut() = Some(id);
        }
    });
    if interval > 0 {
        driver::revive_timers();
    }
    if active {
        driver::schedule(Duration::ZERO);
    }
}

/// The vault image backups go to, if configured (apps use it to keep data sets out of
/// it).
#[must_use]
pub fn image_vault() -> Option<Principal> {
    with_kit(|k| k.state().config.vault)
}
