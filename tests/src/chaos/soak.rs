//! The soak's world: the example app and its vault, users with personal vaults, the
//! model, and the checks run after every step.

use std::rc::Rc;

use candid::Principal;
use canvault_protocol::kit_api::KitStatus;
use canvault_protocol::merkle::image_root_of_bytes;
use ic_harness::RejectCode;

use super::adapter;
use super::invariants::{self, Seen};
use super::model::VaultModel;
use super::report::Tally;
use super::rng::Rng;
use crate::app::AppScenario;

/// Size the app is filled to before the first step.
pub const START_IMAGE_BYTES: u64 = 2 * 1024 * 1024;
/// Writes stop growing the image past this (they edit instead).
pub const MAX_IMAGE_BYTES: u64 = 5 * 1024 * 1024;
/// Steps an image the app no longer holds stays a candidate for a late-completing backup.
pub const KEEP_IMAGES_STEPS: u64 = 40;
/// Users with a personal vault.
pub const USERS: usize = 2;

/// A user of the app with a personal vault.
pub struct Person {
    /// Their principal.
    pub principal: Principal,
    /// Their user id in the app.
    pub user_id: u64,
    /// Their personal vault and what it must hold.
    pub vault: VaultModel,
    /// The last complete data-set backup and failure time already counted.
    pub seen: (Option<u64>, Option<u64>),
}

/// An on-demand backup started by the soak: the image it must capture.
pub struct OnDemand {
    /// The app's image when `canvault_backup_now` ran.
    pub image: Rc<Vec<u8>>,
    /// The kit's last complete backup before it.
    pub previous: Option<u64>,
    /// When the kit froze it (its `BackupProgress::started_at_ns`).
    pub frozen_at_ns: u64,
}

/// The soak's state for one seed.
pub struct Soak {
    /// The IC, the app, its vault and their admin.
    pub s: AppScenario,
    /// Choices.
    pub rng: Rng,
    /// The seed.
    pub seed: u64,
    /// The step running.
    pub step: u64,
    /// Counters.
    pub tally: Tally,
    /// The image the live app must hold.
    pub live: Rc<Vec<u8>>,
    /// The app's vault.
    pub main: VaultModel,
    /// Users with personal vaults.
    pub users: Vec<Person>,
    /// The on-demand backup in flight.
    pub on_demand: Option<OnDemand>,
    /// The kit's last complete backup and last failure time already counted.
    pub kit_seen: (Option<u64>, Option<u64>),
    /// Fault-log lines already counted.
    pub log_seen: usize,
    /// A restore ran: the next check downloads everything.
    pub content_due: bool,
}

impl Soak {
    /// Sets up the world for `seed`: the app filled, users joined and opted in.
    ///
    /// # Errors
    /// A setup call failed.
    pub fn new(seed: u64) -> Result<Self, String> {
        let mut s = AppScenario::new();
        s.fill(s.app, START_IMAGE_BYTES, seed);
        let live = adapter::app_image(&s.ic, s.app);
        let mut main = VaultModel::new(s.vault, s.admin);
        let live = main.book.record(live);
        let mut users = Vec::new();
        for i in 0..USERS {
            let principal = crate::principal(&format!("chaos user {i}"));
            let vault = adapter::install_personal_vault(&mut s.ic, 1, principal, s.app);
            let user_id = adapter::join(&mut s.ic, s.app, principal, &format!("user{i}"))?;
            adapter::post(&mut s.ic, s.app, principal, &format!("hello from user {i}"))?;
            adapter::opt_in(&mut s.ic, s.app, principal, vault)?;
            users.push(Person {
                principal,
                user_id,
                vault: VaultModel::new(vault, principal),
                seen: (None, None),
            });
        }
        let mut soak = Self {
            s,
            rng: Rng::new(seed),
            seed,
            step: 0,
            tally: Tally::default(),
            live,
            main,
            users,
            on_demand: None,
            kit_seen: (None, None),
            log_seen: 0,
            content_due: false,
        };
        soak.app_written();
        Ok(soak)
    }

    /// After an app write: the live image is whatever the app holds now.
    pub fn app_written(&mut self) {
        let image = adapter::app_image(&self.s.ic, self.s.app);
        self.live = self.main.book.record(image);
        self.main.book.held(&self.live, self.step);
    }

    /// The invariants after a step; `content` adds chunk verification and downloads.
    ///
    /// # Errors
    /// The first violation.
    pub fn check(&mut self, content: bool) -> Result<(), String> {
        // The live image changes only through app writes or a verified restore.
        let image = adapter::app_image(&self.s.ic, self.s.app);
        if image != *self.live {
            return Err(format!(
                "the app's image changed without a write or a verified restore ({} bytes, model {} bytes)",
                image.len(),
                self.live.len()
            ));
        }
        self.main.book.held(&self.live, self.step);
        let seen = invariants::check_vault(
            &mut self.s.ic,
            &mut self.main,
            content,
            &mut self.tally.bytes_lost,
        )?;
        self.count(&seen, false);
        for i in 0..self.users.len() {
            let seen = invariants::check_vault(
                &mut self.s.ic,
                &mut self.users[i].vault,
                content,
                &mut self.tally.bytes_lost,
            )?;
            self.count(&seen, true);
        }
        if content {
            let n = self.main.verified.len()
                + self
                    .users
                    .iter()
                    .map(|u| u.vault.verified.len())
                    .sum::<usize>();
            self.tally.downloads_verified += n as u64;
        }
        self.check_kit()?;
        self.check_datasets()?;
        self.count_fired_faults();
        Ok(())
    }

    fn count(&mut self, seen: &Seen, dataset: bool) {
        if dataset {
            self.tally.dataset_backups_completed += seen.new_complete.len() as u64;
        } else {
            self.tally.backups_completed += seen.new_complete.len() as u64;
        }
        self.tally.snapshots_deleted += seen.gone.len() as u64;
    }

    /// The kit's view: failures counted, an on-demand backup captured its begin image.
    fn check_kit(&mut self) -> Result<(), String> {
        let status = adapter::kit_status(&mut self.s.ic, self.s.app, self.s.admin)?;
        let last = status.last_backup.as_ref().map(|l| l.snapshot_id);
        let failed_at = status.last_failure.as_ref().map(|f| f.at_ns);
        if failed_at.is_some() && failed_at != self.kit_seen.1 {
            self.tally.backups_failed += 1;
        }
        self.kit_seen = (last, failed_at);
        self.check_on_demand(&status)?;
        if status.backup.is_none() {
            // No backup in flight can capture an old image any more.
            let keep = [Rc::clone(&self.live)];
            self.main
                .prune(self.step.saturating_sub(KEEP_IMAGES_STEPS), &keep);
        }
        Ok(())
    }

    /// An on-demand backup that completed holds the image of its call. While it runs
    /// the kit reports its freeze time; once the kit's last backup carries that time,
    /// its snapshot must be the image of the call. If the kit completed a scheduled
    /// backup after it within the same step, the on-demand snapshot is looked for among
    /// those completed since; if none holds the image, the on-demand backup failed
    /// (the kit clears a failure when the next backup completes).
    fn check_on_demand(&mut self, status: &KitStatus) -> Result<(), String> {
        let Some(od) = self.on_demand.as_ref() else {
            return Ok(());
        };
        let running = status
            .backup
            .as_ref()
            .is_some_and(|b| b.started_at_ns == od.frozen_at_ns);
        let last = status.last_backup.as_ref();
        if running {
            return Ok(());
        }
        let od = self.on_demand.take().expect("checked above");
        let Some(l) = last.filter(|l| Some(l.snapshot_id) != od.previous) else {
            // It ended without completing: it failed.
            return Ok(());
        };
        let image_of = |id: u64| self.main.verified.get(&id).map(|v| Rc::clone(&v.image));
        if l.frozen_at_ns == Some(od.frozen_at_ns) {
            let same = image_of(l.snapshot_id).map_or_else(
                || image_root_of_bytes(&od.image, status.chunk_size) == l.root,
                |img| *img == *od.image,
            );
            if !same {
                return Err(format!(
                    "on-demand backup {} is not the image the app held at canvault_backup_now",
                    l.snapshot_id
                ));
            }
            self.tally.on_demand_verified += 1;
            return Ok(());
        }
        let since = od.previous.map_or(0, |p| p + 1)..l.snapshot_id;
        let held = self
            .main
            .verified
            .range(since)
            .any(|(_, v)| *v.image == *od.image);
        if held {
            self.tally.on_demand_verified += 1;
        } else {
            self.tally.on_demand_unverified += 1;
        }
        Ok(())
    }

    /// The freeze time of the backup `canvault_backup_now` just started: it must be
    /// an image backup frozen at the call (not one that ran before it), unless it
    /// already ended.
    pub(super) fn frozen_now(&mut self, called_at_ns: u64) -> Result<u64, String> {
        let status = adapter::kit_status(&mut self.s.ic, self.s.app, self.s.admin)?;
        match status.backup {
            Some(b) if b.started_at_ns >= called_at_ns => Ok(b.started_at_ns),
            Some(b) => Err(format!(
                "canvault_backup_now answered Ok but the backup in progress was frozen at {} ns, before the call ({called_at_ns} ns)",
                b.started_at_ns
            )),
            None => Ok(status
                .last_backup
                .and_then(|l| l.frozen_at_ns)
                .unwrap_or(called_at_ns)),
        }
    }

    /// Each user's data-set state: completions and failures counted.
    fn check_datasets(&mut self) -> Result<(), String> {
        for u in &mut self.users {
            let info = match adapter::my_data_backup(&mut self.s.ic, self.s.app, u.principal) {
                Ok(info) => info,
                // A restore of the app to an image from before the user joined.
                Err(_) => continue,
            };
            let Some(info) = info else { continue };
            let failed_at = info.last_failure.as_ref().map(|f| f.at_ns);
            if failed_at.is_some() && failed_at != u.seen.1 {
                self.tally.dataset_backups_failed += 1;
            }
            u.seen = (info.last_backup.as_ref().map(|l| l.snapshot_id), failed_at);
            if info.vault != u.vault.id {
                return Err(format!(
                    "{}'s data set goes to {}, not their vault",
                    u.principal, info.vault
                ));
            }
        }
        Ok(())
    }

    fn count_fired_faults(&mut self) {
        let log = self.s.ic.fault_log();
        self.tally.faults_fired += log[self.log_seen..]
            .iter()
            .filter(|l| {
                l.contains("fault fired") || l.contains("is offline") || l.contains("is frozen")
            })
            .count() as u64;
        self.log_seen = log.len();
    }

    /// Ends the chaos: disarms every pending fault, lets work drain, checks that the
    /// kit still backs up (a final on-demand backup of the live image completes), runs
    /// the full content checks and restores the newest snapshot into a fresh canister.
    ///
    /// # Errors
    /// A violation.
    pub fn finish(&mut self) -> Result<(), String> {
        let (app, vault) = (self.s.app, self.s.vault);
        let personal: Vec<Principal> = self.users.iter().map(|u| u.vault.id).collect();
        for code in [RejectCode::SysTransient] {
            for (from, to) in [(app, vault), (vault, app)] {
                self.s.ic.inject_rejects(from, to, 0, code);
                self.s.ic.drop_responses(from, to, 0);
            }
            for p in &personal {
                self.s.ic.inject_rejects(app, *p, 0, code);
                self.s.ic.drop_responses(app, *p, 0);
            }
        }
        self.s.ic.set_queue_shuffle(None);
        self.s.ic.unfreeze_canister(app);
        self.s.ic.unfreeze_canister(vault);
        adapter::set_interval(&mut self.s.ic, app, self.s.admin, 0)?;
        self.wait_backup_idle(3_000)?;
        // Liveness: the kit backs the live image up after all that.
        let called_at_ns = self.s.ic.time_nanos();
        adapter::backup_now(&mut self.s.ic, app, self.s.admin)
            .map_err(|e| format!("the kit refuses a backup after the chaos: {e}"))?;
        let previous = self.kit_seen.0;
        let frozen_at_ns = self.frozen_now(called_at_ns)?;
        self.on_demand = Some(OnDemand {
            image: Rc::clone(&self.live),
            previous,
            frozen_at_ns,
        });
        self.wait_backup_idle(3_000)?;
        self.check(true)?;
        let status = adapter::kit_status(&mut self.s.ic, app, self.s.admin)?;
        let last = status.last_backup.as_ref().map(|l| l.snapshot_id);
        if last.is_none() || last == previous {
            return Err(format!(
                "the final backup, with no fault armed, did not complete: {:?}",
                status.last_failure
            ));
        }
        let newest = *self
            .main
            .verified
            .keys()
            .next_back()
            .ok_or("no complete snapshot at the end")?;
        self.restore_fresh(newest, true)?;
        Ok(())
    }

    /// Ticks until the kit has no backup in progress.
    ///
    /// # Errors
    /// Still busy after `rounds`: the kit is wedged.
    pub fn wait_backup_idle(&mut self, rounds: u64) -> Result<(), String> {
        for _ in 0..rounds {
            let status = adapter::kit_status(&mut self.s.ic, self.s.app, self.s.admin)?;
            if status.backup.is_none() {
                return Ok(());
            }
            self.s.ic.tick();
        }
        let status = adapter::kit_status(&mut self.s.ic, self.s.app, self.s.admin)?;
        Err(format!(
            "the kit's backup is still in progress after {rounds} rounds with no fault armed: {:?}",
            status.backup
        ))
    }
}
