//! The factory's state: settings (admins, fees, quotas, id counters, the current
//! version), versions, the registry, deployments, quota counters and the fleet rollout,
//! all in stable structures over one memory (see [`crate::memory`]).
//!
//! Operations take the caller, the factory's own principal and the time as arguments
//! and never touch the system API, so they run in unit tests on `VectorMemory`. Every
//! fallible operation validates before it changes anything.

use candid::{CandidType, Principal};
use canvault_factory_api::{
    CreateForkTargetRequest, CreateVaultRequest, DeploymentInfo, FactoryConfig, FactoryError,
    FactoryInit, FactoryStatus, FleetUpgradeStatus, Permission, Stage, VaultInfo, VersionInfo,
};
use canvault_protocol::Hash256;
use ic_stable_structures::{Memory, StableCell};
use serde::Deserialize;

use crate::deployment::{self, Deployments, Transitions};
use crate::fleet::Fleet;
use crate::memory::{self, Memories, Vm};
use crate::quota::Quota;
use crate::registry::Registry;
use crate::storable::candid_storable;
use crate::versions::{VersionRecord, Versions};

/// Settings and id counters.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// The admins.
    pub admins: Vec<Principal>,
    /// Fees and quotas.
    pub config: FactoryConfig,
    /// The version new vaults get.
    pub current_version: Option<Hash256>,
    /// Next upload id.
    pub next_upload_id: u64,
    /// Next deployment id.
    pub next_deployment_id: u64,
    /// Next rollout id.
    pub next_rollout_id: u64,
    /// The layout generation of the stored state (absent: 1); see [`LAYOUT`].
    pub layout: Option<u32>,
    /// The last deployment id the pruning pass looked at.
    pub prune_cursor: Option<u64>,
}

candid_storable!(Settings);

/// The layout generation this code writes: 2 adds the open-deployment index and the
/// rollout's counts (see [`crate::memory`]). [`Factory::init`] migrates older state.
pub const LAYOUT: u32 = 2;

/// A finished deployment stays readable this long after its last change (30 days).
pub const FINISHED_KEPT_NS: u64 = 30 * 86_400 * 1_000_000_000;

/// Most deployment records one pruning pass (one per accepted deployment) looks at.
pub const PRUNE_SCAN: usize = 16;

/// Most admins.
pub const MAX_ADMINS: usize = 20;

/// All of the factory's state.
pub struct Factory<M: Memory> {
    settings: StableCell<Settings, Vm<M>>,
    /// Vault versions.
    pub versions: Versions<M>,
    /// Registered vaults.
    pub registry: Registry<M>,
    /// Deployment records.
    pub deployments: Deployments<M>,
    /// Quota counters.
    pub quota: Quota<M>,
    /// The fleet rollout.
    pub fleet: Fleet<M>,
}

impl<M: Memory> Factory<M> {
    /// Loads the state from `memory`, or creates it when the memory is empty.
    ///
    /// State of an older layout generation is migrated here, once: generation 1 gets
    /// its open-deployment index built from the records (the rollout's counts are
    /// recounted by [`Fleet::init`]).
    pub fn init(memory: M) -> Self {
        let memories = Memories::init(memory);
        let mut factory = Self {
            settings: StableCell::init(memories.get(memory::SETTINGS), Settings::default()),
            versions: Versions::init(&memories),
            registry: Registry::init(&memories),
            deployments: Deployments::init(&memories),
            quota: Quota::init(&memories),
            fleet: Fleet::init(&memories),
        };
        if factory.settings().layout.unwrap_or(1) < LAYOUT {
            factory.deployments.rebuild_open_index();
            factory.update_settings(|s| s.layout = Some(LAYOUT));
        }
        factory
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &Settings {
        self.settings.get()
    }

    fn update_settings<R>(&mut self, f: impl FnOnce(&mut Settings) -> R) -> R {
        let mut s = self.settings.get().clone();
        let r = f(&mut s);
        self.settings.set(s);
        r
    }

    /// Applies the install (or upgrade) argument.
    ///
    /// # Errors
    /// Bad admin list or config.
    pub fn configure(&mut self, arg: &FactoryInit, install: bool) -> Result<(), FactoryError> {
        if install && arg.admins.is_empty() {
            return Err(FactoryError::InvalidRequest(
                "the factory needs an admin".into(),
            ));
        }
        if !arg.admins.is_empty() {
            self.set_admins(arg.admins.clone())?;
        }
        if let Some(config) = arg.config {
            self.set_config(config)?;
        }
        Ok(())
    }

    /// True if `p` is an admin.
    #[must_use]
    pub fn is_admin(&self, p: &Principal) -> bool {
        self.settings().admins.contains(p)
    }

    /// Checks that `caller` is an admin.
    ///
    /// # Errors
    /// [`FactoryError::Unauthorized`].
    pub fn authorize_admin(&self, caller: Principal) -> Result<(), FactoryError> {
        if self.is_admin(&caller) {
            Ok(())
        } else {
            Err(FactoryError::Unauthorized {
                caller,
                needed: Permission::Admin,
            })
        }
    }

    /// Replaces the admins.
    ///
    /// # Errors
    /// An empty or oversized list, or the anonymous principal.
    pub fn set_admins(&mut self, mut admins: Vec<Principal>) -> Result<(), FactoryError> {
        admins.sort();
        admins.dedup();
        if admins.is_empty()
            || admins.len() > MAX_ADMINS
            || admins.contains(&Principal::anonymous())
        {
            return Err(FactoryError::InvalidRequest(format!(
                "1 to {MAX_ADMINS} admins, not anonymous"
            )));
        }
        self.update_settings(|s| s.admins = admins);
        Ok(())
    }

    /// Replaces fees and quotas.
    ///
    /// # Errors
    /// A zero minimum balance (a vault must start above its freezing threshold).
    pub fn set_config(&mut self, config: FactoryConfig) -> Result<(), FactoryError> {
        if config.min_initial_cycles == 0 {
            return Err(FactoryError::InvalidRequest(
                "min_initial_cycles must be positive".into(),
            ));
        }
        self.update_settings(|s| s.config = config);
        Ok(())
    }

    /// A fresh upload id.
    pub fn next_upload_id(&mut self) -> u64 {
        self.update_settings(|s| {
            s.next_upload_id += 1;
            s.next_upload_id
        })
    }

    /// The version new vaults get.
    #[must_use]
    pub fn current_version(&self) -> Option<VersionRecord> {
        self.settings()
            .current_version
            .and_then(|h| self.versions.get(&h))
    }

    /// Makes `hash` the current version.
    ///
    /// # Errors
    /// [`FactoryError::VersionNotFound`].
    pub fn set_current_version(&mut self, hash: Hash256) -> Result<VersionInfo, FactoryError> {
        let version = self
            .versions
            .get(&hash)
            .ok_or(FactoryError::VersionNotFound(hash))?;
        self.update_settings(|s| s.current_version = Some(hash));
        Ok(version.info(true))
    }

    /// Every version, the current one marked.
    #[must_use]
    pub fn list_versions(&self) -> Vec<VersionInfo> {
        let current = self.settings().current_version;
        self.versions
            .list()
            .iter()
            .map(|v| v.info(Some(v.hash) == current))
            .collect()
    }

    /// Deletes a version that is neither current nor the target of a running rollout nor
    /// pinned by an open deployment.
    ///
    /// # Errors
    /// [`FactoryError::VersionInUse`], [`FactoryError::VersionNotFound`].
    pub fn delete_version(&mut self, hash: Hash256) -> Result<(), FactoryError> {
        let rolling = self.fleet.running().is_some()
            && self.fleet.header().is_some_and(|h| h.version == hash);
        let pinned = self.deployments.open().iter().any(|d| d.version == hash);
        if self.settings().current_version == Some(hash) || rolling || pinned {
            return Err(FactoryError::VersionInUse(hash));
        }
        self.versions.remove(&hash).map(drop)
    }

    /// Checks a `create_vault` request before anything happens: the request, the current
    /// version, the quotas, the attached cycles. Returns the cycles to accept.
    ///
    /// # Errors
    /// Any reason the request cannot go ahead; nothing is taken then.
    pub fn check_create(
        &self,
        req: &CreateVaultRequest,
        caller: Principal,
        attached: u128,
        creation_fee: u128,
        now: u64,
    ) -> Result<u128, FactoryError> {
        let config = self.settings().config;
        deployment::validate(req, caller, &config)?;
        if self.current_version().is_none() {
            return Err(FactoryError::NoCurrentVersion);
        }
        if let canvault_factory_api::VaultKind::Personal { user, app } = req.kind {
            if let Some(v) = self.registry.personal_vault(user, app) {
                return Err(FactoryError::PersonalVaultExists(v.canister_id));
            }
            if let Some(d) = self
                .deployments
                .open()
                .iter()
                .find(|d| d.request.kind == req.kind)
            {
                return Err(FactoryError::DeploymentBusy(d.id));
            }
        }
        let subject = deployment::quota_subject(&req.kind, caller);
        self.quota.check(&config.quotas, subject, caller, now)?;
        let required = deployment::required_cycles(req, creation_fee, &config);
        if attached < required {
            return Err(FactoryError::InsufficientCycles { attached, required });
        }
        Ok(required)
    }

    /// The id the next deployment will get.
    #[must_use]
    pub fn peek_deployment_id(&self) -> u64 {
        self.settings().next_deployment_id
    }

    /// Records an accepted deployment (after [`Factory::check_create`] and the accept):
    /// counts it in the quotas, pins the current version.
    ///
    /// # Panics
    /// If there is no current version (checked by `check_create` in the same execution).
    pub fn accept(
        &mut self,
        req: CreateVaultRequest,
        caller: Principal,
        subnet: Option<Principal>,
        accepted: u128,
        now: u64,
    ) -> DeploymentInfo {
        let version = self.current_version().expect("checked").hash;
        let service_fee = self.settings().config.service_fee;
        let id = self.update_settings(|s| {
            let id = s.next_deployment_id;
            s.next_deployment_id += 1;
            id
        });
        self.quota
            .record_creation(deployment::quota_subject(&req.kind, caller), caller, now);
        self.prune_deployments(now);
        let record =
            deployment::new_record(id, caller, req, subnet, version, accepted, service_fee, now);
        self.deployments.put(record.clone());
        record
    }

    /// Looks at up to [`PRUNE_SCAN`] deployment records after the prune cursor (wrapping
    /// around) and forgets those finished more than [`FINISHED_KEPT_NS`] ago that nobody
    /// needs any more: cancelled ones, and registered ones whose vault left the registry
    /// (a registered vault keeps its deployment: deleting it releases the quota of its
    /// requester). Returns how many were forgotten.
    pub fn prune_deployments(&mut self, now: u64) -> usize {
        let cursor = self.settings().prune_cursor;
        let mut seen = self.deployments.after(cursor, PRUNE_SCAN);
        if seen.len() < PRUNE_SCAN && cursor.is_some() {
            seen.extend(
                self.deployments
                    .after(None, PRUNE_SCAN - seen.len())
                    .into_iter()
                    .filter(|d| Some(d.id) <= cursor),
            );
        }
        let mut pruned = 0;
        for d in &seen {
            let old = now.saturating_sub(d.updated_at_ns) > FINISHED_KEPT_NS;
            let unneeded = match d.stage {
                Stage::Cancelled => true,
                Stage::Registered => d.canister_id.is_none_or(|c| {
                    self.registry
                        .get(&c)
                        .is_none_or(|v| v.deployment_id != d.id)
                }),
                _ => false,
            };
            if old && unneeded {
                self.deployments.remove(d.id);
                pruned += 1;
            }
        }
        let next = seen.last().map(|d| d.id);
        self.update_settings(|s| s.prune_cursor = next);
        pruned
    }

    /// Checks that `caller` may resume or cancel deployment `id`: its requester or an admin.
    ///
    /// # Errors
    /// [`FactoryError::DeploymentNotFound`], [`FactoryError::Unauthorized`].
    pub fn authorize_requester(
        &self,
        id: u64,
        caller: Principal,
    ) -> Result<DeploymentInfo, FactoryError> {
        let d = self.deployments.get(id)?;
        if d.requester == caller || self.is_admin(&caller) {
            Ok(d)
        } else {
            Err(FactoryError::Unauthorized {
                caller,
                needed: Permission::Requester,
            })
        }
    }

    /// Checks a `create_fork_target` request: the vault registered and the caller one of
    /// its owners, the request, the quotas (counted for the caller), the attached
    /// cycles. Returns the cycles to accept.
    ///
    /// # Errors
    /// Any reason the request cannot go ahead; nothing is taken then.
    pub fn check_fork_target(
        &self,
        req: &CreateForkTargetRequest,
        caller: Principal,
        attached: u128,
        creation_fee: u128,
        now: u64,
    ) -> Result<u128, FactoryError> {
        let config = self.settings().config;
        let vault = self
            .registry
            .get(&req.vault)
            .ok_or(FactoryError::VaultNotFound(req.vault))?;
        deployment::validate_fork_target(req, caller, &vault, &config)?;
        self.quota.check(&config.quotas, caller, caller, now)?;
        let stored = deployment::fork_target_request(req, caller);
        let required = deployment::required_cycles(&stored, creation_fee, &config);
        if attached < required {
            return Err(FactoryError::InsufficientCycles { attached, required });
        }
        Ok(required)
    }

    /// Records an accepted fork-target request (checked by `check_fork_target` in the
    /// same execution): a deployment with `fork_target_of` set and no module pinned.
    pub fn accept_fork_target(
        &mut self,
        req: &CreateForkTargetRequest,
        caller: Principal,
        subnet: Option<Principal>,
        accepted: u128,
        now: u64,
    ) -> DeploymentInfo {
        let service_fee = self.settings().config.service_fee;
        let id = self.update_settings(|s| {
            let id = s.next_deployment_id;
            s.next_deployment_id += 1;
            id
        });
        self.quota.record_creation(caller, caller, now);
        self.prune_deployments(now);
        let mut record = deployment::new_record(
            id,
            caller,
            deployment::fork_target_request(req, caller),
            subnet,
            Hash256([0; 32]),
            accepted,
            service_fee,
            now,
        );
        record.fork_target_of = Some(req.vault);
        self.deployments.put(record.clone());
        record
    }

    /// Closes fork-target deployment `id` (its controllers are set): `Registered`, out of
    /// its requester's count of open deployments and vaults; not in the registry.
    ///
    /// # Errors
    /// [`FactoryError::DeploymentNotFound`].
    pub fn finish_fork_target(
        &mut self,
        id: u64,
        now: u64,
    ) -> Result<DeploymentInfo, FactoryError> {
        let d = self
            .deployments
            .update(id, |d| d.advance(Stage::Registered, now))?;
        self.quota.release_vault(d.requester);
        Ok(d)
    }

    /// Registers the vault of deployment `id` (its controllers are set).
    ///
    /// # Errors
    /// [`FactoryError::DeploymentNotFound`].
    pub fn register(
        &mut self,
        id: u64,
        factory: Principal,
        now: u64,
    ) -> Result<VaultInfo, FactoryError> {
        let d = self.deployments.get(id)?;
        let record = deployment::vault_record(&d, factory, now);
        self.registry.insert(record.clone());
        self.deployments
            .update(id, |d| d.advance(Stage::Registered, now))?;
        Ok(record)
    }

    /// Marks deployment `id` cancelled (its credit was deposited back) and releases its
    /// quota.
    ///
    /// # Errors
    /// [`FactoryError::DeploymentNotFound`].
    pub fn cancelled(&mut self, id: u64, now: u64) -> Result<DeploymentInfo, FactoryError> {
        let d = self.deployments.update(id, |d| d.cancelled(now))?;
        self.quota
            .release_vault(deployment::quota_subject(&d.request.kind, d.requester));
        Ok(d)
    }

    /// The vault `canister` if `caller` may act on it as its owner.
    ///
    /// `controllers` are the vault's controllers as `canister_status` reported them just
    /// now, `None` when the factory is not (or no longer) one of them. While the factory
    /// controls the vault, only a principal that controls it too may act: the factory
    /// then never does for a caller what that caller could not do itself, and an owner
    /// taken out of the controllers loses the factory with them. The owner list frozen
    /// in the registry only serves when the factory controls nothing (then it can only
    /// forget the vault).
    ///
    /// # Errors
    /// [`FactoryError::VaultNotFound`], [`FactoryError::Unauthorized`].
    pub fn authorize_owner(
        &self,
        canister: Principal,
        caller: Principal,
        controllers: Option<&[Principal]>,
        factory: Principal,
    ) -> Result<VaultInfo, FactoryError> {
        let vault = self
            .registry
            .get(&canister)
            .ok_or(FactoryError::VaultNotFound(canister))?;
        let allowed = match controllers {
            Some(current) => caller != factory && current.contains(&caller),
            None => vault.owners.contains(&caller),
        };
        if allowed {
            Ok(vault)
        } else {
            Err(FactoryError::Unauthorized {
                caller,
                needed: Permission::VaultOwner,
            })
        }
    }

    /// Opts a vault in or out of fleet upgrades (the caller owns it, see
    /// [`Factory::authorize_owner`]); records the controllers read.
    ///
    /// # Errors
    /// Not found, not an owner, or opting in while the factory is not a controller.
    pub fn set_managed_upgrades(
        &mut self,
        canister: Principal,
        managed: bool,
        caller: Principal,
        controllers: Option<&[Principal]>,
        factory: Principal,
    ) -> Result<VaultInfo, FactoryError> {
        self.authorize_owner(canister, caller, controllers, factory)?;
        if managed && controllers.is_none() {
            return Err(FactoryError::InvalidRequest(
                "the factory is not a controller of this vault: add it before opting in".into(),
            ));
        }
        self.registry.update(&canister, |v| {
            v.managed_upgrades = managed;
            if let Some(current) = controllers {
                v.controllers = current.to_vec();
            }
        });
        Ok(self.registry.get(&canister).expect("present"))
    }

    /// Removes a vault from the registry and releases its quota.
    pub fn unregister(&mut self, canister: Principal) -> Option<VaultInfo> {
        let vault = self.registry.remove(&canister)?;
        if let Ok(d) = self.deployments.get(vault.deployment_id) {
            self.quota
                .release_vault(deployment::quota_subject(&d.request.kind, d.requester));
        }
        Some(vault)
    }

    /// Starts a fleet upgrade to `version`.
    ///
    /// # Errors
    /// Unknown version, or a rollout still running.
    pub fn start_fleet_upgrade(
        &mut self,
        version: Hash256,
        factory: Principal,
        now: u64,
    ) -> Result<FleetUpgradeStatus, FactoryError> {
        if self.versions.get(&version).is_none() {
            return Err(FactoryError::VersionNotFound(version));
        }
        if let Some(id) = self.fleet.running() {
            return Err(FactoryError::FleetUpgradeRunning(id));
        }
        let id = self.update_settings(|s| {
            s.next_rollout_id += 1;
            s.next_rollout_id
        });
        let vaults = self.registry.all();
        self.fleet.start(id, version, &vaults, factory, now);
        Ok(self.fleet.status().expect("just started"))
    }

    /// The status query.
    #[must_use]
    pub fn status(&self, creation_fee: u128, cycles: u128) -> FactoryStatus {
        let config = self.settings().config;
        FactoryStatus {
            config,
            creation_fee,
            fixed_cost: creation_fee.saturating_add(config.service_fee),
            current_version: self.current_version().map(|v| v.info(true)),
            versions: self.versions.len() as u32,
            vaults: self.registry.len(),
            open_deployments: self.deployments.open_count(),
            cycles,
        }
    }
}

#[cfg(test)]
mod tests;
