//! The soak's model of what the canisters must hold: the live app image, every image a
//! backup may have captured, and what each verified snapshot contains.
//!
//! A backup is point-in-time: whatever started it (`canvault_backup_now`, the interval
//! timer, a data-set request), its snapshot must equal, byte for byte, one image the
//! source really held. The soak records every such image as it comes into being (after
//! each app write; each data-set request), so a complete snapshot is matched to its image
//! by root, then compared byte for byte. A complete snapshot with no matching image is
//! content nobody wrote.

use std::collections::BTreeMap;
use std::rc::Rc;

use canvault_protocol::Hash256;
use canvault_protocol::merkle::image_root_of_bytes;

/// One image version, with its roots by chunk size (computed on demand).
#[derive(Debug, Clone)]
struct Version {
    bytes: Rc<Vec<u8>>,
    roots: BTreeMap<u32, Hash256>,
    /// The last step at which the source held it.
    last_held: u64,
}

impl Version {
    fn root(&mut self, chunk_size: u32) -> Hash256 {
        *self
            .roots
            .entry(chunk_size)
            .or_insert_with(|| image_root_of_bytes(&self.bytes, chunk_size))
    }
}

/// Images a source held that a snapshot may contain, deduplicated by content.
#[derive(Debug, Clone, Default)]
pub struct ImageBook {
    versions: Vec<Version>,
}

impl ImageBook {
    /// Records `bytes` as an image a backup may capture; returns it shared.
    pub fn record(&mut self, bytes: Vec<u8>) -> Rc<Vec<u8>> {
        if let Some(v) = self.versions.iter().find(|v| *v.bytes == bytes) {
            return Rc::clone(&v.bytes);
        }
        let bytes = Rc::new(bytes);
        self.versions.push(Version {
            bytes: Rc::clone(&bytes),
            roots: BTreeMap::new(),
            last_held: 0,
        });
        bytes
    }

    /// The recorded image whose root (at `chunk_size`) is `root`.
    pub fn find(&mut self, root: &Hash256, chunk_size: u32) -> Option<Rc<Vec<u8>>> {
        for v in &mut self.versions {
            if v.root(chunk_size) == *root {
                return Some(Rc::clone(&v.bytes));
            }
        }
        None
    }

    /// Notes that the source holds `image` at `step`.
    pub fn held(&mut self, image: &Rc<Vec<u8>>, step: u64) {
        if let Some(v) = self
            .versions
            .iter_mut()
            .find(|v| Rc::ptr_eq(&v.bytes, image))
        {
            v.last_held = step;
        }
    }

    /// Keeps only the versions `keep` accepts or the source held at `since` or later.
    pub fn retain(&mut self, since: u64, keep: impl Fn(&Rc<Vec<u8>>) -> bool) {
        self.versions
            .retain(|v| v.last_held >= since || keep(&v.bytes));
    }

    /// Versions held.
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// True if no version is held.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }
}

/// A snapshot the soak matched to its image.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its root when first seen complete (it must never change).
    pub root: Hash256,
    /// The image it must download to.
    pub image: Rc<Vec<u8>>,
}

/// One vault the soak watches: who may read it, and its matched snapshots.
#[derive(Debug, Clone)]
pub struct VaultModel {
    /// The vault.
    pub id: candid::Principal,
    /// An owner (reads, deletes, restores).
    pub owner: candid::Principal,
    /// The images its snapshots may hold.
    pub book: ImageBook,
    /// Complete snapshots matched to their image, by id.
    pub verified: BTreeMap<u64, Verified>,
    /// Snapshot ids seen failed (counted once each).
    pub failed_seen: std::collections::BTreeSet<u64>,
}

impl VaultModel {
    /// A vault with nothing seen yet.
    pub fn new(id: candid::Principal, owner: candid::Principal) -> Self {
        Self {
            id,
            owner,
            book: ImageBook::default(),
            verified: BTreeMap::new(),
            failed_seen: std::collections::BTreeSet::new(),
        }
    }

    /// Drops book versions no verified snapshot holds, except those `also_keep` names
    /// and those the source held at step `since` or later (a message still in transit,
    /// e.g. to an offline subnet, may complete a backup of them after the kit gave up).
    pub fn prune(&mut self, since: u64, also_keep: &[Rc<Vec<u8>>]) {
        let held: Vec<Rc<Vec<u8>>> = self
            .verified
            .values()
            .map(|v| Rc::clone(&v.image))
            .chain(also_keep.iter().cloned())
            .collect();
        self.book
            .retain(since, |img| held.iter().any(|h| Rc::ptr_eq(h, img)));
    }
}
