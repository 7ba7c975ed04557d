//! Fleet upgrades: one rollout of a vault version over the registered vaults, in
//! batches, with a state per vault.
//!
//! Starting a rollout plans every registered vault ([`plan`]): vaults whose owners
//! opted out of managed upgrades (or that the factory no longer controls) are skipped,
//! vaults already on the version too; the rest are `Pending`. Each batch takes up to N
//! vaults, marks them `InProgress` (persisted before the upgrade calls start), and
//! records each result. A vault left `InProgress` by a lost callback is taken again by
//! the next batch, which checks its module hash first, so re-running is harmless.

use candid::{CandidType, Principal};
use canvault_factory_api::{
    FleetUpgradeStatus, SkipReason, VaultInfo, VaultUpgrade, VaultUpgradeState,
};
use canvault_protocol::Hash256;
use ic_stable_structures::{Memory, StableBTreeMap, StableCell};
use serde::Deserialize;

use crate::memory::{self, Memories, Vm};
use crate::storable::candid_storable;

/// The rollout in the cell (none before the first).
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct RolloutCell(pub Option<RolloutHeader>);

/// A rollout.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RolloutHeader {
    /// Its id.
    pub id: u64,
    /// The version rolled out.
    pub version: Hash256,
    /// When it started (ns).
    pub started_at_ns: u64,
}

candid_storable!(RolloutCell);

/// A vault's line (its public form).
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Entry(pub VaultUpgrade);

candid_storable!(Entry);

/// The initial state of `vault` in a rollout of `version`. Pure.
#[must_use]
pub fn plan(vault: &VaultInfo, version: Hash256, factory: Principal) -> VaultUpgradeState {
    if vault.version == version {
        VaultUpgradeState::Skipped {
            reason: SkipReason::AlreadyCurrent,
        }
    } else if !vault.managed_upgrades || !vault.controllers.contains(&factory) {
        VaultUpgradeState::Skipped {
            reason: SkipReason::OptedOut,
        }
    } else {
        VaultUpgradeState::Pending
    }
}

/// True while the state still needs a batch.
#[must_use]
pub fn is_open(state: &VaultUpgradeState) -> bool {
    matches!(
        state,
        VaultUpgradeState::Pending | VaultUpgradeState::InProgress
    )
}

/// The current rollout and its vaults.
pub struct Fleet<M: Memory> {
    header: StableCell<RolloutCell, Vm<M>>,
    vaults: StableBTreeMap<Principal, Entry, Vm<M>>,
}

impl<M: Memory> Fleet<M> {
    /// Loads (or creates) the structures.
    pub fn init(memories: &Memories<M>) -> Self {
        Self {
            header: StableCell::init(memories.get(memory::ROLLOUT), RolloutCell::default()),
            vaults: StableBTreeMap::init(memories.get(memory::ROLLOUT_VAULTS)),
        }
    }

    /// The current (or last) rollout.
    #[must_use]
    pub fn header(&self) -> Option<RolloutHeader> {
        self.header.get().0.clone()
    }

    /// The id of the rollout still running, if any.
    #[must_use]
    pub fn running(&self) -> Option<u64> {
        let header = self.header()?;
        self.vaults
            .values()
            .any(|e| is_open(&e.0.state))
            .then_some(header.id)
    }

    /// Starts rollout `id` of `version` over `vaults`, replacing the finished one.
    pub fn start(
        &mut self,
        id: u64,
        version: Hash256,
        vaults: &[VaultInfo],
        factory: Principal,
        now: u64,
    ) {
        self.vaults.clear_new();
        for v in vaults {
            let entry = VaultUpgrade {
                canister_id: v.canister_id,
                from_version: v.version,
                state: plan(v, version, factory),
            };
            self.vaults.insert(v.canister_id, Entry(entry));
        }
        self.header.set(RolloutCell(Some(RolloutHeader {
            id,
            version,
            started_at_ns: now,
        })));
    }

    /// Takes the next batch: vaults left `InProgress` first, then `Pending` ones, at most
    /// `max`; marks them `InProgress`.
    pub fn next_batch(&mut self, max: usize) -> Vec<Principal> {
        let mut batch: Vec<Principal> = self
            .vaults
            .iter()
            .filter(|e| e.value().0.state == VaultUpgradeState::InProgress)
            .map(|e| *e.key())
            .take(max)
            .collect();
        let more: Vec<Principal> = self
            .vaults
            .iter()
            .filter(|e| e.value().0.state == VaultUpgradeState::Pending)
            .map(|e| *e.key())
            .take(max - batch.len())
            .collect();
        batch.extend(more);
        for vault in &batch {
            self.set_state(vault, VaultUpgradeState::InProgress);
        }
        batch
    }

    /// Records the state of `vault`.
    pub fn set_state(&mut self, vault: &Principal, state: VaultUpgradeState) {
        if let Some(Entry(mut entry)) = self.vaults.get(vault) {
            entry.state = state;
            self.vaults.insert(*vault, Entry(entry));
        }
    }

    /// Skips every pending vault; returns how many.
    pub fn cancel(&mut self) -> u32 {
        let pending: Vec<Principal> = self
            .vaults
            .iter()
            .filter(|e| e.value().0.state == VaultUpgradeState::Pending)
            .map(|e| *e.key())
            .collect();
        for vault in &pending {
            self.set_state(
                vault,
                VaultUpgradeState::Skipped {
                    reason: SkipReason::Cancelled,
                },
            );
        }
        pending.len() as u32
    }

    /// The rollout's status.
    #[must_use]
    pub fn status(&self) -> Option<FleetUpgradeStatus> {
        let header = self.header()?;
        let vaults: Vec<VaultUpgrade> = self.vaults.values().map(|e| e.0).collect();
        let count = |f: fn(&VaultUpgradeState) -> bool| {
            vaults.iter().filter(|v| f(&v.state)).count() as u32
        };
        let pending = count(is_open);
        Some(FleetUpgradeStatus {
            id: header.id,
            version: header.version,
            started_at_ns: header.started_at_ns,
            finished: pending == 0,
            pending,
            upgraded: count(|s| matches!(s, VaultUpgradeState::Upgraded { .. })),
            skipped: count(|s| matches!(s, VaultUpgradeState::Skipped { .. })),
            failed: count(|s| matches!(s, VaultUpgradeState::Failed { .. })),
            vaults,
        })
    }
}

#[cfg(test)]
mod tests;
