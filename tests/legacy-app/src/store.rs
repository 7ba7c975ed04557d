//! The app's data, generic over the memory under it: `DefaultMemoryImpl` (raw stable
//! memory) in legacy-app, `canvault_kit::AppMemory` in legacy-app-kit. Shared by both
//! crates (`#[path]`), so the only difference between them is the memory and one line
//! in `post_upgrade`.
//!
//! Two layouts, chosen at install and recognised from the memory's first bytes:
//! - `Managed`: a `MemoryManager` with a `StableBTreeMap<u64, blob>` (memory 0), a
//!   `StableVec<u64>` of the keys in insertion order (memory 1) and a `StableCell<u64>`
//!   holding the entry count (memory 2, where the kit keeps its own state cell);
//! - `Raw`: fixed-size records written at fixed offsets, as code using `ic0.stable64_*`
//!   directly does: a 64-byte header (magic, count) then record `i` at
//!   `64 + i * RECORD` as a `u32` length and up to `RECORD - 4` bytes.

use candid::CandidType;
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::{Memory, StableBTreeMap, StableCell, StableVec};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Bytes per entry (map value, raw record).
pub const RECORD: u64 = 16 * 1024;
const RAW_MAGIC: &[u8; 8] = b"RAWAPP01";
const RAW_HEADER: u64 = 64;
const PAGE: u64 = 65_536;

/// Which layout the app uses.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// ic-stable-structures in a `MemoryManager`.
    Managed,
    /// Records at fixed offsets of raw stable memory.
    Raw,
}

type Vm<M> = VirtualMemory<M>;

/// The app's structures over memory `M`.
pub enum Store<M: Memory> {
    /// See the module docs.
    Managed {
        /// key → value.
        map: StableBTreeMap<u64, Vec<u8>, Vm<M>>,
        /// Keys in insertion order.
        log: StableVec<u64, Vm<M>>,
        /// Entries ever added by `fill`.
        count: StableCell<u64, Vm<M>>,
    },
    /// See the module docs.
    Raw(M),
}

/// `len` pseudo-random bytes for entry `key` of fill `seed`; 6 bits of entropy per
/// byte, so images compress somewhat, like real data.
#[must_use]
pub fn value(seed: u64, key: u64, len: u64) -> Vec<u8> {
    let mut x = (seed ^ key.rotate_left(17)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as u8) & 0x3f
        })
        .collect()
}

impl<M: Memory + Clone> Store<M> {
    /// A new, empty store of `kind` in `mem` (empty memory).
    pub fn create(mem: M, kind: Kind) -> Self {
        match kind {
            Kind::Managed => Self::managed(mem),
            Kind::Raw => {
                mem.grow(1);
                mem.write(0, RAW_MAGIC);
                mem.write(8, &0u64.to_le_bytes());
                Self::Raw(mem)
            }
        }
    }

    /// Re-opens the store in `mem` (its layout is recognised by its first bytes).
    ///
    /// # Panics
    /// If `mem` holds neither layout.
    pub fn open(mem: M) -> Self {
        let mut magic = [0u8; 8];
        if mem.size() > 0 {
            mem.read(0, &mut magic);
        }
        if &magic == RAW_MAGIC {
            Self::Raw(mem)
        } else if &magic[..3] == b"MGR" {
            Self::managed(mem)
        } else {
            panic!("legacy-app: memory holds no store");
        }
    }

    fn managed(mem: M) -> Self {
        let mm = MemoryManager::init(mem);
        Self::Managed {
            map: StableBTreeMap::init(mm.get(MemoryId::new(0))),
            log: StableVec::init(mm.get(MemoryId::new(1))),
            count: StableCell::init(mm.get(MemoryId::new(2)), 0),
        }
    }

    /// The layout.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Managed { .. } => Kind::Managed,
            Self::Raw(_) => Kind::Raw,
        }
    }

    /// Entries.
    pub fn len(&self) -> u64 {
        match self {
            Self::Managed { count, .. } => *count.get(),
            Self::Raw(mem) => {
                let mut n = [0u8; 8];
                mem.read(8, &mut n);
                u64::from_le_bytes(n)
            }
        }
    }

    /// Appends `entries` entries of [`RECORD`] bytes (keys continue from [`Self::len`]).
    pub fn fill(&mut self, seed: u64, entries: u64) {
        let first = self.len();
        for key in first..first + entries {
            let v = value(seed, key, RECORD - 4);
            match self {
                Self::Managed { map, log, .. } => {
                    map.insert(key, v);
                    log.push(&key);
                }
                Self::Raw(mem) => {
                    let end = RAW_HEADER + (key + 1) * RECORD;
                    if mem.size() * PAGE < end {
                        assert!(mem.grow(end.div_ceil(PAGE) - mem.size()) >= 0, "grow");
                    }
                    raw_write(mem, key, &v);
                }
            }
        }
        let n = first + entries;
        match self {
            Self::Managed { count, .. } => {
                count.set(n);
            }
            Self::Raw(mem) => mem.write(8, &n.to_le_bytes()),
        }
    }

    /// Replaces entry `key` (an existing one) with `v` (at most `RECORD - 4` bytes).
    ///
    /// # Errors
    /// No such entry, or `v` too long.
    pub fn put(&mut self, key: u64, v: &[u8]) -> Result<(), String> {
        if key >= self.len() || v.len() as u64 > RECORD - 4 {
            return Err(format!("no entry {key} or value too long"));
        }
        match self {
            Self::Managed { map, .. } => {
                map.insert(key, v.to_vec());
            }
            Self::Raw(mem) => raw_write(mem, key, v),
        }
        Ok(())
    }

    /// Entry `key`.
    pub fn get(&self, key: u64) -> Option<Vec<u8>> {
        if key >= self.len() {
            return None;
        }
        match self {
            Self::Managed { map, .. } => map.get(&key),
            Self::Raw(mem) => {
                let at = RAW_HEADER + key * RECORD;
                let mut len = [0u8; 4];
                mem.read(at, &mut len);
                let mut v = vec![0u8; u32::from_le_bytes(len) as usize];
                mem.read(at + 4, &mut v);
                Some(v)
            }
        }
    }

    /// SHA-256 of entries `start..` (at most `limit`) as (key, length, value), and
    /// the key to continue from.
    pub fn digest_page(&self, start: u64, limit: u64) -> (Vec<u8>, Option<u64>) {
        let end = start.saturating_add(limit).min(self.len());
        let mut h = Sha256::new();
        for key in start..end {
            let v = self.get(key).expect("entry below len");
            h.update(key.to_le_bytes());
            h.update((v.len() as u64).to_le_bytes());
            h.update(&v);
        }
        let next = (end < self.len()).then_some(end);
        (h.finalize().to_vec(), next)
    }

    /// SHA-256 of everything besides the entries: the layout, the count and (managed)
    /// the key log.
    pub fn digest_meta(&self) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update([self.kind() as u8]);
        h.update(self.len().to_le_bytes());
        if let Self::Managed { log, map, .. } = self {
            h.update(map.len().to_le_bytes());
            for key in log.iter() {
                h.update(key.to_le_bytes());
            }
        }
        h.finalize().to_vec()
    }
}

fn raw_write<M: Memory>(mem: &M, key: u64, v: &[u8]) {
    let at = RAW_HEADER + key * RECORD;
    mem.write(at, &(v.len() as u32).to_le_bytes());
    mem.write(at + 4, v);
}
