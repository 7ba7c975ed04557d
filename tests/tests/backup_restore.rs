//! End-to-end backup and restore on real wasm, across subnets: the example app (with
//! the kit) on subnet A, its vault on subnet B, restores into a fresh app on subnet C.

use std::sync::OnceLock;

use candid::{Encode, Principal};
use canvault_kit::{ArmRestoreRequest, KitConfig, KitError, KitStatus};
use canvault_protocol::merkle::image_root_of_bytes;
use canvault_protocol::vault_api::{
    ManifestPage, RestoreJob, RestoreJobState, SnapshotInfo, SnapshotState, StartRestoreRequest, StoredChunk,
    VaultError, VaultInit,
};
use ic_harness::{Harness, HarnessBuilder, load_canister_wasm};
use ic_stable_structures::VectorMemory;

const MIB: u64 = 1024 * 1024;

fn wasm(name: &'static str) -> Vec<u8> {
    static APP: OnceLock<Vec<u8>> = OnceLock::new();
    static VAULT: OnceLock<Vec<u8>> = OnceLock::new();
    let cell = match name {
        "app" => &APP,
        "vault" => &VAULT,
        other => panic!("unknown canister {other}"),
    };
    cell.get_or_init(|| {
        load_canister_wasm(if name == "app" { "canvault_example_app" } else { "canvault_vault" })
    })
    .clone()
}

#[derive(Debug, Clone, PartialEq, Eq, candid::CandidType, serde::Deserialize)]
struct AppStats {
    users: u64,
    posts: u64,
    image_bytes: u64,
}

/// App on subnet 0 backing up into a vault on subnet 1; subnet 2 is free for restores.
struct Setup {
    ic: Harness,
    admin: Principal,
    app: Principal,
    vault: Principal,
}

impl Setup {
    fn new() -> Self {
        let mut ic = HarnessBuilder::new()
            .with_application_subnet()
            .with_application_subnet()
            .with_application_subnet()
            .build();
        let subnets = ic.topology().app_subnets;
        let admin = Principal::self_authenticating("canvault admin");
        let app = ic.create_canister_on_subnet(Some(admin), None, subnets[0]);
        let vault = ic.create_canister_on_subnet(Some(admin), None, subnets[1]);
        let init = VaultInit { owners: vec![admin], writers: vec![app], readers: vec![], retention: None };
        ic.install_canister(vault, wasm("vault"), Encode!(&init).unwrap(), Some(admin));
        ic.install_canister(app, wasm("app"), Encode!().unwrap(), Some(admin));
        let mut s = Self { ic, admin, app, vault };
        s.configure(app, vault);
        s
    }

    fn configure(&mut self, app: Principal, vault: Principal) {
        let config = KitConfig { vault: Some(vault), ..KitConfig::default() };
        let (r,): (Result<(), KitError>,) = self.ic.update_candid(app, self.admin, "canvault_configure", (config,)).unwrap();
        r.unwrap();
    }

    fn fill(&mut self, app: Principal, bytes: u64, seed: u64) -> AppStats {
        loop {
            let (r,): (Result<AppStats, candid::Reserved>,) =
                self.ic.update_candid(app, self.admin, "fill_to", (bytes, seed)).unwrap();
            let stats = r.expect("admin may fill");
            if stats.image_bytes >= bytes {
                return stats;
            }
        }
    }

    fn stats(&mut self, app: Principal) -> AppStats {
        let (s,): (AppStats,) = self.ic.query_candid(app, self.admin, "stats", ()).unwrap();
        s
    }

    /// Digests of every post, page by page (each query stays under the query limit).
    fn content_digest(&mut self, app: Principal) -> Vec<Vec<u8>> {
        let mut pages = Vec::new();
        let mut start = 0u64;
        loop {
            let (d, next): (Vec<u8>, Option<u64>) = self.ic.query_candid(app, self.admin, "digest", (start, 20_000u64)).unwrap();
            pages.push(d);
            match next {
                Some(n) => start = n,
                None => return pages,
            }
        }
    }

    fn kit_status(&mut self, app: Principal) -> KitStatus {
        let (r,): (Result<KitStatus, KitError>,) = self.ic.query_candid(app, self.admin, "canvault_status", ()).unwrap();
        r.unwrap()
    }

    fn start_backup(&mut self) {
        let (r,): (Result<(), KitError>,) = self.ic.update_candid(self.app, self.admin, "canvault_backup_now", ()).unwrap();
        r.unwrap();
    }

    /// Ticks until the backup in progress ends; returns the kit's status.
    fn finish_backup(&mut self) -> KitStatus {
        for _ in 0..5_000 {
            let status = self.kit_status(self.app);
            if status.backup.is_none() {
                return status;
            }
            self.ic.tick();
        }
        panic!("backup did not finish: {:?}", self.kit_status(self.app));
    }

    fn backup(&mut self) -> KitStatus {
        self.start_backup();
        let status = self.finish_backup();
        assert!(status.last_failure.is_none(), "backup failed: {:?}", status.last_failure);
        status
    }

    fn snapshots(&mut self) -> Vec<SnapshotInfo> {
        let (r,): (Result<Vec<SnapshotInfo>, VaultError>,) =
            self.ic.query_candid(self.vault, self.admin, "list_snapshots", (None::<Principal>,)).unwrap();
        r.unwrap()
    }

    /// The app's image (its memory as the app sees it), read from raw stable memory.
    fn app_image(&self, app: Principal) -> Vec<u8> {
        let raw = self.ic.get_stable_memory(app);
        canvault_kit::Kit::load(VectorMemory::new(std::cell::RefCell::new(raw))).image_bytes()
    }

    /// Downloads snapshot `id` through the vault's query endpoints and reassembles it.
    fn download(&mut self, id: u64) -> Vec<u8> {
        let mut image = Vec::new();
        let mut start = 0;
        loop {
            let (page,): (Result<ManifestPage, VaultError>,) =
                self.ic.query_candid(self.vault, self.admin, "get_manifest", (id, start, 1000u32)).unwrap();
            let page = page.unwrap();
            for e in &page.entries {
                if e.zero {
                    image.extend(std::iter::repeat_n(0u8, e.len as usize));
                    continue;
                }
                let (c,): (Result<StoredChunk, VaultError>,) =
                    self.ic.query_candid(self.vault, self.admin, "get_chunk", (e.hash,)).unwrap();
                let c = c.unwrap();
                image.extend(canvault_protocol::chunk::decode_verified(c.codec, &c.bytes, c.len, &c.hash).unwrap());
            }
            match page.next {
                Some(n) => start = n,
                None => return image,
            }
        }
    }

    /// Restores snapshot `id` into `target` (armed by its controller) and waits.
    fn restore_into(&mut self, target: Principal, id: u64) -> RestoreJob {
        let arm = ArmRestoreRequest { vault: self.vault, snapshot_id: id, expected_root: None };
        let (r,): (Result<(), KitError>,) = self.ic.update_candid(target, self.admin, "canvault_arm_restore", (arm,)).unwrap();
        r.unwrap();
        let req = StartRestoreRequest { snapshot_id: id, target };
        let (job,): (Result<RestoreJob, VaultError>,) = self.ic.update_candid(self.vault, self.admin, "start_restore", (req,)).unwrap();
        let job = job.unwrap();
        for _ in 0..5_000 {
            let (j,): (Result<RestoreJob, VaultError>,) =
                self.ic.query_candid(self.vault, self.admin, "restore_status", (job.id,)).unwrap();
            let j = j.unwrap();
            if matches!(j.state, RestoreJobState::Done | RestoreJobState::Failed { .. }) {
                return j;
            }
            self.ic.tick();
        }
        panic!("restore did not finish");
    }
}

#[test]
fn a_64_mib_app_backs_up_across_subnets_and_restores_into_a_fresh_canister_elsewhere() {
    let mut s = Setup::new();
    let before = s.fill(s.app, 64 * MIB, 1);
    let image = s.app_image(s.app);
    let status = s.backup();
    let last = status.last_backup.expect("a complete backup");
    assert_eq!(last.root, image_root_of_bytes(&image, status.chunk_size));
    let snap = s.snapshots().into_iter().find(|x| x.id == last.snapshot_id).unwrap();
    assert_eq!(snap.state, SnapshotState::Complete);
    assert_eq!(snap.root, Some(last.root));
    let digest_before = s.content_digest(s.app);

    // Disaster: the app is deleted.
    s.ic.stop_canister(s.app, Some(s.admin)).unwrap();
    s.ic.delete_canister(s.app, Some(s.admin)).unwrap();

    // A fresh app on a third subnet restores the snapshot.
    let subnet_c = s.ic.topology().app_subnets[2];
    let fresh = s.ic.create_canister_on_subnet(Some(s.admin), None, subnet_c);
    s.ic.install_canister(fresh, wasm("app"), Encode!().unwrap(), Some(s.admin));
    let job = s.restore_into(fresh, last.snapshot_id);
    assert_eq!(job.state, RestoreJobState::Done, "{job:?}");

    assert_eq!(s.app_image(fresh), image, "restored image is byte-identical");
    assert_eq!(s.stats(fresh), before);
    assert_eq!(s.content_digest(fresh), digest_before, "the app answers as before");
    let kit = s.kit_status(fresh);
    assert_eq!(kit.restores_completed, 1);
}

#[test]
fn the_snapshot_is_the_image_at_begin_while_the_app_keeps_writing() {
    let mut s = Setup::new();
    s.fill(s.app, 12 * MIB, 2);
    s.start_backup();
    let at_begin = s.app_image(s.app);
    // The app keeps serving writes while chunks are in flight.
    for round in 0..6u64 {
        let (r,): (Result<u64, candid::Reserved>,) =
            s.ic.update_candid(s.app, s.admin, "edit_posts", (round * 4000, 2000u64, round)).unwrap();
        assert!(r.is_ok());
        let (r,): (Result<u64, candid::Reserved>,) = s.ic.update_candid(s.app, s.admin, "add_posts", (500u32, round)).unwrap();
        assert!(r.is_ok());
    }
    assert_ne!(s.app_image(s.app), at_begin, "the app did change during the backup");
    let status = s.finish_backup();
    let last = status.last_backup.expect("complete");
    assert_eq!(s.download(last.snapshot_id), at_begin);
}

#[test]
fn after_one_percent_changes_the_next_backup_sends_only_changed_chunks() {
    let mut s = Setup::new();
    let stats = s.fill(s.app, 32 * MIB, 3);
    let sent_before = s.ic.metrics(s.app).bytes_sent;
    s.backup();
    let full_bytes = s.ic.metrics(s.app).bytes_sent - sent_before;

    // Users edit 1% of the posts (the most recent ones) and post 1% more.
    let one_percent = stats.posts / 100;
    let first = stats.posts - one_percent;
    let _: (Result<u64, candid::Reserved>,) = s.ic.update_candid(s.app, s.admin, "edit_posts", (first, one_percent, 9u64)).unwrap();
    let _: (Result<u64, candid::Reserved>,) = s.ic.update_candid(s.app, s.admin, "add_posts", (one_percent as u32, 9u64)).unwrap();
    let dirty = s.kit_status(s.app).dirty_chunks;
    let image = s.app_image(s.app);

    let sent_before = s.ic.metrics(s.app).bytes_sent;
    let inc = s.backup().last_backup.unwrap();
    let inc_bytes = s.ic.metrics(s.app).bytes_sent - sent_before;
    assert!(inc.chunks_sent <= dirty, "only changed chunks carry data: {} > {dirty}", inc.chunks_sent);
    assert!(
        inc_bytes * 50 <= full_bytes,
        "incremental moved {inc_bytes} bytes, more than 2% of the full backup's {full_bytes}"
    );
    assert_eq!(s.download(inc.snapshot_id), image);
}

#[test]
fn a_backup_survives_an_app_upgrade_and_a_vault_upgrade_in_the_middle() {
    let mut s = Setup::new();
    s.fill(s.app, 24 * MIB, 4);
    let image = s.app_image(s.app);
    s.start_backup();
    for _ in 0..3 {
        s.ic.tick();
    }
    let midway = s.kit_status(s.app).backup.expect("still in progress");
    assert!(midway.chunks_done < midway.chunks_total, "{midway:?}");

    // Upgrade the app the IC way: stop (in-flight calls finish), upgrade, start.
    s.ic.stop_canister(s.app, Some(s.admin)).unwrap();
    s.ic.upgrade_canister(s.app, wasm("app"), Encode!().unwrap(), Some(s.admin)).unwrap();
    s.ic.start_canister(s.app, Some(s.admin)).unwrap();
    for _ in 0..3 {
        s.ic.tick();
    }
    // Then the vault, while the kit keeps pushing (its calls get rejected and retried).
    s.ic.stop_canister(s.vault, Some(s.admin)).unwrap();
    s.ic.upgrade_canister(s.vault, wasm("vault"), Encode!(&None::<VaultInit>).unwrap(), Some(s.admin)).unwrap();
    for _ in 0..3 {
        s.ic.tick();
    }
    s.ic.start_canister(s.vault, Some(s.admin)).unwrap();

    let status = s.finish_backup();
    assert!(status.last_failure.is_none(), "{:?}", status.last_failure);
    let last = status.last_backup.unwrap();
    assert_eq!(s.download(last.snapshot_id), image);
}
