//! The soak's actions: what one step may do, drawn with fixed weights from the seed.

use std::rc::Rc;
use std::time::Duration;

use canvault_protocol::vault_api::{RetentionPolicy, SnapshotInfo, SnapshotState};
use ic_harness::RejectCode;

use super::adapter;
use super::soak::{MAX_IMAGE_BYTES, OnDemand, Soak};

/// One step's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The app's controller writes in bulk (add, edit or fill posts).
    Write,
    /// A user posts (or joins again after a restore forgot them).
    UserPost,
    /// `canvault_backup_now`, then a few rounds.
    BackupNow,
    /// Changes the kit's backup interval (0: off).
    Interval,
    /// Rounds pass.
    Tick,
    /// A user asks for a backup of their data set into their personal vault.
    Dataset,
    /// The app is stopped, upgraded and started.
    UpgradeApp,
    /// The app's vault is stopped, upgraded with the same module and started.
    UpgradeVault,
    /// A personal vault is upgraded by its user.
    UpgradePersonalVault,
    /// A fault of the harness is armed (see [`FAULT_KINDS`]).
    Fault,
    /// An owner sets a retention policy and runs a pass, maybe after time passes.
    Retention,
    /// The clock jumps (minutes to days).
    AdvanceTime,
    /// An owner deletes a snapshot that is not the newest.
    DeleteSnapshot,
    /// A complete snapshot is restored into a fresh app.
    RestoreFresh,
    /// A complete snapshot is restored into the app itself.
    RestoreSame,
}

/// Every action with its weight.
pub const ACTIONS: [(Action, u64); 15] = [
    (Action::Write, 22),
    (Action::UserPost, 5),
    (Action::BackupNow, 12),
    (Action::Interval, 3),
    (Action::Tick, 10),
    (Action::Dataset, 7),
    (Action::UpgradeApp, 3),
    (Action::UpgradeVault, 3),
    (Action::UpgradePersonalVault, 1),
    (Action::Fault, 16),
    (Action::Retention, 5),
    (Action::AdvanceTime, 3),
    (Action::DeleteSnapshot, 2),
    (Action::RestoreFresh, 3),
    (Action::RestoreSame, 2),
];

/// The fault kinds of the harness the soak arms.
pub const FAULT_KINDS: [&str; 6] = ["reject", "drop", "trap", "offline", "freeze", "shuffle"];

const REJECT_CODES: [RejectCode; 6] = [
    RejectCode::SysFatal,
    RejectCode::SysTransient,
    RejectCode::DestinationInvalid,
    RejectCode::CanisterReject,
    RejectCode::CanisterError,
    RejectCode::SysUnknown,
];

impl Action {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Write => "app write",
            Self::UserPost => "user post",
            Self::BackupNow => "backup now",
            Self::Interval => "backup interval",
            Self::Tick => "rounds pass",
            Self::Dataset => "data-set backup",
            Self::UpgradeApp => "upgrade app",
            Self::UpgradeVault => "upgrade vault",
            Self::UpgradePersonalVault => "upgrade personal vault",
            Self::Fault => "fault",
            Self::Retention => "retention pass",
            Self::AdvanceTime => "time jump",
            Self::DeleteSnapshot => "delete snapshot",
            Self::RestoreFresh => "restore into fresh app",
            Self::RestoreSame => "restore into the app",
        }
    }
}

impl Soak {
    /// Draws the next action.
    pub fn choose(&mut self) -> Action {
        let weights: Vec<u64> = ACTIONS.iter().map(|(_, w)| *w).collect();
        ACTIONS[self.rng.weighted(&weights)].0
    }

    /// Runs `action`; returns a description of what it did (for the failure trail).
    ///
    /// # Errors
    /// A violation found while acting.
    pub fn perform(&mut self, action: Action) -> Result<String, String> {
        self.tally.action(action.name());
        match action {
            Action::Write => self.write(),
            Action::UserPost => self.user_post(),
            Action::BackupNow => self.backup_now(),
            Action::Interval => {
                let secs = *self.rng.pick(&[0, 0, 15, 45, 120, 600]);
                let r = adapter::set_interval(&mut self.s.ic, self.s.app, self.s.admin, secs);
                let rounds = self.rng.range(0, 20);
                self.ticks(rounds);
                Ok(format!("interval {secs}s: {r:?}, {rounds} rounds"))
            }
            Action::Tick => {
                let rounds = self.rng.range(1, 60);
                self.ticks(rounds);
                Ok(format!("{rounds} rounds"))
            }
            Action::Dataset => self.dataset(),
            Action::UpgradeApp => {
                let r = adapter::upgrade_app(&mut self.s.ic, self.s.app, self.s.admin);
                self.tally.upgrades += u64::from(r.is_ok());
                Ok(format!("{r:?}"))
            }
            Action::UpgradeVault => {
                let r = adapter::upgrade_vault(&mut self.s.ic, self.s.vault, self.s.admin);
                self.tally.upgrades += u64::from(r.is_ok());
                Ok(format!("{r:?}"))
            }
            Action::UpgradePersonalVault => {
                let i = self.rng.below(self.users.len() as u64) as usize;
                let (vault, user) = (self.users[i].vault.id, self.users[i].principal);
                let r = adapter::upgrade_vault(&mut self.s.ic, vault, user);
                self.tally.upgrades += u64::from(r.is_ok());
                Ok(format!("vault of user {i}: {r:?}"))
            }
            Action::Fault => Ok(self.fault()),
            Action::Retention => self.retention(),
            Action::AdvanceTime => {
                let secs = *self
                    .rng
                    .pick(&[60, 600, 3_600, 6 * 3_600, 86_400, 2 * 86_400]);
                self.s.ic.advance_time(Duration::from_secs(secs));
                self.ticks(3);
                Ok(format!("{secs}s"))
            }
            Action::DeleteSnapshot => self.delete_snapshot(),
            Action::RestoreFresh => {
                let Some(id) = self.pick_verified() else {
                    return Ok("no complete snapshot yet".into());
                };
                let with_root = self.rng.chance(50);
                self.restore_fresh(id, with_root)
            }
            Action::RestoreSame => self.restore_same(),
        }
    }

    /// Ticks `rounds` rounds.
    pub fn ticks(&mut self, rounds: u64) {
        for _ in 0..rounds {
            self.s.ic.tick();
        }
    }

    /// A verified complete snapshot of the app's vault, at random.
    pub fn pick_verified(&mut self) -> Option<u64> {
        let ids: Vec<u64> = self.main.verified.keys().copied().collect();
        (!ids.is_empty()).then(|| *self.rng.pick(&ids))
    }

    fn write(&mut self) -> Result<String, String> {
        let (app, admin) = (self.s.app, self.s.admin);
        let stats = adapter::stats(&mut self.s.ic, app, admin)?;
        let seed = self.rng.next_u64();
        let grow = stats.image_bytes < MAX_IMAGE_BYTES;
        let (what, r) = match self.rng.below(3) {
            0 if grow => {
                let to =
                    (stats.image_bytes + self.rng.range(64 << 10, 512 << 10)).min(MAX_IMAGE_BYTES);
                (
                    format!("fill_to {to}"),
                    adapter::fill_to(&mut self.s.ic, app, admin, to, seed).map(drop),
                )
            }
            2 if grow => {
                let n = self.rng.range(20, 600) as u32;
                (
                    format!("add_posts {n}"),
                    adapter::add_posts(&mut self.s.ic, app, admin, n, seed).map(drop),
                )
            }
            _ => {
                let first = self.rng.below(stats.posts.max(1));
                let n = self.rng.range(1, 400);
                (
                    format!("edit_posts {first}+{n}"),
                    adapter::edit_posts(&mut self.s.ic, app, admin, first, n, seed).map(drop),
                )
            }
        };
        self.written(r.is_ok());
        Ok(format!("{what}: {r:?}"))
    }

    /// Counts a write; on success the live image is what the app now holds (a failed
    /// write must leave it unchanged, which the step's check verifies).
    fn written(&mut self, ok: bool) {
        if ok {
            self.tally.writes += 1;
            self.app_written();
        } else {
            self.tally.writes_rejected += 1;
        }
    }

    fn user_post(&mut self) -> Result<String, String> {
        let i = self.rng.below(self.users.len() as u64) as usize;
        let user = self.users[i].principal;
        let text = format!(
            "post {} of user {i} at step {}",
            self.rng.next_u64() % 1000,
            self.step
        );
        let r = adapter::post(&mut self.s.ic, self.s.app, user, &text);
        if r.is_err() {
            // A restore may have taken the app back to before the user joined: join again.
            let joined = adapter::join(&mut self.s.ic, self.s.app, user, &format!("user{i}"));
            self.written(joined.is_ok());
            if let Ok(id) = joined {
                self.users[i].user_id = id;
                let opted =
                    adapter::opt_in(&mut self.s.ic, self.s.app, user, self.users[i].vault.id);
                self.written(opted.is_ok());
            }
            return Ok(format!("user {i}: post {r:?}; joined again as {joined:?}"));
        }
        self.written(true);
        Ok(format!("user {i}: {r:?}"))
    }

    fn backup_now(&mut self) -> Result<String, String> {
        let status = adapter::kit_status(&mut self.s.ic, self.s.app, self.s.admin)?;
        let previous = status.last_backup.map(|l| l.snapshot_id);
        let called_at_ns = self.s.ic.time_nanos();
        let r = adapter::backup_now(&mut self.s.ic, self.s.app, self.s.admin);
        match &r {
            Ok(()) => {
                let frozen_at_ns = self.frozen_now(called_at_ns)?;
                self.on_demand = Some(OnDemand {
                    image: Rc::clone(&self.live),
                    previous,
                    frozen_at_ns,
                });
            }
            Err(_) => self.tally.backups_refused += 1,
        }
        let rounds = self.rng.range(0, 25);
        self.ticks(rounds);
        Ok(format!("{r:?}, {rounds} rounds"))
    }

    fn dataset(&mut self) -> Result<String, String> {
        let i = self.rng.below(self.users.len() as u64) as usize;
        let (user, user_id) = (self.users[i].principal, self.users[i].user_id);
        let expected = adapter::dataset_bytes(&self.live, user_id);
        self.users[i].vault.book.record(expected);
        let r = adapter::backup_my_data(&mut self.s.ic, self.s.app, user);
        let rounds = self.rng.range(0, 15);
        self.ticks(rounds);
        Ok(format!("user {i}: {r:?}, {rounds} rounds"))
    }

    fn fault(&mut self) -> String {
        let (app, vault) = (self.s.app, self.s.vault);
        let personal = self.users[self.rng.below(self.users.len() as u64) as usize]
            .vault
            .id;
        let routes = [
            (app, vault, "app->vault"),
            (vault, app, "vault->app"),
            (app, personal, "app->personal"),
        ];
        let kind = *self.rng.pick(&FAULT_KINDS);
        let what = match kind {
            "reject" => {
                let code = *self.rng.pick(&REJECT_CODES);
                let (from, to, route) = *self.rng.pick(&routes);
                let count = if self.rng.chance(10) {
                    25
                } else {
                    self.rng.range(1, 4) as u32
                };
                self.s.ic.inject_rejects(from, to, count, code);
                self.tally.fault(format!("reject {code:?}"));
                format!("{count} rejects {code:?} {route}")
            }
            "drop" => {
                let (from, to, route) = *self.rng.pick(&routes);
                let count = self.rng.range(1, 3) as u32;
                self.s.ic.drop_responses(from, to, count);
                self.tally.fault("dropped responses");
                format!("{count} dropped responses {route}")
            }
            "trap" => {
                let target = *self.rng.pick(&[app, vault]);
                // A message execution: the canisters' own code (a system task runs only
                // ic-cdk-timers' scheduler; see `trap_next_message_execution`).
                self.s.ic.trap_next_message_execution(target);
                self.tally.fault("trapping execution");
                format!(
                    "next message execution of {} traps",
                    if target == app { "app" } else { "vault" }
                )
            }
            "offline" => {
                let target = *self.rng.pick(&[app, vault]);
                let subnet = self.s.ic.get_subnet(target).expect("on a subnet");
                let rounds = self.rng.range(3, 40);
                self.s.ic.take_subnet_offline(subnet, rounds);
                self.tally.fault("offline subnet");
                format!(
                    "subnet of the {} offline {rounds} rounds",
                    if target == app { "app" } else { "vault" }
                )
            }
            "freeze" => {
                let target = *self.rng.pick(&[app, vault]);
                let rounds = self.rng.range(3, 30);
                self.s.ic.freeze_canister(target);
                self.ticks(rounds);
                self.s.ic.unfreeze_canister(target);
                self.tally.fault("frozen canister");
                format!(
                    "{} frozen {rounds} rounds",
                    if target == app { "app" } else { "vault" }
                )
            }
            _ => {
                let on = self.rng.chance(60);
                let seed = self.rng.next_u64();
                self.s.ic.set_queue_shuffle(on.then_some(seed));
                self.tally.fault("queue shuffle");
                format!("queue shuffle {}", if on { "on" } else { "off" })
            }
        };
        let rounds = self.rng.range(0, 15);
        self.ticks(rounds);
        format!("{what}, {rounds} rounds")
    }

    fn retention(&mut self) -> Result<String, String> {
        let policy = RetentionPolicy {
            keep_last: self.rng.range(1, 4) as u32,
            keep_daily: self.rng.range(0, 3) as u32,
            keep_weekly: self.rng.range(0, 2) as u32,
        };
        let personal = self.rng.chance(25);
        let (vault, owner) = if personal {
            let u = &self.users[self.rng.below(self.users.len() as u64) as usize];
            (u.vault.id, u.principal)
        } else {
            (self.main.id, self.main.owner)
        };
        if let Err(e) = adapter::set_retention(&mut self.s.ic, vault, owner, policy) {
            return Ok(format!("set_retention refused: {e}"));
        }
        let hours = *self.rng.pick(&[0, 0, 1, 12, 30, 80]);
        self.s.ic.advance_time(Duration::from_secs(hours * 3_600));
        let before = adapter::list_snapshots(&mut self.s.ic, vault, owner)?;
        let deleted = match adapter::apply_retention(&mut self.s.ic, vault, owner) {
            Ok(d) => d,
            Err(e) => {
                return Ok(format!(
                    "{policy:?} after {hours}h: apply_retention refused: {e}"
                ));
            }
        };
        let after = adapter::list_snapshots(&mut self.s.ic, vault, owner)?;
        check_retention(&before, &after, &deleted, &policy)?;
        Ok(format!(
            "{policy:?} after {hours}h on {}: deleted {deleted:?}",
            if personal {
                "a personal vault"
            } else {
                "the app's vault"
            }
        ))
    }

    fn delete_snapshot(&mut self) -> Result<String, String> {
        let list = adapter::list_snapshots(&mut self.s.ic, self.main.id, self.main.owner)?;
        let newest = newest_complete(&list);
        let candidates: Vec<u64> = list
            .iter()
            .filter(|s| Some(s.id) != newest)
            .filter(|s| s.state != SnapshotState::InProgress || self.rng.chance(30))
            .map(|s| s.id)
            .collect();
        if candidates.is_empty() {
            return Ok("nothing to delete".into());
        }
        let id = *self.rng.pick(&candidates);
        let r = adapter::delete_snapshot(&mut self.s.ic, self.main.id, self.main.owner, id);
        Ok(format!("snapshot {id}: {r:?}"))
    }
}

/// The newest complete snapshot (by the time its image was taken, then id).
fn newest_complete(list: &[SnapshotInfo]) -> Option<u64> {
    list.iter()
        .filter(|s| s.state == SnapshotState::Complete)
        .max_by_key(|s| (s.created_at_ns, s.id))
        .map(|s| s.id)
}

/// Retention deleted only listed snapshots, and never one of the newest
/// `max(1, keep_last)` complete snapshots of its source (counting snapshots that
/// completed meanwhile).
fn check_retention(
    before: &[SnapshotInfo],
    after: &[SnapshotInfo],
    deleted: &[u64],
    policy: &RetentionPolicy,
) -> Result<(), String> {
    if let Some(id) = deleted
        .iter()
        .find(|id| !before.iter().any(|s| s.id == **id))
    {
        return Err(format!(
            "retention deleted snapshot {id}, which was not listed"
        ));
    }
    let keep = policy.keep_last.max(1) as usize;
    for s in before.iter().filter(|s| s.state == SnapshotState::Complete) {
        if after.iter().any(|a| a.id == s.id) {
            continue;
        }
        let newer = after
            .iter()
            .filter(|a| a.state == SnapshotState::Complete && a.source == s.source)
            .filter(|a| (a.created_at_ns, a.id) > (s.created_at_ns, s.id))
            .count();
        if newer < keep {
            return Err(format!(
                "retention deleted complete snapshot {} with only {newer} newer complete snapshots of its source (keep_last {})",
                s.id, policy.keep_last
            ));
        }
    }
    Ok(())
}
