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
    ListSnapshotsRequest, ManifestEntry, ManifestPage, SnapshotId, SnapshotInfo, SnapshotPage,
    SnapshotState, StoredChunk, VaultError,
};
use ic_stable_structures::Memory;

use crate::backup::wrong_state;
use crate::vault::Vault;

/// Most entries in one manifest page (about 0.6 MB of candid).
pub const MAX_MANIFEST_PAGE: u32 = 10_000;
/// Most snapshots in one catalogue page.
pub const MAX_LIST_PAGE: u32 = 1_000;
/// Most records one catalogue page looks at (a filtered page may come back short).
pub const MAX_LIST_SCAN: usize = 20_000;
/// Longest download lease, in seconds (7 days).
pub const MAX_LEASE_SECONDS: u64 = 7 * 86_400;
const DAY_NS: u64 = 86_400 * 1_000_000_000;
/// Longest a snapshot stays pinned by one window of leases: renewals never extend a
/// lease past 14 days after the window's first lease.
pub const MAX_PIN_NS: u64 = 14 * DAY_NS;
/// A window closes once its lease has been expired this long; only then can a new
/// lease open a new window. So leases pin a snapshot at most 14 days in any 15, and
/// retention always gets a day to delete it.
pub const PIN_COOL_DOWN_NS: u64 = DAY_NS;

impl<M: Memory> Vault<M> {
    /// A page of snapshots, optionally of one source, in id order: at most
    /// [`MAX_LIST_PAGE`] snapshots (about 1.5 MB of candid at worst: 256-byte labels,
    /// 1 KiB failure reasons), found among at most [`MAX_LIST_SCAN`] records.
    pub fn list_snapshot_page(&self, req: &ListSnapshotsRequest) -> SnapshotPage {
        let limit = match req.limit {
            Some(l) if l > 0 => l.min(MAX_LIST_PAGE),
            _ => MAX_LIST_PAGE,
        } as usize;
        let mut page = SnapshotPage::default();
        for (scanned, record) in self
            .catalogue
            .records_from(req.start.unwrap_or(0))
            .enumerate()
        {
            if page.snapshots.len() == limit || scanned == MAX_LIST_SCAN {
                page.next = Some(record.info.id);
                break;
            }
            if req.source.is_none_or(|s| s == record.info.source) {
                page.snapshots.push(record.info);
            }
        }
        page
    }

    /// The first page of [`Self::list_snapshot_page`] (the original endpoint, kept for
    /// callers that predate pages: it never answers more than one page).
    pub fn list_snapshots(&self, source: Option<Principal>) -> Vec<SnapshotInfo> {
        self.list_snapshot_page(&ListSnapshotsRequest {
            source,
            ..ListSnapshotsRequest::default()
        })
        .snapshots
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
    /// expiry (ns). An existing longer lease is kept; a renewal is cut at the end of the
    /// lease window ([`MAX_PIN_NS`] after it opened).
    ///
    /// # Errors
    /// `SnapshotNotFound`, `WrongState` (not complete), `InvalidRequest` (0 or more
    /// than [`MAX_LEASE_SECONDS`], or the window is used up: a new one opens
    /// [`PIN_COOL_DOWN_NS`] after the last lease expired).
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
        let current = self.leases.get(&id);
        let window_open = current.is_some_and(|e| now_ns < e.saturating_add(PIN_COOL_DOWN_NS));
        // A lease from a module without windows opens its window now.
        let start = self
            .lease_starts
            .get(&id)
            .filter(|_| window_open)
            .unwrap_or(now_ns);
        let end = start.saturating_add(MAX_PIN_NS);
        if now_ns >= end {
            let reopen = current.unwrap_or(now_ns).saturating_add(PIN_COOL_DOWN_NS);
            return Err(VaultError::InvalidRequest(format!(
                "snapshot {id} has been pinned by leases for {} days: a new lease can open at {reopen} ns",
                MAX_PIN_NS / DAY_NS
            )));
        }
        let expiry = now_ns
            .saturating_add(seconds * 1_000_000_000)
            .min(end)
            .max(current.filter(|_| window_open).unwrap_or(0));
        self.leases.insert(id, expiry);
        self.lease_starts.insert(id, start);
        Ok(expiry)
    }

    /// Forgets leases whose window closed.
    pub(crate) fn drop_leases(&mut self, now_ns: u64) {
        let closed: Vec<SnapshotId> = self
            .leases
            .iter()
            .filter(|e| e.value().saturating_add(PIN_COOL_DOWN_NS) <= now_ns)
            .map(|e| *e.key())
            .collect();
        for id in closed {
            self.forget_lease(id);
        }
    }

    /// Forgets the lease of `id` (deleted, or its window closed).
    pub(crate) fn forget_lease(&mut self, id: SnapshotId) {
        self.leases.remove(&id);
        self.lease_starts.remove(&id);
    }
}
