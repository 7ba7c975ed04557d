//! Retention: which snapshots to delete. A pure function of the catalogue, the policy,
//! the time and the pinned set, so it is tested against a brute-force model.
//!
//! Per (source, data set) — a source's own image is one group, each data set it backs
//! up another, so one user's data set never evicts another's on a shared (personal)
//! vault — over its complete snapshots ordered newest first by
//! (`created_at_ns`, id) — the point in time the image was taken — a snapshot is kept if
//! any rule keeps it:
//! - it is the newest (always kept, whatever the policy);
//! - it is among the newest `keep_last`;
//! - it is the newest of its UTC day, and fewer than `keep_daily` newer days have one;
//! - it is the newest of its week (Monday to Sunday, UTC), and fewer than
//!   `keep_weekly` newer weeks have one.
//!
//! Other states: a failed snapshot is deleted once it has been idle for
//! [`FAILED_GRACE_NS`] (its chunks stay available for dedup meanwhile); an in-progress
//! snapshot idle for [`ABANDON_AFTER_NS`] is abandoned (marked failed), never deleted
//! directly. A pinned snapshot (active restore, unexpired download lease) is never
//! deleted.

use std::collections::{BTreeMap, BTreeSet};

use candid::Principal;
use canvault_protocol::vault_api::{RetentionPolicy, SnapshotId};

const DAY_NS: u64 = 86_400 * 1_000_000_000;
/// How long a failed snapshot stays for inspection and dedup.
pub const FAILED_GRACE_NS: u64 = DAY_NS;
/// How long an in-progress snapshot may go without a chunk before it is abandoned.
pub const ABANDON_AFTER_NS: u64 = 7 * DAY_NS;

/// The state of a snapshot, as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Chunks still arriving.
    InProgress,
    /// Complete.
    Complete,
    /// Aborted or abandoned.
    Failed,
}

/// What retention needs to know about a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The snapshot.
    pub id: SnapshotId,
    /// Its source.
    pub source: Principal,
    /// Its data set (`None`: the source's image).
    pub dataset: Option<String>,
    /// Its state.
    pub kind: Kind,
    /// When it was begun (ns).
    pub created_at_ns: u64,
    /// Last activity (ns).
    pub updated_at_ns: u64,
}

/// What a retention pass does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Snapshots to delete, in id order.
    pub delete: Vec<SnapshotId>,
    /// In-progress snapshots to mark failed, in id order.
    pub abandon: Vec<SnapshotId>,
}

/// The UTC day number of `ns`.
fn day(ns: u64) -> u64 {
    ns / DAY_NS
}

/// The week number of `ns`; weeks start on Monday (1970-01-01 was a Thursday).
fn week(ns: u64) -> u64 {
    (day(ns) + 3) / 7
}

/// Plans a retention pass.
#[must_use]
pub fn plan(
    snapshots: &[Candidate],
    policy: &RetentionPolicy,
    now_ns: u64,
    pinned: &BTreeSet<SnapshotId>,
) -> Plan {
    let mut complete: BTreeMap<(Principal, Option<&str>), Vec<&Candidate>> = BTreeMap::new();
    let mut plan = Plan::default();
    for s in snapshots {
        let idle = now_ns.saturating_sub(s.updated_at_ns);
        match s.kind {
            Kind::Complete => complete
                .entry((s.source, s.dataset.as_deref()))
                .or_default()
                .push(s),
            Kind::Failed if idle >= FAILED_GRACE_NS && !pinned.contains(&s.id) => {
                plan.delete.push(s.id)
            }
            Kind::InProgress if idle >= ABANDON_AFTER_NS => plan.abandon.push(s.id),
            Kind::Failed | Kind::InProgress => {}
        }
    }
    for mut list in complete.into_values() {
        list.sort_by_key(|s| std::cmp::Reverse((s.created_at_ns, s.id)));
        let mut days = Bucket::new(policy.keep_daily);
        let mut weeks = Bucket::new(policy.keep_weekly);
        for (rank, s) in list.iter().enumerate() {
            let by_day = days.keeps(day(s.created_at_ns));
            let by_week = weeks.keeps(week(s.created_at_ns));
            let keep = rank == 0 || rank < policy.keep_last as usize || by_day || by_week;
            if !keep && !pinned.contains(&s.id) {
                plan.delete.push(s.id);
            }
        }
    }
    plan.delete.sort_unstable();
    plan.abandon.sort_unstable();
    plan
}

/// Walks snapshots newest first and keeps the first of each period, for `limit` periods.
struct Bucket {
    limit: u32,
    seen: u32,
    last: Option<u64>,
}

impl Bucket {
    fn new(limit: u32) -> Self {
        Self {
            limit,
            seen: 0,
            last: None,
        }
    }

    /// True if a snapshot in `period` (non-increasing across calls) is kept.
    fn keeps(&mut self, period: u64) -> bool {
        if self.last == Some(period) {
            return false;
        }
        self.last = Some(period);
        self.seen += 1;
        self.seen <= self.limit
    }
}

#[cfg(test)]
mod tests;
