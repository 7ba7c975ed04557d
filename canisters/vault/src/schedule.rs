//! Whole-canister backup schedules: an owner asks the vault to back a canister up every
//! interval; a vault timer (`canister_driver::arm_schedules`) calls
//! [`Vault::run_due_schedules`] when the earliest one is due, which starts ordinary
//! `backup_canister` jobs. Pure: no system API.
//!
//! Invariants:
//! - at most [`MAX_SCHEDULED_CANISTERS`] schedules (a bound on the timer's work and on
//!   what an owner can make the vault do);
//! - a schedule never starts a job while another canister job on its canister is active
//!   (at most one job per canister at a time); it retries [`RETRY_NS`] later;
//! - a started backup makes the next one due one interval later (backups missed while
//!   the vault could not run them are not made up for: one runs, then the next interval);
//! - the records are in stable memory, so schedules survive upgrades; the timer is
//!   re-armed from them at install, upgrade and hourly.

use candid::{CandidType, Principal};
use canvault_protocol::canister_image::{
    CanisterBackupRequest, CanisterSchedule, CanisterScheduleInfo, Consistency,
};
use canvault_protocol::vault_api::VaultError;
use ic_stable_structures::{Memory, StableBTreeMap};
use serde::Deserialize;

use crate::backup::MAX_LABEL_BYTES;
use crate::canister_job::canister_of;
use crate::storable::candid_storable;
use crate::vault::Vault;

/// Most canisters a vault backs up on a schedule.
pub const MAX_SCHEDULED_CANISTERS: usize = 32;
/// Shortest interval: 10 minutes.
pub const MIN_INTERVAL_SECS: u64 = 600;
/// Longest interval: 366 days.
pub const MAX_INTERVAL_SECS: u64 = 366 * 86_400;
/// Delay before a due backup that could not start is tried again: 1 minute.
pub const RETRY_NS: u64 = 60_000_000_000;

const NS: u64 = 1_000_000_000;

/// A stored schedule.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Stored(pub CanisterScheduleInfo);

candid_storable!(Stored);

/// The schedules, keyed by the canister's principal bytes.
pub struct Schedules<M: Memory> {
    map: StableBTreeMap<Vec<u8>, Stored, M>,
}

impl<M: Memory> Schedules<M> {
    /// Loads the table from `memory`, or creates it.
    pub fn init(memory: M) -> Self {
        Self {
            map: StableBTreeMap::init(memory),
        }
    }

    fn get(&self, canister: Principal) -> Option<CanisterScheduleInfo> {
        self.map.get(&canister.as_slice().to_vec()).map(|s| s.0)
    }

    fn put(&mut self, info: CanisterScheduleInfo) {
        self.map
            .insert(info.schedule.canister.as_slice().to_vec(), Stored(info));
    }

    fn all(&self) -> Vec<CanisterScheduleInfo> {
        self.map.values().map(|s| s.0).collect()
    }
}

fn invalid(reason: impl Into<String>) -> VaultError {
    VaultError::InvalidRequest(reason.into())
}

impl<M: Memory> Vault<M> {
    /// Sets (or replaces) the schedule of `s.canister`; the next backup is due one
    /// interval from `now`. A replaced schedule keeps its counters.
    ///
    /// # Errors
    /// `InvalidRequest`: interval out of bounds, `ReadOwnerSnapshot`, label too long, the
    /// anonymous or management principal, or a new canister beyond the limit.
    pub fn set_canister_schedule(
        &mut self,
        s: CanisterSchedule,
        now_ns: u64,
    ) -> Result<CanisterScheduleInfo, VaultError> {
        if !(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&s.interval_secs) {
            return Err(invalid(format!(
                "interval_secs must be {MIN_INTERVAL_SECS} to {MAX_INTERVAL_SECS}"
            )));
        }
        if matches!(s.consistency, Consistency::ReadOwnerSnapshot { .. }) {
            return Err(invalid(
                "a schedule takes its own snapshots: StopTakeStart or Running",
            ));
        }
        if s.label.as_ref().is_some_and(|l| l.len() > MAX_LABEL_BYTES) {
            return Err(invalid(format!(
                "label longer than {MAX_LABEL_BYTES} bytes"
            )));
        }
        if s.canister == Principal::anonymous() || s.canister == Principal::management_canister() {
            return Err(invalid(format!("{} is not a canister", s.canister)));
        }
        let old = self.schedules.get(s.canister);
        if old.is_none() && self.schedules.map.len() >= MAX_SCHEDULED_CANISTERS as u64 {
            return Err(invalid(format!(
                "at most {MAX_SCHEDULED_CANISTERS} canisters have a schedule: clear one first"
            )));
        }
        let info = CanisterScheduleInfo {
            next_due_ns: now_ns.saturating_add(s.interval_secs * NS),
            runs: old.as_ref().map_or(0, |o| o.runs),
            last_job: old.as_ref().and_then(|o| o.last_job),
            last_error: None,
            schedule: s,
        };
        self.schedules.put(info.clone());
        Ok(info)
    }

    /// Removes the schedule of `canister` (a job it started runs on).
    ///
    /// # Errors
    /// `InvalidRequest` if there is none.
    pub fn clear_canister_schedule(&mut self, canister: Principal) -> Result<(), VaultError> {
        self.schedules
            .map
            .remove(&canister.as_slice().to_vec())
            .map(drop)
            .ok_or_else(|| invalid(format!("{canister} has no schedule")))
    }

    /// Every schedule, by canister.
    pub fn list_canister_schedules(&self) -> Vec<CanisterScheduleInfo> {
        self.schedules.all()
    }

    /// When the earliest schedule is due, if any.
    pub fn next_schedule_due(&self) -> Option<u64> {
        self.schedules.all().iter().map(|i| i.next_due_ns).min()
    }

    /// Starts the backups due at `now`; returns the ids of the jobs started. A schedule
    /// whose canister has an active job, or whose job cannot start (too many jobs), is
    /// tried again [`RETRY_NS`] later, the reason recorded.
    pub fn run_due_schedules(&mut self, creator: Principal, now_ns: u64) -> Vec<u64> {
        let mut started = Vec::new();
        for mut info in self.schedules.all() {
            if info.next_due_ns > now_ns {
                continue;
            }
            let canister = info.schedule.canister;
            let busy = self
                .canister_jobs
                .active()
                .find(|r| canister_of(&r.job.kind) == canister)
                .map(|r| r.job.id);
            let result = match busy {
                Some(id) => Err(format!("canister job {id} on {canister} is still running")),
                None => {
                    let req = CanisterBackupRequest {
                        canister,
                        consistency: info.schedule.consistency.clone(),
                        label: info.schedule.label.clone(),
                    };
                    self.backup_canister(req, creator, now_ns)
                        .map_err(|e| e.to_string())
                }
            };
            match result {
                Ok(job) => {
                    info.runs += 1;
                    info.last_job = Some(job.id);
                    info.last_error = None;
                    info.next_due_ns = now_ns.saturating_add(info.schedule.interval_secs * NS);
                    started.push(job.id);
                }
                Err(reason) => {
                    info.last_error = Some(reason);
                    info.next_due_ns = now_ns.saturating_add(RETRY_NS);
                }
            }
            self.schedules.put(info);
        }
        started
    }
}

#[cfg(test)]
mod tests;
