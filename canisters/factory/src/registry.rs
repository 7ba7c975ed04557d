//! The registry of vaults the factory created, with two indexes: owner → vaults and
//! app → vaults (an app's own vaults and the personal vaults it writes to).
//!
//! Invariant: every record's owners and app appear in the indexes exactly while the
//! record exists; `insert` and `remove` keep the three maps in step.

use candid::Principal;
use canvault_factory_api::{VaultInfo, VaultKind};
use canvault_protocol::Hash256;
use ic_stable_structures::{Memory, StableBTreeMap};

use crate::memory::{self, Memories, Vm};
use crate::storable::candid_storable;

/// A registered vault (stored as its public form).
pub type VaultRecord = VaultInfo;

/// Wrapper so the record can be stored.
#[derive(candid::CandidType, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Stored(pub VaultRecord);

candid_storable!(Stored);

/// The smallest and largest principals, to range over an index.
const MIN: Principal = Principal::from_slice(&[]);
const MAX: Principal = Principal::from_slice(&[0xff; 29]);

/// Vault records and their indexes.
pub struct Registry<M: Memory> {
    vaults: StableBTreeMap<Principal, Stored, Vm<M>>,
    by_owner: StableBTreeMap<(Principal, Principal), (), Vm<M>>,
    by_app: StableBTreeMap<(Principal, Principal), (), Vm<M>>,
}

impl<M: Memory> Registry<M> {
    /// Loads (or creates) the structures.
    pub fn init(memories: &Memories<M>) -> Self {
        Self {
            vaults: StableBTreeMap::init(memories.get(memory::VAULTS)),
            by_owner: StableBTreeMap::init(memories.get(memory::BY_OWNER)),
            by_app: StableBTreeMap::init(memories.get(memory::BY_APP)),
        }
    }

    /// Records a vault (replacing an earlier record of the same canister).
    pub fn insert(&mut self, record: VaultRecord) {
        self.remove(&record.canister_id);
        let id = record.canister_id;
        for owner in &record.owners {
            self.by_owner.insert((*owner, id), ());
        }
        self.by_app.insert((record.kind.app(), id), ());
        self.vaults.insert(id, Stored(record));
    }

    /// Removes a vault; returns its record.
    pub fn remove(&mut self, canister: &Principal) -> Option<VaultRecord> {
        let Stored(record) = self.vaults.remove(canister)?;
        for owner in &record.owners {
            self.by_owner.remove(&(*owner, *canister));
        }
        self.by_app.remove(&(record.kind.app(), *canister));
        Some(record)
    }

    /// The record of `canister`.
    #[must_use]
    pub fn get(&self, canister: &Principal) -> Option<VaultRecord> {
        self.vaults.get(canister).map(|s| s.0)
    }

    /// Changes a record in place; false if there is none.
    pub fn update(&mut self, canister: &Principal, f: impl FnOnce(&mut VaultRecord)) -> bool {
        let Some(mut record) = self.get(canister) else {
            return false;
        };
        let before = record.clone();
        f(&mut record);
        debug_assert_eq!(
            (before.owners, before.kind),
            (record.owners.clone(), record.kind),
            "indexed fields change through insert"
        );
        self.vaults.insert(*canister, Stored(record));
        true
    }

    /// The vaults `owner` owns.
    #[must_use]
    pub fn of_owner(&self, owner: Principal) -> Vec<VaultRecord> {
        self.collect(&self.by_owner, owner)
    }

    /// The vaults of `app` (its own and the personal vaults it writes to).
    #[must_use]
    pub fn of_app(&self, app: Principal) -> Vec<VaultRecord> {
        self.collect(&self.by_app, app)
    }

    fn collect(
        &self,
        index: &StableBTreeMap<(Principal, Principal), (), Vm<M>>,
        key: Principal,
    ) -> Vec<VaultRecord> {
        index
            .keys_range((key, MIN)..=(key, MAX))
            .filter_map(|(_, vault)| self.get(&vault))
            .collect()
    }

    /// The personal vault of `user` for `app`, if any.
    #[must_use]
    pub fn personal_vault(&self, user: Principal, app: Principal) -> Option<VaultRecord> {
        self.of_owner(user)
            .into_iter()
            .find(|v| v.kind == VaultKind::Personal { user, app })
    }

    /// Every vault, in canister order.
    #[must_use]
    pub fn all(&self) -> Vec<VaultRecord> {
        self.vaults.values().map(|s| s.0).collect()
    }

    /// Number of vaults.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.vaults.len()
    }

    /// True when no vault is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.vaults.is_empty()
    }

    /// Records that `canister` now runs `version`.
    pub fn set_version(&mut self, canister: &Principal, version: Hash256) -> bool {
        self.update(canister, |r| r.version = version)
    }
}

#[cfg(test)]
mod tests;
