//! Reads for owners and readers: the catalogue, manifests, chunks, download leases.
//!
//! A download is `open_download` (pins the snapshot against retention until the lease
//! expires), then `get_manifest` pages and one `get_chunk` per distinct hash. Every reply
//! fits the 3 MiB query limit: a manifest page holds at most [`MAX_MANIFEST_PAGE`]
//! entries, a stored chunk at most 1 MiB (the vault refuses encodings larger than the
//! chunk). The client verifies each chunk against its hash and the image root.

use candid::Principal;
use canvault_protocol::Hash256;
use canvault_protocol::vault_api::{
    ManifestEntry, ManifestPage, SnapshotId, SnapshotInfo, SnapshotState, StoredChunk, VaultError,
};
use ic_stable_structures::Memory;

use crate::backup::wrong_state;
use crate::vault::Vault;

/// Most entries in one manifest page (about 0.6 MB of candid).
pub const MAX_MANIFEST_PAGE: u32 = 10_000;
/// Longest download lease, in seconds (7 days).
pub const MAX_LEASE_SECONDS: u64 = 7 * 86_400;

impl<M: Memory> Vault<M> {
    /// Snapshots, optionally of one source, in id order.
    pub fn list_snapshots(&self, source: Option<Principal>) -> Vec<SnapshotInfo> {
        self.catalogue
            .records()
            .map(|r| r.info)
            .filter(|info| source.is_none_or(|s| s == info.source))
            .collect()
    }

    /// One snapshot.
    ///
    /// # Errors
    /// `SnapshotNotFound`.
    pub fn get_snapshot(&self, id: SnapshotId) -> Result<SnapshotInfo, VaultError> {
        self.catalogue
            .get(id)
            .map(|r| r.info)
            .ok_or(VaultError::SnapshotNotFound(id))
    }

    /// Up to `limit` chunk-table entries from index `start` (`limit` 0 or above
    /// [`MAX_MANIFEST_PAGE`] means the maximum). `next` is the index to ask for next.
    ///
    /// # Errors
    /// `SnapshotNotFound`.
    pub fn get_manifest(
        &self,
        id: SnapshotId,
        start: u32,
        limit: u32,
    ) -> Result<ManifestPage, VaultError> {
        self.catalogue
            .get(id)
            .ok_or(VaultError::SnapshotNotFound(id))?;
        let limit = if limit == 0 {
            MAX_MANIFEST_PAGE
        } else {
            limit.min(MAX_MANIFEST_PAGE)
        };
        let mut entries = Vec::new();
        let mut next = None;
        for (index, e) in self.catalogue.entries(id, start) {
            if entries.len() == limit as usize {
                next = Some(index);
                break;
            }
            entries.push(ManifestEntry {
                index,
                hash: e.hash,
                len: e.len,
                zero: e.zero,
            });
        }
        Ok(ManifestPage { entries, next })
    }

    /// A stored chunk, as stored.
    ///
    /// # Errors
    /// `InvalidRequest` if no chunk with this hash is stored (zero chunks never are).
    pub fn get_chunk(&self, hash: &Hash256) -> Result<StoredChunk, VaultError> {
        self.store.get(hash).ok_or_else(|| {
            VaultError::InvalidRequest(format!("no chunk with hash {hash} is stored"))
        })
    }

    /// Pins a complete snapshot against retention for `seconds`; returns the lease's
    /// expiry (ns). An existing longer lease is kept.
    ///
    /// # Errors
    /// `SnapshotNotFound`, `WrongState` (not complete), `InvalidRequest` (0 or more
    /// than [`MAX_LEASE_SECONDS`]).
    pub fn open_download(
        &mut self,
        id: SnapshotId,
        seconds: u64,
        now_ns: u64,
    ) -> Result<u64, VaultError> {
        let info = self.get_snapshot(id)?;
        if info.state != SnapshotState::Complete {
            return Err(wrong_state(&info, "Complete"));
        }
        if seconds == 0 || seconds > MAX_LEASE_SECONDS {
            return Err(VaultError::InvalidRequest(format!(
                "a download lease lasts 1 to {MAX_LEASE_SECONDS} seconds, not {seconds}"
            )));
        }
        let expiry = now_ns
            .saturating_add(seconds * 1_000_000_000)
            .max(self.leases.get(&id).unwrap_or(0));
        self.leases.insert(id, expiry);
        Ok(expiry)
    }
}
