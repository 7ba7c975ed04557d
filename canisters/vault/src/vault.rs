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
    RetentionPolicy, Role, RoleChange, SnapshotId, SnapshotState, VaultError, VaultInit,
    VaultStatus,
};
use ic_stable_structures::{Memory, StableBTreeMap, StableCell};
use serde::Deserialize;

use crate::catalogue::Catalogue;
use crate::memory::{self, Memories, Vm};
use crate::restore_job::Jobs;
use crate::retention::{self, Candidate, Kind};
use crate::roles::{Caller, Roles};
use crate::storable::candid_storable;
use crate::store::ChunkStore;

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

/// Most chunk-table entries one retention pass releases. Releasing one costs about
/// 100k instructions, so a pass stays far below the 40B-instruction message limit;
/// what is left goes in the next pass.
pub const RETENTION_ENTRY_BUDGET: u64 = 150_000;

/// What a retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPass {
    /// Snapshots deleted, in id order.
    pub deleted: Vec<SnapshotId>,
    /// True if the budget ran out before every planned deletion.
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
    pub(crate) jobs: Jobs<Vm<M>>,
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
            catalogue: Catalogue::init(
                m.get(memory::SNAPSHOTS),
                m.get(memory::TABLES),
                m.get(memory::NONCES),
            ),
            leases: StableBTreeMap::init(m.get(memory::LEASES)),
            jobs: Jobs::init(m.get(memory::JOBS)),
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

    /// Deletes a snapshot and releases its chunks.
    ///
    /// # Errors
    /// `SnapshotNotFound`; `InUse` while an active restore job reads it.
    pub fn delete_snapshot(&mut self, id: SnapshotId) -> Result<(), VaultError> {
        self.catalogue
            .get(id)
            .ok_or(VaultError::SnapshotNotFound(id))?;
        if self.jobs.active_snapshots().contains(&id) {
            return Err(VaultError::InUse(id));
        }
        self.leases.remove(&id);
        self.catalogue.remove(&mut self.store, id);
        Ok(())
    }

    /// Snapshots retention must not delete: read by an active restore, or under an
    /// unexpired download lease.
    pub fn pinned(&self, now_ns: u64) -> BTreeSet<SnapshotId> {
        let mut pinned = self.jobs.active_snapshots();
        pinned.extend(
            self.leases
                .iter()
                .filter(|e| e.value() > now_ns)
                .map(|e| *e.key()),
        );
        pinned
    }

    /// Runs a retention pass: abandons stale uploads, deletes what the policy does not
    /// keep (chunks no longer referenced go with them), drops expired leases. Deletes
    /// at most [`RETENTION_ENTRY_BUDGET`] table entries' worth of snapshots (at least
    /// one); `more` says another pass has work left.
    pub fn apply_retention(&mut self, now_ns: u64) -> RetentionPass {
        self.apply_retention_within(now_ns, RETENTION_ENTRY_BUDGET)
    }

    /// [`Self::apply_retention`] with an explicit entry budget.
    pub fn apply_retention_within(&mut self, now_ns: u64, budget: u64) -> RetentionPass {
        let expired: Vec<SnapshotId> = self
            .leases
            .iter()
            .filter(|e| e.value() <= now_ns)
            .map(|e| *e.key())
            .collect();
        for id in expired {
            self.leases.remove(&id);
        }
        let candidates: Vec<Candidate> = self
            .catalogue
            .records()
            .map(|r| Candidate {
                id: r.info.id,
                source: r.info.source,
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
            self.catalogue.save(record);
        }
        let mut pass = RetentionPass::default();
        let mut spent = 0;
        for id in plan.delete {
            let record = self.catalogue.get(id).expect("planned from the catalogue");
            let cost = u64::from(record.info.chunk_count).max(1);
            if !pass.deleted.is_empty() && spent + cost > budget {
                pass.more = true;
                break;
            }
            spent += cost;
            self.catalogue.remove(&mut self.store, id);
            pass.deleted.push(id);
        }
        pass
    }

    /// Gauges for monitoring.
    pub fn status(&self, platform: Platform) -> VaultStatus {
        let (mut in_progress, mut complete, mut failed) = (0, 0, 0);
        let mut last_complete_at_ns = None;
        for r in self.catalogue.records() {
            match r.info.state {
                SnapshotState::InProgress => in_progress += 1,
                SnapshotState::Complete => {
                    complete += 1;
                    last_complete_at_ns = last_complete_at_ns.max(r.info.completed_at_ns);
                }
                SnapshotState::Failed { .. } => failed += 1,
            }
        }
        VaultStatus {
            chunks: self.store.len(),
            chunk_bytes: self.store.encoded_bytes(),
            snapshots: (in_progress, complete, failed),
            last_complete_at_ns,
            stable_memory_bytes: platform.stable_memory_bytes,
            cycles: platform.cycles,
            retention: self.config.get().retention,
            active_restores: u32::try_from(self.jobs.active_count()).unwrap_or(u32::MAX),
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
