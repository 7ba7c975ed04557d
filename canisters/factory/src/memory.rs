//! The factory's stable memory layout: one [`MemoryManager`] over the canister's stable
//! memory, one virtual memory per structure, every id listed here.
//!
//! Invariant: an id is never reused. A retired structure keeps its line, marked retired,
//! so an upgrade can never read one structure's bytes as another's.
//!
//! | id | structure                                                 | owner module |
//! |----|-----------------------------------------------------------|--------------|
//! | 0  | `StableCell<Settings>` admins, config, counters, current   | `state`      |
//! | 1  | `StableBTreeMap<u64, UploadRecord>` uploads in progress    | `versions`   |
//! | 2  | `StableBTreeMap<(u64, u32), Vec<u8>>` module chunks        | `versions`   |
//! | 3  | `StableBTreeMap<[u8; 32], VersionRecord>` versions         | `versions`   |
//! | 4  | `StableBTreeMap<Principal, VaultRecord>` registry          | `registry`   |
//! | 5  | `StableBTreeMap<(Principal, Principal), ()>` owner index   | `registry`   |
//! | 6  | `StableBTreeMap<(Principal, Principal), ()>` app index     | `registry`   |
//! | 7  | `StableBTreeMap<u64, DeploymentRecord>` deployments        | `deployment` |
//! | 8  | `StableBTreeMap<Principal, u32>` vaults per beneficiary    | `quota`      |
//! | 9  | `StableBTreeMap<(Principal, u64), u32>` creations per day  | `quota`      |
//! | 10 | `StableCell<RolloutHeader>` the current fleet upgrade      | `fleet`      |
//! | 11 | `StableBTreeMap<Principal, UpgradeEntry>` its vaults       | `fleet`      |
//! | 12 | `StableBTreeMap<u64, ()>` ids of open deployments          | `deployment` |
//!
//! Layout generations (`Settings::layout`): 1 (absent) the maps 0–11; 2 adds map 12,
//! built from map 7 when a generation-1 state loads, and the rollout's counts (see
//! `fleet`). See `state::LAYOUT`.

use ic_stable_structures::Memory;
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};

/// Admins, configuration, id counters, the current version.
pub const SETTINGS: MemoryId = MemoryId::new(0);
/// Uploads in progress.
pub const UPLOADS: MemoryId = MemoryId::new(1);
/// Module bytes, by (blob id, chunk index): uploads and committed versions.
pub const CHUNKS: MemoryId = MemoryId::new(2);
/// Committed versions by module hash.
pub const VERSIONS: MemoryId = MemoryId::new(3);
/// Registered vaults.
pub const VAULTS: MemoryId = MemoryId::new(4);
/// Owner → vaults.
pub const BY_OWNER: MemoryId = MemoryId::new(5);
/// App → vaults.
pub const BY_APP: MemoryId = MemoryId::new(6);
/// Deployment records.
pub const DEPLOYMENTS: MemoryId = MemoryId::new(7);
/// Vaults counted per beneficiary.
pub const VAULT_COUNTS: MemoryId = MemoryId::new(8);
/// Creations per caller and day.
pub const DAILY_CREATIONS: MemoryId = MemoryId::new(9);
/// The current fleet upgrade.
pub const ROLLOUT: MemoryId = MemoryId::new(10);
/// The vaults of the current fleet upgrade.
pub const ROLLOUT_VAULTS: MemoryId = MemoryId::new(11);
/// Ids of the deployments neither registered nor cancelled.
pub const OPEN_DEPLOYMENTS: MemoryId = MemoryId::new(12);

/// The memory type every structure of the factory is built on.
pub type Vm<M> = VirtualMemory<M>;

/// Hands out the virtual memories of one stable memory.
pub struct Memories<M: Memory> {
    manager: MemoryManager<M>,
}

impl<M: Memory> Memories<M> {
    /// Loads the memory manager from `memory`, or creates it when the memory is empty.
    pub fn init(memory: M) -> Self {
        Self {
            manager: MemoryManager::init(memory),
        }
    }

    /// The virtual memory with `id`.
    pub fn get(&self, id: MemoryId) -> Vm<M> {
        self.manager.get(id)
    }
}
