//! The example app (with the kit) and its vault on different subnets: setup and
//! typed calls for the backup, restore and fault scenarios.

use candid::{Encode, Principal};
use canvault_kit::{ArmRestoreRequest, KitConfig, KitError, KitStatus};
use canvault_protocol::vault_api::{
    RestoreJob, RestoreJobState, SnapshotInfo, StartRestoreRequest, VaultError, VaultInit,
};
use ic_harness::Harness;
use ic_stable_structures::VectorMemory;

/// Counts and image size, as the example app reports them.
#[derive(Debug, Clone, PartialEq, Eq, candid::CandidType, serde::Deserialize)]
pub struct AppStats {
    /// Users.
    pub users: u64,
    /// Posts.
    pub posts: u64,
    /// Image size in bytes.
    pub image_bytes: u64,
}

/// The example app on subnet 0 backing up into a vault on subnet 1; subnet 2 is free
/// for restores. `admin` controls both and owns the vault.
pub struct AppScenario {
    /// The in-process IC.
    pub ic: Harness,
    /// Controller of both canisters, owner of the vault.
    pub admin: Principal,
    /// The example app (with the kit).
    pub app: Principal,
    /// Its vault.
    pub vault: Principal,
}

impl Default for AppScenario {
    fn default() -> Self {
        Self::new()
    }
}

impl AppScenario {
    /// Three subnets; the vault (owned by `admin`, the app a writer) and the app installed
    /// and configured to back up into it.
    pub fn new() -> Self {
        Self::with_modules(
            crate::wasm("canvault_vault"),
            crate::wasm("canvault_example_app"),
        )
    }

    /// As [`Self::new`], with the given vault and app modules (e.g. an earlier release's).
    pub fn with_modules(vault_wasm: Vec<u8>, app_wasm: Vec<u8>) -> Self {
        let mut s = Self::unconfigured(vault_wasm, app_wasm, Encode!().unwrap());
        let (app, vault) = (s.app, s.vault);
        s.configure(app, vault);
        s
    }

    /// The app (installed with `app_arg`) and its vault, the app a writer of the vault,
    /// but the app not pointed at the vault: for apps that do not embed the kit yet.
    pub fn unconfigured(vault_wasm: Vec<u8>, app_wasm: Vec<u8>, app_arg: Vec<u8>) -> Self {
        let mut ic = crate::harness(3);
        let subnets = ic.topology().app_subnets;
        let admin = Principal::self_authenticating("canvault admin");
        let app = ic.create_canister_on_subnet(Some(admin), None, subnets[0]);
        let vault = ic.create_canister_on_subnet(Some(admin), None, subnets[1]);
        let init = VaultInit {
            owners: vec![admin],
            writers: vec![app],
            readers: vec![],
            retention: None,
        };
        ic.install_canister(vault, vault_wasm, Encode!(&init).unwrap(), Some(admin));
        ic.install_canister(app, app_wasm, app_arg, Some(admin));
        Self {
            ic,
            admin,
            app,
            vault,
        }
    }

    /// Points `app`'s kit at `vault`.
    pub fn configure(&mut self, app: Principal, vault: Principal) {
        let config = KitConfig {
            vault: Some(vault),
            ..KitConfig::default()
        };
        let (r,): (Result<(), KitError>,) = self
            .ic
            .update_candid(app, self.admin, "canvault_configure", (config,))
            .unwrap();
        r.unwrap();
    }

    /// Fills `app` with posts until its image reaches `bytes`.
    pub fn fill(&mut self, app: Principal, bytes: u64, seed: u64) -> AppStats {
        self.fill_with(app, "fill_to", bytes, seed)
    }

    /// Calls the app's bulk endpoint `method` (`fill_to`: posts; `fill_articles_to`:
    /// long-form posts; `fill_media_to`: incompressible media) until the image reaches
    /// `bytes`.
    pub fn fill_with(&mut self, app: Principal, method: &str, bytes: u64, seed: u64) -> AppStats {
        loop {
            let (r,): (Result<AppStats, candid::Reserved>,) = self
                .ic
                .update_candid(app, self.admin, method, (bytes, seed))
                .unwrap();
            let stats = r.expect("admin may fill");
            if stats.image_bytes >= bytes {
                return stats;
            }
        }
    }

    /// The app's counts and image size.
    pub fn stats(&mut self, app: Principal) -> AppStats {
        let (s,): (AppStats,) = self.ic.query_candid(app, self.admin, "stats", ()).unwrap();
        s
    }

    /// Digests of every post, page by page (each query stays under the query limit).
    pub fn content_digest(&mut self, app: Principal) -> Vec<Vec<u8>> {
        let mut pages = Vec::new();
        let mut start = 0u64;
        loop {
            let (d, next): (Vec<u8>, Option<u64>) = self
                .ic
                .query_candid(app, self.admin, "digest", (start, 20_000u64))
                .unwrap();
            pages.push(d);
            match next {
                Some(n) => start = n,
                None => return pages,
            }
        }
    }

    /// The kit's status in `app`.
    pub fn kit_status(&mut self, app: Principal) -> KitStatus {
        let (r,): (Result<KitStatus, KitError>,) = self
            .ic
            .query_candid(app, self.admin, "canvault_status", ())
            .unwrap();
        r.unwrap()
    }

    /// A fresh example app (nothing restored yet) on the third subnet, neither the app's
    /// nor the vault's: where restores go to show they cross subnets.
    pub fn fresh_app_elsewhere(&mut self) -> Principal {
        let subnet = self.ic.topology().app_subnets[2];
        let fresh = self
            .ic
            .create_canister_on_subnet(Some(self.admin), None, subnet);
        self.ic.install_canister(
            fresh,
            crate::wasm("canvault_example_app"),
            Encode!().unwrap(),
            Some(self.admin),
        );
        fresh
    }

    /// Starts a backup of the app now.
    pub fn start_backup(&mut self) {
        let (r,): (Result<(), KitError>,) = self
            .ic
            .update_candid(self.app, self.admin, "canvault_backup_now", ())
            .unwrap();
        r.unwrap();
    }

    /// Ticks until the backup in progress ends; returns the kit's status.
    pub fn finish_backup(&mut self) -> KitStatus {
        for _ in 0..5_000 {
            let status = self.kit_status(self.app);
            if status.backup.is_none() {
                return status;
            }
            self.ic.tick();
        }
        panic!("backup did not finish: {:?}", self.kit_status(self.app));
    }

    /// Runs a whole backup and asserts it succeeded.
    pub fn backup(&mut self) -> KitStatus {
        self.start_backup();
        let status = self.finish_backup();
        assert!(
            status.last_failure.is_none(),
            "backup failed: {:?}",
            status.last_failure
        );
        status
    }

    /// Every snapshot in the vault.
    pub fn snapshots(&mut self) -> Vec<SnapshotInfo> {
        self.vault_client().list(&mut self.ic, self.admin, None)
    }

    /// The typed client of this scenario's vault.
    pub fn vault_client(&self) -> crate::vault::VaultClient {
        crate::vault::VaultClient { id: self.vault }
    }

    /// The app's image (its memory as the app sees it), read from raw stable memory.
    pub fn app_image(&self, app: Principal) -> Vec<u8> {
        let raw = self.ic.get_stable_memory(app);
        canvault_kit::Kit::load(VectorMemory::new(std::cell::RefCell::new(raw))).image_bytes()
    }

    /// SHA-256 of the app's image and its size, read from stable memory piece by piece
    /// (for images too large to copy whole, where [`Self::app_image`] would).
    pub fn image_digest(&self, app: Principal) -> ([u8; 32], u64) {
        use sha2::{Digest, Sha256};
        const PIECE: u64 = 16 * 1024 * 1024;
        let kit = canvault_kit::Kit::load(StableView::new(&self.ic, app));
        let size = kit.image_pages() * 65_536;
        let mut hasher = Sha256::new();
        let mut buf = vec![0; PIECE as usize];
        let mut offset = 0;
        while offset < size {
            let n = PIECE.min(size - offset) as usize;
            kit.image_read(offset, &mut buf[..n]);
            hasher.update(&buf[..n]);
            offset += n as u64;
        }
        (hasher.finalize().into(), size)
    }

    /// True if the images of `a` and `b` are equal byte for byte, compared piece by piece.
    pub fn images_equal(&self, a: Principal, b: Principal) -> bool {
        const PIECE: u64 = 16 * 1024 * 1024;
        let (ka, kb) = (
            canvault_kit::Kit::load(StableView::new(&self.ic, a)),
            canvault_kit::Kit::load(StableView::new(&self.ic, b)),
        );
        if ka.image_pages() != kb.image_pages() {
            return false;
        }
        let size = ka.image_pages() * 65_536;
        let (mut x, mut y) = (vec![0; PIECE as usize], vec![0; PIECE as usize]);
        let mut offset = 0;
        while offset < size {
            let n = PIECE.min(size - offset) as usize;
            ka.image_read(offset, &mut x[..n]);
            kb.image_read(offset, &mut y[..n]);
            if x[..n] != y[..n] {
                return false;
            }
            offset += n as u64;
        }
        true
    }

    /// Downloads snapshot `id` through the vault's query endpoints, verifying every chunk.
    pub fn download(&mut self, id: u64) -> Vec<u8> {
        self.vault_client()
            .download(&mut self.ic, self.admin, id, 1000)
    }

    /// Restores snapshot `id` into `target` (armed by its controller) and waits.
    pub fn restore_into(&mut self, target: Principal, id: u64) -> RestoreJob {
        let arm = ArmRestoreRequest {
            vault: self.vault,
            snapshot_id: id,
            expected_root: None,
        };
        let (r,): (Result<(), KitError>,) = self
            .ic
            .update_candid(target, self.admin, "canvault_arm_restore", (arm,))
            .unwrap();
        r.unwrap();
        let req = StartRestoreRequest {
            snapshot_id: id,
            target,
        };
        let (job,): (Result<RestoreJob, VaultError>,) = self
            .ic
            .update_candid(self.vault, self.admin, "start_restore", (req,))
            .unwrap();
        let job = job.unwrap();
        for _ in 0..5_000 {
            let j = self
                .vault_client()
                .restore_job(&mut self.ic, self.admin, job.id);
            if matches!(
                j.state,
                RestoreJobState::Done | RestoreJobState::Failed { .. }
            ) {
                return j;
            }
            self.ic.tick();
        }
        panic!("restore did not finish");
    }
}

/// A canister's stable memory as a `Memory` read through the harness range by range (no
/// copy of the whole memory). Writes (opening the kit writes its state cell back) go to
/// a private overlay of 4 KiB blocks: the canister's memory is never changed.
#[derive(Clone)]
struct StableView<'a> {
    ic: &'a Harness,
    id: Principal,
    overlay: std::rc::Rc<std::cell::RefCell<Overlay>>,
}

#[derive(Default)]
struct Overlay {
    blocks: std::collections::BTreeMap<u64, Vec<u8>>,
    extra_pages: u64,
}

const BLOCK: u64 = 4096;

impl<'a> StableView<'a> {
    fn new(ic: &'a Harness, id: Principal) -> Self {
        Self {
            ic,
            id,
            overlay: Default::default(),
        }
    }

    fn base_bytes(&self) -> u64 {
        self.ic.stable_memory_size(self.id)
    }
}

impl ic_stable_structures::Memory for StableView<'_> {
    fn size(&self) -> u64 {
        self.base_bytes() / 65_536 + self.overlay.borrow().extra_pages
    }

    fn grow(&self, pages: u64) -> i64 {
        let old = self.size();
        self.overlay.borrow_mut().extra_pages += pages;
        i64::try_from(old).unwrap_or(-1)
    }

    fn read(&self, offset: u64, dst: &mut [u8]) {
        let base = self.base_bytes();
        let end = offset + dst.len() as u64;
        if offset < base {
            let n = (end.min(base) - offset) as usize;
            self.ic.read_stable_memory(self.id, offset, &mut dst[..n]);
        }
        if end > base {
            dst[(base.saturating_sub(offset)) as usize..].fill(0);
        }
        for (block, bytes) in self
            .overlay
            .borrow()
            .blocks
            .range(offset / BLOCK..end.div_ceil(BLOCK))
        {
            let start = (block * BLOCK).max(offset);
            let stop = ((block + 1) * BLOCK).min(end);
            dst[(start - offset) as usize..(stop - offset) as usize].copy_from_slice(
                &bytes[(start - block * BLOCK) as usize..(stop - block * BLOCK) as usize],
            );
        }
    }

    fn write(&self, offset: u64, src: &[u8]) {
        let end = offset + src.len() as u64;
        for block in offset / BLOCK..end.div_ceil(BLOCK) {
            let mut current = vec![0; BLOCK as usize];
            self.read(block * BLOCK, &mut current);
            let start = (block * BLOCK).max(offset);
            let stop = ((block + 1) * BLOCK).min(end);
            current[(start - block * BLOCK) as usize..(stop - block * BLOCK) as usize]
                .copy_from_slice(&src[(start - offset) as usize..(stop - offset) as usize]);
            self.overlay.borrow_mut().blocks.insert(block, current);
        }
    }
}
