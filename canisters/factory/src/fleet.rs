//! Fleet upgrades: one rollout of a vault version over the registered vaults, in
//! batches, with a state per vault.
//!
//! Starting a rollout plans every registered vault ([`plan`]): vaults whose owners
//! opted out of managed upgrades or that the factory no longer controls are skipped,
//! vaults already on the version too; the rest are `Pending`. Each batch takes up to N
//! vaults, marks them `InProgress` (persisted before the upgrade calls start), and
//! records each result. A vault left `InProgress` by a lost callback is taken again by
//! the next batch, which checks its module hash first, so re-running is harmless. The
//! driver re-checks each vault when its turn comes (opted out since, or the factory no
//! longer a controller: skipped with that reason).
//!
//! Invariants, so that no call does work proportional to the fleet: the header keeps
//! the count of vaults per state ([`Counts`], updated by every state change), so status
//! and `running` read one cell; pending vaults are taken in canister order from the
//! header's cursor (no pending vault lies at or below it); the vault list is read in
//! pages ([`Fleet::page`]).

use std::ops::Bound;

use candid::{CandidType, Principal};
use canvault_factory_api::{
    FleetUpgradeStatus, FleetVaultsPage, SkipReason, VaultInfo, VaultUpgrade, VaultUpgradeState,
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
    /// Vaults per state (absent in a header written before counts existed: recounted
    /// once by [`Fleet::init`]).
    pub counts: Option<Counts>,
    /// The last vault taken as pending; every pending vault is above it.
    pub cursor: Option<Principal>,
}

/// Vaults of a rollout per state.
#[derive(CandidType, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Waiting for a batch.
    pub pending: u32,
    /// In a batch (or left there by a lost result).
    pub in_progress: u32,
    /// Upgraded.
    pub upgraded: u32,
    /// Skipped.
    pub skipped: u32,
    /// Failed.
    pub failed: u32,
}

impl Counts {
    fn slot(&mut self, state: &VaultUpgradeState) -> &mut u32 {
        match state {
            VaultUpgradeState::Pending => &mut self.pending,
            VaultUpgradeState::InProgress => &mut self.in_progress,
            VaultUpgradeState::Upgraded { .. } => &mut self.upgraded,
            VaultUpgradeState::Skipped { .. } => &mut self.skipped,
            VaultUpgradeState::Failed { .. } => &mut self.failed,
        }
    }

    /// Counts one more vault in `state`.
    pub fn add(&mut self, state: &VaultUpgradeState) {
        *self.slot(state) += 1;
    }

    /// Counts one vault less in `state`.
    pub fn remove(&mut self, state: &VaultUpgradeState) {
        let n = self.slot(state);
        *n = n.saturating_sub(1);
    }

    /// Vaults still needing a batch.
    #[must_use]
    pub fn open(&self) -> u32 {
        self.pending + self.in_progress
    }
}

candid_storable!(RolloutCell);

/// A vault's line (its public form).
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Entry(pub VaultUpgrade);

candid_storable!(Entry);

/// Most lines [`Fleet::page`] returns.
pub const MAX_PAGE: usize = canvault_factory_api::MAX_FLEET_PAGE as usize;

/// The initial state of `vault` in a rollout of `version`. Pure.
#[must_use]
pub fn plan(vault: &VaultInfo, version: Hash256, factory: Principal) -> VaultUpgradeState {
    let skipped = |reason| VaultUpgradeState::Skipped { reason };
    if vault.version == version {
        skipped(SkipReason::AlreadyCurrent)
    } else if !vault.managed_upgrades {
        skipped(SkipReason::OptedOut)
    } else if !vault.controllers.contains(&factory) {
        skipped(SkipReason::NotController)
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
    /// Loads (or creates) the structures; counts the vaults of a rollout stored before
    /// the header kept counts (the layout migration of the rollout, done once).
    pub fn init(memories: &Memories<M>) -> Self {
        let mut fleet = Self {
            header: StableCell::init(memories.get(memory::ROLLOUT), RolloutCell::default()),
            vaults: StableBTreeMap::init(memories.get(memory::ROLLOUT_VAULTS)),
        };
        if let Some(mut header) = fleet.header()
            && header.counts.is_none()
        {
            let mut counts = Counts::default();
            for e in fleet.vaults.values() {
                counts.add(&e.0.state);
            }
            header.counts = Some(counts);
            fleet.header.set(RolloutCell(Some(header)));
        }
        fleet
    }

    /// The current (or last) rollout.
    #[must_use]
    pub fn header(&self) -> Option<RolloutHeader> {
        self.header.get().0.clone()
    }

    fn counts(&self) -> Counts {
        self.header().and_then(|h| h.counts).unwrap_or_default()
    }

    fn update_header(&mut self, f: impl FnOnce(&mut RolloutHeader)) {
        if let Some(mut header) = self.header() {
            f(&mut header);
            self.header.set(RolloutCell(Some(header)));
        }
    }

    /// The id of the rollout still running, if any.
    #[must_use]
    pub fn running(&self) -> Option<u64> {
        let header = self.header()?;
        (self.counts().open() > 0).then_some(header.id)
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
        let mut counts = Counts::default();
        for v in vaults {
            let entry = VaultUpgrade {
                canister_id: v.canister_id,
                from_version: v.version,
                state: plan(v, version, factory),
            };
            counts.add(&entry.state);
            self.vaults.insert(v.canister_id, Entry(entry));
        }
        self.header.set(RolloutCell(Some(RolloutHeader {
            id,
            version,
            started_at_ns: now,
            counts: Some(counts),
            cursor: None,
        })));
    }

    /// Takes the next batch: vaults left `InProgress` first, then `Pending` ones from the
    /// cursor on, at most `max`; marks them `InProgress`.
    pub fn next_batch(&mut self, max: usize) -> Vec<Principal> {
        let counts = self.counts();
        let mut batch: Vec<Principal> = Vec::new();
        if counts.in_progress > 0 {
            batch = self
                .vaults
                .iter()
                .filter(|e| e.value().0.state == VaultUpgradeState::InProgress)
                .map(|e| *e.key())
                .take(max)
                .collect();
        }
        let wanted = max.saturating_sub(batch.len()).min(counts.pending as usize);
        if wanted > 0 {
            let from = self
                .header()
                .and_then(|h| h.cursor)
                .map_or(Bound::Unbounded, Bound::Excluded);
            let more: Vec<Principal> = self
                .vaults
                .range((from, Bound::Unbounded))
                .filter(|e| e.value().0.state == VaultUpgradeState::Pending)
                .map(|e| *e.key())
                .take(wanted)
                .collect();
            if let Some(last) = more.last().copied() {
                self.update_header(|h| h.cursor = Some(last));
            }
            batch.extend(more);
        }
        for vault in &batch {
            self.set_state(vault, VaultUpgradeState::InProgress);
        }
        batch
    }

    /// Records the state of `vault`.
    pub fn set_state(&mut self, vault: &Principal, state: VaultUpgradeState) {
        if let Some(Entry(mut entry)) = self.vaults.get(vault) {
            let before = std::mem::replace(&mut entry.state, state);
            self.update_header(|h| {
                let counts = h.counts.get_or_insert_with(Counts::default);
                counts.remove(&before);
                counts.add(&entry.state);
            });
            self.vaults.insert(*vault, Entry(entry));
        }
    }

    /// Skips every pending vault; returns how many.
    pub fn cancel(&mut self) -> u32 {
        if self.counts().pending == 0 {
            return 0;
        }
        let from = self
            .header()
            .and_then(|h| h.cursor)
            .map_or(Bound::Unbounded, Bound::Excluded);
        let pending: Vec<Principal> = self
            .vaults
            .range((from, Bound::Unbounded))
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

    /// The rollout's status: counts only, read from the header.
    #[must_use]
    pub fn status(&self) -> Option<FleetUpgradeStatus> {
        let header = self.header()?;
        let counts = header.counts.unwrap_or_default();
        Some(FleetUpgradeStatus {
            id: header.id,
            version: header.version,
            started_at_ns: header.started_at_ns,
            finished: counts.open() == 0,
            pending: counts.open(),
            upgraded: counts.upgraded,
            skipped: counts.skipped,
            failed: counts.failed,
            total: u32::try_from(self.vaults.len()).unwrap_or(u32::MAX),
        })
    }

    /// The rollout's vaults after `start` (from the first when absent), in canister
    /// order, at most `limit` (up to [`MAX_PAGE`]); `next` is where the next page starts.
    #[must_use]
    pub fn page(&self, start: Option<Principal>, limit: usize) -> FleetVaultsPage {
        let from = start.map_or(Bound::Unbounded, Bound::Excluded);
        let limit = limit.clamp(1, MAX_PAGE);
        let mut vaults: Vec<VaultUpgrade> = self
            .vaults
            .range((from, Bound::Unbounded))
            .take(limit + 1)
            .map(|e| e.into_pair().1.0)
            .collect();
        let next = if vaults.len() > limit {
            vaults.truncate(limit);
            vaults.last().map(|v| v.canister_id)
        } else {
            None
        };
        FleetVaultsPage { vaults, next }
    }
}

#[cfg(test)]
mod tests;
