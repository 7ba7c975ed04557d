//! The vault's state and its management operations (install, roles, retention,
//! deletion, status). The backup protocol is in `backup`, reads and downloads in
//! `download`, restore jobs in `restore_job`; all are `impl Vault` blocks.
//!
//! Every operation takes the authorized [`Caller`] and the time as arguments and never
//! touches the system API, so the whole vault runs in unit tests on `VectorMemory`.
//! Every fallible operation validates before it changes anything: an `Err` leaves the
//! state as it was.

use std::collections::BTreeSet;

use candid::{CandidType, Principal};
use canvault_protocol::vault_api::{
    RetentionPolicy, Role, RoleChange, SnapshotId, SnapshotKind, SnapshotState, VaultError,
    VaultInit, VaultStatus,
};
use ic_stable_structures::{Memory, StableBTreeMap, StableCell};
use serde::Deserialize;

use crate::canister_job::CanisterJobs;
use crate::catalogue::{Budget, Catalogue};
use crate::memory::{self, Memories, Vm};
use crate::restore_job::Jobs;
use crate::retention::{self, Candidate, Kind};
use crate::roles::{Caller, Roles};
use crate::schedule::Schedules;
use crate::storable::candid_storable;
use crate::store::ChunkStore;

/// The retention group of whole-canister snapshots (a data-set name no kit sends: data
/// set names are text, and this one starts with a NUL).
const WHOLE_CANISTER_GROUP: &str = "\u{0}whole-canister";

/// The vault code's version string, reported by `status`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Settings and id counters.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The retention policy in force.
    pub retention: RetentionPolicy,
    /// The next snapshot id (ids are never reused).
    pub next_snapshot_id: SnapshotId,
    /// The next restore job id.
    pub next_job_id: u64,
}

candid_storable!(Config);

/// What a retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPass {
    /// Snapshots deleted, in id order.
    pub deleted: Vec<SnapshotId>,
    /// True if deleted tables are still being released (continue with [`Vault::collect`]).
    pub more: bool,
}

/// Platform figures `status` reports but the vault cannot read itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Platform {
    /// Stable memory size in bytes.
    pub stable_memory_bytes: u64,
    /// Cycle balance.
    pub cycles: u128,
}

/// All of the vault's state, in stable structures over one memory.
pub struct Vault<M: Memory> {
    pub(crate) config: StableCell<Config, Vm<M>>,
    pub(crate) roles: Roles<Vm<M>>,
    pub(crate) store: ChunkStore<Vm<M>>,
    pub(crate) catalogue: Catalogue<Vm<M>>,
    /// Download leases: snapshot to expiry (ns).
    pub(crate) leases: StableBTreeMap<SnapshotId, u64, Vm<M>>,
    /// When each lease's window began (ns): see `download::MAX_PIN_NS`.
    pub(crate) lease_starts: StableBTreeMap<SnapshotId, u64, Vm<M>>,
    pub(crate) jobs: Jobs<Vm<M>>,
    pub(crate) canister_jobs: CanisterJobs<Vm<M>>,
    pub(crate) schedules: Schedules<Vm<M>>,
}

impl<M: Memory> Vault<M> {
    /// Loads the vault from `memory`, or creates an empty one.
    pub fn init(memory: M) -> Self {
        let m = Memories::init(memory);
        Self {
            config: StableCell::init(m.get(memory::CONFIG), Config::default()),
            roles: Roles::init(m.get(memory::ROLES)),
            store: ChunkStore::init(
                m.get(memory::CHUNK_INDEX),
                m.get(memory::STORE_STATS),
                m.get(memory::BLOCK_HEAP),
                m.get(memory::FREE_BLOCKS),
            ),
            catalogue: Catalogue::init(m.catalogue()),
            leases: StableBTreeMap::init(m.get(memory::LEASES)),
            lease_starts: StableBTreeMap::init(m.get(memory::LEASE_STARTS)),
            jobs: Jobs::init(m.get(memory::JOBS)),
            canister_jobs: CanisterJobs::init(m.get(memory::CANISTER_JOBS)),
            schedules: Schedules::init(m.get(memory::SCHEDULES)),
        }
    }

    /// Applies an install or upgrade argument: grants its roles, sets its policy.
    /// On install, `installer` becomes an owner when the argument names none.
    pub fn configure(&mut self, arg: &VaultInit, installer: Option<Principal>) {
        let owners = match (arg.owners.is_empty(), installer) {
            (true, Some(installer)) => vec![installer],
            _ => arg.owners.clone(),
        };
        for (principals, role) in [
            (&owners, Role::Owner),
            (&arg.writers, Role::Writer),
            (&arg.readers, Role::Reader),
        ] {
            for p in principals {
                self.roles.grant(*p, role);
            }
        }
        if let Some(policy) = arg.retention {
            self.update_config(|c| c.retention = policy);
        }
    }

    /// Checks that `principal` holds `needed`.
    ///
    /// # Errors
    /// [`VaultError::Unauthorized`].
    pub fn authorize(&self, principal: Principal, needed: Role) -> Result<Caller, VaultError> {
        self.roles.authorize(principal, needed)
    }

    /// Checks that `principal` holds any role.
    ///
    /// # Errors
    /// [`VaultError::Unauthorized`].
    pub fn authorize_any(&self, principal: Principal) -> Result<Caller, VaultError> {
        self.roles.authorize_any(principal)
    }

    /// Grants and revokes roles, all or nothing.
    ///
    /// # Errors
    /// [`VaultError::InvalidRequest`] if no owner would remain.
    pub fn update_roles(&mut self, changes: &[RoleChange]) -> Result<(), VaultError> {
        self.roles.apply(changes)
    }

    /// Every role granted.
    pub fn list_roles(&self) -> Vec<(Principal, Role)> {
        self.roles.list()
    }

    /// Replaces the retention policy (applied by the next pass).
    pub fn set_retention(&mut self, policy: RetentionPolicy) {
        self.update_config(|c| c.retention = policy);
    }

    /// Deletes a snapshot: it leaves the catalogue at once; its chunk table is released
    /// within `budget`, the rest by later [`Self::collect`] steps. Returns `true` if
    /// tables remain to release.
    ///
    /// # Errors
    /// `SnapshotNotFound`; `InUse` while an active restore job reads it or a child's
    /// table is still being copied from it.
    pub fn delete_snapshot(
        &mut self,
        id: SnapshotId,
        budget: Budget<'_>,
    ) -> Result<bool, VaultError> {
        self.catalogue
            .get(id)
            .ok_or(VaultError::SnapshotNotFound(id))?;
        if self.jobs.active_snapshots().contains(&id)
            || self.canister_jobs.active_snapshots().contains(&id)
            || self.catalogue.inherit_parents().contains(&id)
        {
            return Err(VaultError::InUse(id));
        }
        self.forget_lease(id);
        self.catalogue.doom(id);
        Ok(!self.collect(budget))
    }

    /// Does queued table work within `budget`: copies of parent tables and commit walks
    /// first (writers wait on them), then releases of deleted tables, then the build of
    /// the per-source index after an upgrade. Returns `true` when nothing is left.
    pub fn collect(&mut self, budget: Budget<'_>) -> bool {
        for child in self.catalogue.pending_inherits() {
            if !self
                .catalogue
                .advance_inherit(&mut self.store, child, budget)
            {
                return false;
            }
        }
        self.catalogue.advance_commits(budget)
            && self.catalogue.collect(&mut self.store, budget)
            && self.catalogue.build_index(budget)
    }

    /// Snapshots retention must not delete: read by an active restore, under an
    /// unexpired download lease, or being copied into a child.
    pub fn pinned(&self, now_ns: u64) -> BTreeSet<SnapshotId> {
        let mut pinned = self.jobs.active_snapshots();
        pinned.extend(self.canister_jobs.active_snapshots());
        pinned.extend(
            self.leases
                .iter()
                .filter(|e| e.value() > now_ns)
                .map(|e| *e.key()),
        );
        pinned.extend(self.catalogue.inherit_parents());
        pinned
    }

    /// Runs a retention pass: abandons stale uploads, deletes what the policy does not
    /// keep, forgets leases whose window closed. Deleting a snapshot only takes it out of the catalogue
    /// (cheap); releasing the tables (and the chunks no longer referenced) is table work
    /// done within `budget`, so one huge snapshot never makes a pass fail, and never
    /// keeps the others from being deleted. `more` says table work is left.
    pub fn apply_retention(&mut self, now_ns: u64, budget: Budget<'_>) -> RetentionPass {
        self.drop_leases(now_ns);
        let candidates: Vec<Candidate> = self
            .catalogue
            .records()
            .map(|r| Candidate {
                id: r.info.id,
                source: r.info.source,
                // Whole-canister snapshots are their own group: they never evict a
                // source's kit images, nor the other way round.
                dataset: match r.info.kind {
                    Some(SnapshotKind::WholeCanister(_)) => Some(WHOLE_CANISTER_GROUP.to_string()),
                    _ => r.info.dataset,
                },
                kind: match r.info.state {
                    SnapshotState::InProgress => Kind::InProgress,
                    SnapshotState::Complete => Kind::Complete,
                    SnapshotState::Failed { .. } => Kind::Failed,
                },
                created_at_ns: r.info.created_at_ns,
                updated_at_ns: r.updated_at_ns,
            })
            .collect();
        let plan = retention::plan(
            &candidates,
            &self.config.get().retention,
            now_ns,
            &self.pinned(now_ns),
        );
        for id in plan.abandon {
            let mut record = self.catalogue.get(id).expect("planned from the catalogue");
            record.info.state = SnapshotState::Failed {
                reason: "abandoned: no chunk arrived for 7 days".to_string(),
            };
            record.updated_at_ns = now_ns;
            self.catalogue.reset_commit(id);
            self.catalogue.save(record);
        }
        for id in &plan.delete {
            self.forget_lease(*id);
            self.catalogue.doom(*id);
        }
        RetentionPass {
            deleted: plan.delete,
            more: !self.collect(budget),
        }
    }

    /// Gauges for monitoring, from counters kept up to date (O(1)). The chunk gauges
    /// lag deletions until their tables are released.
    pub fn status(&self, platform: Platform) -> VaultStatus {
        let c = self.catalogue.counters();
        VaultStatus {
            chunks: self.store.len(),
            chunk_bytes: self.store.encoded_bytes(),
            snapshots: (c.in_progress, c.complete, c.failed),
            last_complete_at_ns: c.last_complete_at_ns,
            stable_memory_bytes: platform.stable_memory_bytes,
            cycles: platform.cycles,
            retention: self.config.get().retention,
            active_restores: u32::try_from(self.jobs.active_count()).unwrap_or(u32::MAX),
            active_canister_jobs: Some(
                u32::try_from(self.canister_jobs.active().count()).unwrap_or(u32::MAX),
            ),
            scheduled_canisters: Some(
                u32::try_from(self.list_canister_schedules().len()).unwrap_or(u32::MAX),
            ),
            version: VERSION.to_string(),
        }
    }

    pub(crate) fn update_config(&mut self, f: impl FnOnce(&mut Config)) {
        let mut config = self.config.get().clone();
        f(&mut config);
        self.config.set(config);
    }

    /// Takes the next id from a counter of the config.
    pub(crate) fn next_id(&mut self, counter: fn(&mut Config) -> &mut u64) -> u64 {
        let mut id = 0;
        self.update_config(|c| {
            let slot = counter(c);
            id = *slot;
            *slot += 1;
        });
        id
    }
}

#[cfg(test)]
mod tests;
