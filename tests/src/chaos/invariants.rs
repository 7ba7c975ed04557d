//! The invariants checked after every step, on each watched vault.
//!
//! Two views of the vault are compared:
//! - its raw stable memory, read without executing anything and walked with the vault's
//!   own layout code (crate `canvault-vault-layout`: the catalogue, every chunk table,
//!   the chunk index): each chunk's reference count equals the table entries naming it,
//!   no referenced chunk is missing (GC never removed one), no stored chunk is
//!   unreferenced (no orphan), each complete table recomputes its root;
//! - its public queries (`status`, `list_snapshots`, and downloads through
//!   `get_manifest` / `get_chunk`, verified chunk by chunk), which must agree.
//!
//! The content checks (every stored chunk opens and verifies; every complete snapshot
//! downloads to its image) cost more and run every N steps and after each restore.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use canvault_protocol::Hash256;
use canvault_protocol::chunk;
use canvault_protocol::merkle::image_root;
use canvault_protocol::vault_api::{SnapshotInfo, SnapshotState};
use canvault_vault_layout::catalogue::{Catalogue, SnapshotRecord};
use canvault_vault_layout::memory::{self, Memories};
use canvault_vault_layout::store::ChunkStore;
use ic_harness::{CanisterId, Harness};
use ic_stable_structures::VectorMemory;

use super::adapter;
use super::model::{VaultModel, Verified};

/// What the walk of a vault's stable memory found.
#[derive(Debug, Clone, Default)]
pub struct Walk {
    /// Every catalogue record, by id.
    pub records: BTreeMap<u64, SnapshotRecord>,
    /// Distinct chunks stored.
    pub chunks: u64,
}

/// Walks `vault`'s stable memory and checks the store against the tables; with
/// `content`, also opens and verifies every stored chunk.
///
/// # Errors
/// The first inconsistency, described.
pub fn walk_vault(ic: &Harness, vault: CanisterId, content: bool) -> Result<Walk, String> {
    let raw = ic.get_stable_memory(vault);
    let m = Memories::init(VectorMemory::new(RefCell::new(raw)));
    let store = ChunkStore::init(
        m.get(memory::CHUNK_INDEX),
        m.get(memory::STORE_STATS),
        m.get(memory::BLOCK_HEAP),
        m.get(memory::FREE_BLOCKS),
    );
    let catalogue = Catalogue::init(m.catalogue());
    let records: BTreeMap<u64, SnapshotRecord> =
        catalogue.records().map(|r| (r.info.id, r)).collect();

    // References held by table entries, and each table's hashes in index order.
    let mut references: BTreeMap<Hash256, u64> = BTreeMap::new();
    let mut tables: BTreeMap<u64, Vec<(u32, Hash256)>> = BTreeMap::new();
    for ((id, index), entry) in catalogue.all_entries() {
        let Some(record) = records.get(&id) else {
            // A deleted snapshot's table stays (and holds its references) until the
            // vault's budgeted deletion queue releases it.
            if catalogue.doomed_source(id).is_some() {
                if !entry.zero {
                    *references.entry(entry.hash).or_default() += 1;
                }
                continue;
            }
            return Err(format!(
                "table entry ({id}, {index}) of a snapshot neither in the catalogue nor queued for deletion"
            ));
        };
        if index >= record.info.chunk_count {
            return Err(format!(
                "snapshot {id}: entry {index} beyond its {} chunks",
                record.info.chunk_count
            ));
        }
        if entry.zero {
            if entry.hash != chunk::zero_hash(entry.len) {
                return Err(format!(
                    "snapshot {id}: zero entry {index} with a non-zero digest"
                ));
            }
        } else {
            *references.entry(entry.hash).or_default() += 1;
        }
        tables.entry(id).or_default().push((index, entry.hash));
    }

    // The store holds exactly the referenced chunks, each counted exactly.
    let refcounts = store.refcounts();
    let stored: BTreeSet<Hash256> = refcounts.iter().map(|(h, _)| *h).collect();
    for (hash, refs) in &refcounts {
        let expected = references.get(hash).copied().unwrap_or(0);
        if expected == 0 {
            return Err(format!(
                "orphan chunk {hash:?}: stored with {refs} references, no table entry names it"
            ));
        }
        if *refs != expected {
            return Err(format!(
                "chunk {hash:?}: refcount {refs}, but {expected} table entries name it"
            ));
        }
    }
    if let Some((hash, n)) = references.iter().find(|(h, _)| !stored.contains(*h)) {
        return Err(format!(
            "chunk {hash:?} referenced by {n} table entries is not stored (collected while referenced)"
        ));
    }

    // Every complete table is whole and recomputes its root.
    for (id, record) in &records {
        if record.info.state != SnapshotState::Complete {
            continue;
        }
        let entries = tables.get(id).map_or(&[][..], Vec::as_slice);
        let whole = entries.len() == record.info.chunk_count as usize
            && entries
                .iter()
                .enumerate()
                .all(|(i, (index, _))| *index as usize == i);
        if !whole {
            return Err(format!(
                "complete snapshot {id}: {} table entries for {} chunks",
                entries.len(),
                record.info.chunk_count
            ));
        }
        let root = image_root(
            record.info.image_size,
            record.info.chunk_size,
            entries.iter().map(|(_, h)| *h),
        );
        if Some(root) != record.info.root {
            return Err(format!(
                "complete snapshot {id}: table root {root:?} differs from its recorded root {:?}",
                record.info.root
            ));
        }
    }

    if content {
        for hash in &stored {
            let c = store
                .get(hash)
                .ok_or_else(|| format!("chunk {hash:?} listed but unreadable"))?;
            chunk::open(c.codec, &c.bytes, c.len, hash)
                .map_err(|e| format!("stored chunk {hash:?} fails verification: {e:?}"))?;
        }
    }
    Ok(Walk {
        records,
        chunks: store.len(),
    })
}

/// What a check of one vault found new since the last one.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Complete snapshots seen for the first time (each matched to an image).
    pub new_complete: Vec<u64>,
    /// Failed snapshots seen for the first time.
    pub new_failed: Vec<u64>,
    /// Verified snapshots that are gone (deleted by retention or an owner).
    pub gone: Vec<u64>,
}

/// Checks one vault after a step: the walk, the public queries agreeing with it, and
/// every complete snapshot matching an image of the model (never changing afterwards).
/// With `content`, also verifies every stored chunk and downloads every complete
/// snapshot through the public API, comparing it byte for byte.
///
/// # Errors
/// The first violation, described.
pub fn check_vault(
    ic: &mut Harness,
    v: &mut VaultModel,
    content: bool,
    lost: &mut u64,
) -> Result<Seen, String> {
    let walk = walk_vault(ic, v.id, content)?;
    let status = adapter::vault_status(ic, v.id, v.owner)?;
    if status.chunks != walk.chunks {
        return Err(format!(
            "status reports {} chunks, the store holds {}",
            status.chunks, walk.chunks
        ));
    }
    let listed: Vec<SnapshotInfo> = adapter::list_snapshots(ic, v.id, v.owner)?;
    let listed_ids: Vec<u64> = listed.iter().map(|s| s.id).collect();
    let walked_ids: Vec<u64> = walk.records.keys().copied().collect();
    if listed_ids != walked_ids {
        return Err(format!(
            "list_snapshots {listed_ids:?} differs from the catalogue {walked_ids:?}"
        ));
    }
    let mut seen = Seen::default();
    for s in &listed {
        match &s.state {
            SnapshotState::Complete => {
                let root = s
                    .root
                    .ok_or_else(|| format!("complete snapshot {} without a root", s.id))?;
                if let Some(known) = v.verified.get(&s.id) {
                    if known.root != root {
                        return Err(format!(
                            "snapshot {}: root changed from {:?} to {root:?}",
                            s.id, known.root
                        ));
                    }
                    continue;
                }
                let image = v.book.find(&root, s.chunk_size).ok_or_else(|| {
                    format!("complete snapshot {} (root {root:?}, {} bytes) matches no image the source held", s.id, s.image_size)
                })?;
                v.verified.insert(s.id, Verified { root, image });
                seen.new_complete.push(s.id);
            }
            SnapshotState::Failed { .. } => {
                if v.failed_seen.insert(s.id) {
                    seen.new_failed.push(s.id);
                }
            }
            SnapshotState::InProgress => {}
        }
    }
    seen.gone = v
        .verified
        .keys()
        .filter(|id| !listed_ids.contains(id))
        .copied()
        .collect();
    for id in &seen.gone {
        v.verified.remove(id);
    }
    if content {
        download_all(ic, v, lost)?;
    }
    Ok(seen)
}

/// Downloads every verified snapshot of `v` through the public API and compares it.
///
/// # Errors
/// A snapshot that does not download to its image (with the bytes that differ).
pub fn download_all(ic: &mut Harness, v: &VaultModel, lost: &mut u64) -> Result<(), String> {
    let client = crate::vault::VaultClient { id: v.id };
    for (id, expected) in &v.verified {
        let got = client.download(ic, v.owner, *id, 1000);
        if got != *expected.image {
            let differing = super::restore::differing(&got, &expected.image);
            *lost += differing;
            return Err(format!(
                "BYTES LOST: snapshot {id} downloads with {differing} bytes differing from its image"
            ));
        }
    }
    Ok(())
}
