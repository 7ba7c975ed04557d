//! Receiving a restore: armed by an admin, staged outside the live image, verified
//! chunk by chunk and as a whole, then switched in one step.
//!
//! Invariants:
//! - only the armed vault may push, and only the armed snapshot;
//! - chunks land in the staging image (the inactive one); the live image is untouched
//!   until `finish`, so an interrupted or corrupt restore changes nothing the app sees;
//! - a staged index holds exactly one body: its staged digest is the digest of the
//!   bytes in staging at that index (a re-send with another digest is refused, a
//!   re-send with the same digest is an idempotent repeat);
//! - staging at or above `stale_below` is zero except at indices staged with `Data`
//!   (staging grows only as `Data` chunks arrive, and to the image size at `finish`);
//! - one batch carries at most `MAX_BATCH_DECODED_BYTES` of decoded chunks;
//! - `finish` switches only if every chunk is staged and the staged digests recompute
//!   the announced root (and the admin's expected root, if given);
//! - the root is walked as chunks arrive: every call advances the walk over the
//!   contiguous staged digests by at most [`ROOT_WALK_STEP`], its frontier saved in the
//!   restore state, so no call walks the whole image (`finish` only finishes it).
//!
//! What is trusted: with an expected root, nothing the vault says (the root binds the
//! geometry and every chunk). Without one, the armed vault chooses the content and the
//! size of the image, up to the configured `max_unverified_restore_bytes`.

use candid::Principal;
use canvault_protocol::Hash256;
use std::collections::BTreeMap;

use canvault_protocol::chunk::{
    self, MAX_BATCH_DECODED_BYTES, chunk_count, chunk_len, valid_chunk_size,
};
use canvault_protocol::kit_api::{
    ArmRestoreRequest, KitError, LastBackup, RestoreBeginRequest, RestoreChunksRequest,
};
use canvault_protocol::merkle::Frontier;
use canvault_protocol::vault_api::{ChunkBody, SnapshotId};
use ic_stable_structures::Memory;

use crate::kit::{Kit, WASM_PAGE};
use crate::state::{DEFAULT_MAX_UNVERIFIED_RESTORE_BYTES, LastRestore, Restore, RestoreGeometry};

/// Staged digests one restore call walks into the root at most: ~13k instructions each
/// (two SHA-256 compressions and an ordered read), well inside one 2B slice.
pub const ROOT_WALK_STEP: u32 = 32_768;

impl<M: Memory> Kit<M> {
    /// Arms a restore of `snapshot_id` from `vault`.
    ///
    /// # Errors
    /// A backup is running.
    pub fn arm_restore(&mut self, req: ArmRestoreRequest) -> Result<(), KitError> {
        if self.state().backup.is_some() {
            return Err(KitError::BackupInProgress);
        }
        self.staged.clear_new();
        self.update_state(|s| {
            s.restore = Some(Restore {
                vault: req.vault,
                snapshot_id: req.snapshot_id,
                expected_root: req.expected_root,
                begun: None,
                stale_below: None,
                root_walk: None,
            });
        });
        Ok(())
    }

    /// Forgets the armed restore; the live image was never touched.
    ///
    /// # Errors
    /// Nothing is armed.
    pub fn abandon_restore(&mut self) -> Result<(), KitError> {
        if self.state().restore.is_none() {
            return Err(KitError::NotArmed);
        }
        self.staged.clear_new();
        self.update_state(|s| s.restore = None);
        Ok(())
    }

    fn armed_for(&self, caller: Principal, snapshot_id: SnapshotId) -> Result<&Restore, KitError> {
        let r = self.state().restore.as_ref().ok_or(KitError::NotArmed)?;
        if r.vault != caller {
            return Err(KitError::Unauthorized(caller));
        }
        if r.snapshot_id != snapshot_id {
            return Err(KitError::WrongSnapshot {
                armed: r.snapshot_id,
                got: snapshot_id,
            });
        }
        Ok(r)
    }

    /// The vault announces the image. Idempotent for the same announcement.
    ///
    /// # Errors
    /// Not armed, wrong vault or snapshot, bad geometry, a root other than the expected one.
    pub fn restore_begin(
        &mut self,
        caller: Principal,
        req: &RestoreBeginRequest,
    ) -> Result<(), KitError> {
        let armed = self.armed_for(caller, req.snapshot_id)?.clone();
        if !valid_chunk_size(req.chunk_size)
            || !req.image_size.is_multiple_of(WASM_PAGE)
            || req.image_size.div_ceil(u64::from(req.chunk_size)) > u64::from(u32::MAX)
        {
            return Err(KitError::InvalidRequest(format!(
                "geometry not supported: image {} bytes, chunks {} bytes",
                req.image_size, req.chunk_size
            )));
        }
        match armed.expected_root {
            Some(expected) if expected != req.root => {
                return Err(KitError::RootMismatch {
                    expected,
                    computed: req.root,
                });
            }
            Some(_) => {}
            None => {
                let cap = self
                    .state()
                    .config
                    .max_unverified_restore_bytes
                    .unwrap_or(DEFAULT_MAX_UNVERIFIED_RESTORE_BYTES);
                if req.image_size > cap {
                    return Err(KitError::InvalidRequest(format!(
                        "an image of {} bytes exceeds the {cap}-byte cap of a restore without an expected root",
                        req.image_size
                    )));
                }
            }
        }
        let geometry = RestoreGeometry {
            image_size: req.image_size,
            chunk_size: req.chunk_size,
            root: req.root,
        };
        if armed.begun == Some(geometry) {
            return Ok(());
        }
        // Staging grows only as content arrives (`ensure_staging`): an announcement
        // alone costs no memory.
        let have = self.staging().size();
        self.staged.clear_new();
        self.update_state(|s| {
            if let Some(r) = s.restore.as_mut() {
                r.begun = Some(geometry);
                r.stale_below = Some(have * WASM_PAGE);
                r.root_walk = None;
            }
        });
        Ok(())
    }

    /// Verifies every chunk of the batch, then writes them all to the staging image.
    /// Returns the number of chunks staged so far.
    ///
    /// # Errors
    /// Not armed or begun, wrong vault or snapshot, a chunk out of range or failing
    /// verification (then nothing of the batch is written).
    pub fn restore_chunks(
        &mut self,
        caller: Principal,
        req: RestoreChunksRequest,
    ) -> Result<u32, KitError> {
        let armed = self.armed_for(caller, req.snapshot_id)?;
        let g = armed
            .begun
            .ok_or_else(|| KitError::InvalidRequest("restore_begin must come first".into()))?;
        let stale_below = armed.stale_below.unwrap_or(u64::MAX);
        let count = chunk_count(g.image_size, g.chunk_size);
        let decoded: u64 = req.chunks.iter().map(|c| u64::from(c.len)).sum();
        if decoded > MAX_BATCH_DECODED_BYTES {
            return Err(KitError::InvalidRequest(format!(
                "a batch of {decoded} decoded bytes exceeds {MAX_BATCH_DECODED_BYTES}"
            )));
        }
        // Index → digest of this batch, to refuse two bodies for one index within it.
        let mut in_batch: BTreeMap<u32, Hash256> = BTreeMap::new();
        let mut verified = Vec::with_capacity(req.chunks.len());
        for c in req.chunks {
            let bad = |reason: String| KitError::BadChunk {
                index: c.index,
                reason,
            };
            if c.index >= count {
                return Err(bad(format!(
                    "index out of range: the image has {count} chunks"
                )));
            }
            let len = chunk_len(c.index, g.image_size, g.chunk_size);
            if c.len != len {
                return Err(bad(format!(
                    "length {} but the chunk is {len} bytes",
                    c.len
                )));
            }
            let earlier = in_batch
                .get(&c.index)
                .copied()
                .or_else(|| self.staged.get(&c.index).map(Hash256));
            if let Some(earlier) = earlier {
                if earlier != c.hash {
                    return Err(bad(format!(
                        "already staged with digest {earlier}, not {}",
                        c.hash
                    )));
                }
                // The same body again: an idempotent repeat, nothing to write.
                continue;
            }
            let raw = match c.body {
                ChunkBody::Data { codec, bytes } => {
                    chunk::open(codec, &bytes, len, &c.hash).map_err(|e| bad(e.to_string()))?
                }
                ChunkBody::Zero if c.hash == chunk::zero_hash(len) => Vec::new(),
                ChunkBody::Zero => return Err(bad("zero chunk with a non-zero digest".into())),
                ChunkBody::Known => {
                    return Err(bad("a restore must carry the chunk's bytes".into()));
                }
            };
            in_batch.insert(c.index, c.hash);
            verified.push((c.index, c.hash, raw));
        }
        for (index, hash, raw) in verified {
            let offset = u64::from(index) * u64::from(g.chunk_size);
            let len = chunk_len(index, g.image_size, g.chunk_size);
            if !raw.is_empty() {
                self.ensure_staging(offset + u64::from(len))?;
                self.staging().write(offset, &raw);
            } else if offset < stale_below {
                // A zero chunk over older staging content; fresh pages are zero already.
                self.ensure_staging(offset + u64::from(len))?;
                self.staging().write(offset, &vec![0; len as usize]);
            }
            self.staged.insert(index, hash.0);
        }
        self.advance_restore_walk(count);
        Ok(u32::try_from(self.staged.len()).expect("chunk counts fit u32"))
    }

    /// Walks up to [`ROOT_WALK_STEP`] staged digests, from the first not yet walked,
    /// stopping at the first index not staged; saves the frontier. Returns it.
    fn advance_restore_walk(&mut self, count: u32) -> Frontier {
        let mut walk = self
            .state()
            .restore
            .as_ref()
            .and_then(|r| r.root_walk.clone())
            .unwrap_or_default();
        let from = walk.pushed;
        let before = walk.pushed;
        for e in self.staged.range(from..).take(ROOT_WALK_STEP as usize) {
            if *e.key() != walk.pushed || walk.pushed >= count {
                break;
            }
            walk.push(&Hash256(e.value()));
        }
        if walk.pushed != before {
            let saved = walk.clone();
            self.update_state(|s| {
                if let Some(r) = s.restore.as_mut() {
                    r.root_walk = Some(saved);
                }
            });
        }
        walk
    }

    /// Grows the staging image to hold at least `bytes` (new pages are zero).
    fn ensure_staging(&self, bytes: u64) -> Result<(), KitError> {
        let pages = bytes.div_ceil(WASM_PAGE);
        let have = self.staging().size();
        if have < pages && self.staging().grow(pages - have) < 0 {
            return Err(KitError::InvalidRequest(
                "stable memory exhausted for the staging image".into(),
            ));
        }
        Ok(())
    }

    /// Verifies the staged image and switches the app to it. Returns true if it switched
    /// (false: it had already been applied, an idempotent repeat).
    ///
    /// # Errors
    /// Not armed or begun, chunks missing, root mismatch (nothing changes).
    pub fn restore_finish(
        &mut self,
        caller: Principal,
        snapshot_id: SnapshotId,
        now_ns: u64,
    ) -> Result<bool, KitError> {
        // A retry of a finish that switched (its reply was lost): answer success, even
        // if backups ran since and the restored snapshot is no longer the last backup.
        if self.state().restore.is_none()
            && self
                .state()
                .last_restore
                .as_ref()
                .is_some_and(|r| r.vault == caller && r.snapshot_id == snapshot_id)
        {
            return Ok(false);
        }
        let armed = self.armed_for(caller, snapshot_id)?.clone();
        let g = armed
            .begun
            .ok_or_else(|| KitError::InvalidRequest("restore_begin must come first".into()))?;
        let count = chunk_count(g.image_size, g.chunk_size);
        let walk = self.advance_restore_walk(count);
        // Staged indices are all below `count` (restore_chunks checks), so a full table
        // has exactly `count` entries. The walk stops at the first index not staged.
        if self.staged.len() != u64::from(count) && !self.staged.contains_key(&walk.pushed) {
            return Err(KitError::Incomplete {
                missing: count - u32::try_from(self.staged.len()).expect("below count"),
                first: walk.pushed,
            });
        }
        let Some(computed) = walk.image_root(g.image_size, g.chunk_size) else {
            return Err(KitError::InvalidRequest(format!(
                "the root walk is at chunk {} of {count}: chunks arrived out of order; call again",
                walk.pushed
            )));
        };
        if computed != g.root {
            return Err(KitError::RootMismatch {
                expected: g.root,
                computed,
            });
        }
        self.ensure_staging(g.image_size)?;
        self.switch_to_staged(armed.vault, snapshot_id, g, now_ns);
        Ok(true)
    }

    /// The atomic switch: the staging image becomes the app's, its digests the known base.
    fn switch_to_staged(
        &mut self,
        vault: Principal,
        snapshot_id: SnapshotId,
        g: RestoreGeometry,
        now_ns: u64,
    ) {
        // The staged digests become the known ones by swapping the tables (O(1), where
        // copying them cost ~65k instructions per chunk); the old known table is
        // emptied as the next staging table.
        std::mem::swap(&mut self.known, &mut self.staged);
        self.staged.clear_new();
        self.dirty.clear_all();
        self.invalidate_known_set();
        self.update_state(|s| {
            s.active_image = 1 - s.active_image;
            s.known_table = 1 - s.known_table;
            s.image_pages = g.image_size / WASM_PAGE;
            s.known_chunk_size = g.chunk_size;
            s.restore = None;
            s.restores_completed += 1;
            s.last_restore = Some(LastRestore {
                vault,
                snapshot_id,
                root: g.root,
                completed_at_ns: now_ns,
            });
            // The restored snapshot is the base of the next incremental backup.
            s.last_backup = Some(LastBackup {
                vault,
                snapshot_id,
                root: g.root,
                image_size: g.image_size,
                completed_at_ns: now_ns,
                chunks_sent: 0,
                bytes_sent: 0,
                frozen_at_ns: None,
            });
        });
    }
}
