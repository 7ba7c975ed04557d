//! The vault's stable memory layout: one [`MemoryManager`] over the canister's stable
//! memory, one virtual memory per structure, every id listed here.
//!
//! Invariant: an id is never reused. A retired structure keeps its line, marked retired,
//! so an upgrade can never read one structure's bytes as another's.
//!
//! | id | structure                                        | owner module      |
//! |----|--------------------------------------------------|-------------------|
//! | 0  | `StableCell<Config>` retention, id counters      | `vault`           |
//! | 1  | `StableBTreeMap<Principal, u8>` role bits        | `roles`           |
//! | 2  | `StableBTreeMap<[u8; 32], ChunkMeta>` chunk index | `store`           |
//! | 3  | `StableCell<StoreStats>` store gauges            | `store`           |
//! | 4  | raw block heap (chunk bytes)                     | `blocks`          |
//! | 5  | `StableVec<u32>` free blocks                     | `blocks`          |
//! | 6  | `StableBTreeMap<u64, SnapshotRecord>` catalogue  | `catalogue`       |
//! | 7  | `StableBTreeMap<(u64, u32), TableEntry>` tables  | `catalogue`       |
//! | 8  | `StableBTreeMap<(Principal, u64), u64>` nonces   | `catalogue`       |
//! | 9  | `StableBTreeMap<u64, u64>` download leases       | `vault`           |
//! | 10 | `StableBTreeMap<u64, JobRecord>` restore jobs    | `restore_job`     |
//! | 11 | `StableBTreeMap<u64, Principal>` deletion queue   | `catalogue`       |
//! | 12 | `StableBTreeMap<u64, (u64, u32)>` table copies   | `catalogue`       |
//! | 13 | `StableBTreeMap<u64, CommitProgress>` commits    | `catalogue`       |
//! | 14 | `StableBTreeMap<u64, u64>` lease window starts   | `download`        |
//! | 15 | `StableCell<Counters>` gauges, index cursor      | `catalogue`       |
//! | 16 | `StableBTreeMap<Principal, u32>` open per source | `catalogue`       |
//! | 17 | `StableBTreeMap<(Principal, [u8; 32]), u64>` per-source references | `catalogue` |
//! | 18 | `StableBTreeMap<u64, CanisterJobRecord>` canister jobs | `canister_job` |
//!
//! Ids 11 to 17 were added by the hardening of issue #10. A vault upgraded from an older
//! module finds them empty. For 11 to 14 that is their correct initial state (nothing
//! was pending, no lease window recorded: a live lease's window starts at its next
//! renewal). 15 to 17 are derived from the catalogue: an empty `Counters` cell
//! (generation 0) makes `Catalogue::init` rebuild the counters from the records, and
//! start the per-source reference index at table key (0, 0), which the table-work
//! chain then builds in budgeted steps (see `catalogue::index`).

use ic_stable_structures::Memory;
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};

/// Vault configuration (retention policy, id counters).
pub const CONFIG: MemoryId = MemoryId::new(0);
/// Role bits per principal.
pub const ROLES: MemoryId = MemoryId::new(1);
/// Chunk index: hash to block list, codec, lengths, reference count.
pub const CHUNK_INDEX: MemoryId = MemoryId::new(2);
/// Chunk store gauges.
pub const STORE_STATS: MemoryId = MemoryId::new(3);
/// Raw fixed-size blocks holding encoded chunk bytes.
pub const BLOCK_HEAP: MemoryId = MemoryId::new(4);
/// Stack of freed block numbers.
pub const FREE_BLOCKS: MemoryId = MemoryId::new(5);
/// Snapshot catalogue.
pub const SNAPSHOTS: MemoryId = MemoryId::new(6);
/// Per-snapshot chunk tables.
pub const TABLES: MemoryId = MemoryId::new(7);
/// Idempotency index of `begin_snapshot`.
pub const NONCES: MemoryId = MemoryId::new(8);
/// Download leases (snapshot to expiry).
pub const LEASES: MemoryId = MemoryId::new(9);
/// Restore jobs.
pub const JOBS: MemoryId = MemoryId::new(10);
/// Snapshots deleted whose tables are still being released (snapshot to source).
pub const DOOMED: MemoryId = MemoryId::new(11);
/// Tables still being copied from a parent (child to (parent, next index)).
pub const INHERITS: MemoryId = MemoryId::new(12);
/// Commits in progress (snapshot to its partial root).
pub const COMMITS: MemoryId = MemoryId::new(13);
/// When each snapshot's current lease window began (ns).
pub const LEASE_STARTS: MemoryId = MemoryId::new(14);
/// Snapshot counters and the per-source index's build cursor.
pub const COUNTERS: MemoryId = MemoryId::new(15);
/// In-progress snapshots per source.
pub const OPEN_BY_SOURCE: MemoryId = MemoryId::new(16);
/// Table entries per (source, chunk hash).
pub const SOURCE_REFS: MemoryId = MemoryId::new(17);

/// Canister jobs (whole-canister backups and restores). Added by issue #11: a vault
/// upgraded from an older module finds it empty, its correct initial state.
pub const CANISTER_JOBS: MemoryId = MemoryId::new(18);
/// Whole-canister backup schedules, by canister (`schedule`). Added after #11: a vault
/// upgraded from an older module finds it empty, its correct initial state.
pub const SCHEDULES: MemoryId = MemoryId::new(19);

/// The memory type every structure of the vault is built on.
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

    /// The catalogue's memories, each at its id.
    pub fn catalogue(&self) -> crate::catalogue::CatalogueMemories<Vm<M>> {
        crate::catalogue::CatalogueMemories {
            snapshots: self.get(SNAPSHOTS),
            tables: self.get(TABLES),
            nonces: self.get(NONCES),
            doomed: self.get(DOOMED),
            inherits: self.get(INHERITS),
            commits: self.get(COMMITS),
            counters: self.get(COUNTERS),
            open: self.get(OPEN_BY_SOURCE),
            source_refs: self.get(SOURCE_REFS),
        }
    }
}
