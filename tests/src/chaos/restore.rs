//! Restores under chaos: into a fresh app and into the app itself. A restore that ends
//! `Done` must leave the target byte-identical to the snapshot's image; one that ends
//! `Failed` must leave the target as it was.

use std::rc::Rc;

use canvault_protocol::vault_api::{RestoreJob, RestoreJobState};

use super::adapter;
use super::soak::Soak;

/// Rounds a restore job may take, faults included, before the soak calls it stuck.
const RESTORE_ROUNDS: u64 = 4_000;

impl Soak {
    /// Restores verified snapshot `id` of the app's vault into a fresh app on the third
    /// subnet (armed with the snapshot's root if `with_root`), checks it, deletes it.
    ///
    /// # Errors
    /// A violation: a wrong image after `Done`, a changed target after `Failed`, a
    /// stuck job.
    pub fn restore_fresh(&mut self, id: u64, with_root: bool) -> Result<String, String> {
        let verified = self.main.verified.get(&id).cloned().ok_or("not verified")?;
        let (admin, vault) = (self.s.admin, self.s.vault);
        let fresh = adapter::install_fresh_app(&mut self.s.ic, 2, admin);
        let before = adapter::app_image(&self.s.ic, fresh);
        adapter::arm_restore(
            &mut self.s.ic,
            fresh,
            admin,
            vault,
            id,
            with_root.then_some(verified.root),
        )
        .map_err(|e| format!("a fresh app refuses to arm: {e}"))?;
        let outcome = match adapter::start_restore(&mut self.s.ic, vault, admin, id, fresh) {
            Ok(job) => {
                let job = self.wait_restore(job)?;
                let image = adapter::app_image(&self.s.ic, fresh);
                self.judge(&job, &image, &verified.image, &before)?
            }
            Err(e) => {
                self.tally.restores_failed += 1;
                format!("start_restore refused: {e}")
            }
        };
        let _ = adapter::delete(&mut self.s.ic, fresh, admin);
        self.content_due = true;
        Ok(format!(
            "snapshot {id} (root given: {with_root}) into {fresh}: {outcome}"
        ))
    }

    /// Restores a verified snapshot into the app itself, when no backup or restore is
    /// in progress; on `Done` the model's live image becomes the snapshot's.
    ///
    /// # Errors
    /// A violation, as for [`Soak::restore_fresh`].
    pub fn restore_same(&mut self) -> Result<String, String> {
        let (app, admin, vault) = (self.s.app, self.s.admin, self.s.vault);
        let status = adapter::kit_status(&mut self.s.ic, app, admin)?;
        if status.backup.is_some() || status.restore.is_some() {
            return Ok("the kit is busy".into());
        }
        let Some(id) = self.pick_verified() else {
            return Ok("no complete snapshot yet".into());
        };
        let verified = self.main.verified.get(&id).cloned().ok_or("not verified")?;
        let with_root = self.rng.chance(50);
        if let Err(e) = adapter::arm_restore(
            &mut self.s.ic,
            app,
            admin,
            vault,
            id,
            with_root.then_some(verified.root),
        ) {
            return Ok(format!("arm refused: {e}"));
        }
        let job = match adapter::start_restore(&mut self.s.ic, vault, admin, id, app) {
            Ok(job) => job,
            Err(e) => {
                let abandoned = adapter::abandon_restore(&mut self.s.ic, app, admin);
                self.tally.restores_failed += 1;
                return Ok(format!(
                    "start_restore refused: {e}; abandon: {abandoned:?}"
                ));
            }
        };
        let job = self.wait_restore(job)?;
        let image = adapter::app_image(&self.s.ic, app);
        let before = Rc::clone(&self.live);
        let outcome = self.judge(&job, &image, &verified.image, &before)?;
        if job.state == RestoreJobState::Done {
            self.live = Rc::clone(&verified.image);
        } else {
            let abandoned = adapter::abandon_restore(&mut self.s.ic, app, admin);
            self.content_due = true;
            return Ok(format!("snapshot {id}: {outcome}; abandon: {abandoned:?}"));
        }
        self.content_due = true;
        Ok(format!(
            "snapshot {id} (root given: {with_root}): {outcome}"
        ))
    }

    /// Ticks until `job` is done or failed.
    fn wait_restore(&mut self, job: RestoreJob) -> Result<RestoreJob, String> {
        let (vault, admin) = (self.s.vault, self.s.admin);
        for _ in 0..RESTORE_ROUNDS {
            let j = adapter::restore_status(&mut self.s.ic, vault, admin, job.id)?;
            if matches!(
                j.state,
                RestoreJobState::Done | RestoreJobState::Failed { .. }
            ) {
                return Ok(j);
            }
            self.s.ic.tick();
        }
        let j = adapter::restore_status(&mut self.s.ic, vault, admin, job.id)?;
        if std::env::var("CHAOS_DEBUG").is_ok() {
            let logs = self.s.ic.canister_logs(vault);
            eprintln!(
                "DEBUG vault logs (last 30):\n{}",
                logs[logs.len().saturating_sub(30)..].join("\n")
            );
            let f = self.s.ic.fault_log();
            eprintln!(
                "DEBUG fault log (last 30):\n{}",
                f[f.len().saturating_sub(30)..].join("\n")
            );
        }
        Err(format!(
            "restore job {} still running after {RESTORE_ROUNDS} rounds: {j:?}",
            job.id
        ))
    }

    /// The target after a finished job: the snapshot's image if `Done`, unchanged if
    /// `Failed`.
    fn judge(
        &mut self,
        job: &RestoreJob,
        image: &[u8],
        snapshot: &[u8],
        before: &[u8],
    ) -> Result<String, String> {
        match &job.state {
            RestoreJobState::Done => {
                if image != snapshot {
                    let lost = differing(image, snapshot);
                    self.tally.bytes_lost += lost;
                    return Err(format!(
                        "BYTES LOST: restore job {} is Done but {lost} bytes of the target differ from the snapshot",
                        job.id
                    ));
                }
                self.tally.restores_done += 1;
                Ok("done, byte-identical".into())
            }
            RestoreJobState::Failed { reason } => {
                if image != before {
                    return Err(format!(
                        "restore job {} failed ({reason}) but the target's image changed",
                        job.id
                    ));
                }
                self.tally.restores_failed += 1;
                Ok(format!("failed, target unchanged: {reason}"))
            }
            other => Err(format!("unfinished job judged: {other:?}")),
        }
    }
}

/// Bytes that differ between two images (length difference included).
pub fn differing(a: &[u8], b: &[u8]) -> u64 {
    let same_len = a.iter().zip(b).filter(|(x, y)| x != y).count();
    (same_len + a.len().abs_diff(b.len())) as u64
}
