//! The factory's persistent layout, byte for byte: a fixed history touching every
//! memory of `memory.rs` (two admins and a config; a two-chunk version, current, and a
//! second one; an upload left half way; an app vault and a personal vault registered;
//! a deployment failed at install and left open, so the generation-2 open-deployment
//! index holds it; a cancelled deployment; quota counters; a fleet upgrade with one
//! vault upgraded and one skipped) is replayed on a `VectorMemory`, and the raw stable
//! memory must equal `golden/factory-layout.bin.gz`.
//!
//! A difference means the layout changed. Then: bump `state::LAYOUT`, write the
//! migration from the old layout in `Factory::init` (the upgrade test
//! `tests/tests/upgrade_from_previous.rs` runs it on the previous module's memory), and
//! regenerate with `CANVAULT_UPDATE_GOLDEN=1 cargo test -p canvault-factory golden`.

use candid::Principal;
use canvault_factory_api::{
    BeginUploadRequest, CreateVaultRequest, FactoryConfig, FactoryInit, Quotas, Stage, Step,
    SubnetChoice, UploadChunkRequest, VaultKind, VaultUpgradeState,
};
use canvault_protocol::Hash256;
use canvault_protocol::golden::assert_golden;
use canvault_protocol::vault_api::RetentionPolicy;
use ic_stable_structures::{Memory, VectorMemory};
use serde_bytes::ByteBuf;

use crate::deployment::Transitions;
use crate::state::Factory;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/factory-layout.bin.gz");

fn p(n: u8) -> Principal {
    Principal::from_slice(&[n; 10])
}

const FACTORY: u8 = 99;
const DAY: u64 = 86_400 * 1_000_000_000;

/// A deterministic module of `len` bytes (compressible, so the golden file stays small).
fn module(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i / 1_000) as u8 ^ seed).collect()
}

/// Uploads `bytes` in pieces of `piece` bytes; commits it unless `commit` is false.
fn upload(f: &mut Factory<VectorMemory>, label: &str, bytes: &[u8], piece: usize, commit: bool) {
    let id = f.next_upload_id();
    let req = BeginUploadRequest {
        label: label.into(),
        sha256: Hash256::of(bytes),
        size: bytes.len() as u64,
    };
    f.versions.begin(id, &req, p(1), 5).expect("begin");
    let pieces: Vec<&[u8]> = bytes.chunks(piece).collect();
    let sent = if commit { pieces.len() } else { 1 };
    for (i, part) in pieces.iter().take(sent).enumerate() {
        f.versions
            .append(&UploadChunkRequest {
                upload_id: id,
                offset: (i * piece) as u64,
                bytes: ByteBuf::from(part.to_vec()),
            })
            .expect("append");
    }
    if commit {
        f.versions.commit(id, 6).expect("commit");
    }
}

/// Accepts a deployment of `req` from `caller` at `now`.
fn accept(
    f: &mut Factory<VectorMemory>,
    req: CreateVaultRequest,
    caller: Principal,
    now: u64,
) -> u64 {
    let required = f
        .check_create(&req, caller, u128::MAX, 500, now)
        .expect("a valid request");
    f.accept(req, caller, Some(p(50)), required, now).id
}

/// Runs deployment `id` to registration with canister `canister`.
fn complete(f: &mut Factory<VectorMemory>, id: u64, canister: u8, now: u64) {
    f.deployments
        .update(id, |d| {
            d.begin(Step::CreateCanister, now);
            d.created(p(canister), 7, now);
            d.advance(Stage::CodeInstalled, now);
            d.advance(Stage::ControllersSet, now);
        })
        .expect("a deployment");
    f.register(id, p(FACTORY), now).expect("registered");
}

fn request(kind: VaultKind) -> CreateVaultRequest {
    CreateVaultRequest {
        kind,
        owners: vec![],
        writers: vec![],
        readers: vec![],
        retention: None,
        subnet: SubnetChoice::Subnet { subnet: p(50) },
        initial_cycles: 1_000,
        managed_upgrades: false,
    }
}

/// The fixed history; returns the raw memory.
fn replay() -> Vec<u8> {
    let memory = VectorMemory::default();
    let mut f = Factory::init(memory.clone());
    f.configure(
        &FactoryInit {
            admins: vec![p(2), p(1)],
            config: Some(FactoryConfig {
                creation_fee: Some(500),
                service_fee: 10,
                min_initial_cycles: 100,
                top_up_fee: 3,
                quotas: Quotas {
                    max_vaults_per_principal: 4,
                    max_creations_per_day: 5,
                },
            }),
        },
        true,
    )
    .expect("configure");
    let v1 = module(1_300_000, 1);
    upload(&mut f, "1.0.0", &v1, 500_000, true);
    f.set_current_version(Hash256::of(&v1)).expect("current");
    let v2 = module(70_000, 2);
    upload(&mut f, "1.1.0", &v2, 40_000, true);
    upload(&mut f, "2.0.0-rc", &module(90_000, 3), 50_000, false);

    let app = p(10);
    let shared = CreateVaultRequest {
        owners: vec![p(20), p(21)],
        writers: vec![app],
        readers: vec![p(22)],
        retention: Some(RetentionPolicy {
            keep_last: 4,
            keep_daily: 3,
            keep_weekly: 2,
        }),
        managed_upgrades: true,
        ..request(VaultKind::App { app })
    };
    let id = accept(&mut f, shared, app, DAY);
    complete(&mut f, id, 60, DAY + 1);
    let id = accept(
        &mut f,
        request(VaultKind::Personal { user: p(30), app }),
        app,
        DAY + 2,
    );
    complete(&mut f, id, 61, DAY + 3);
    // Failed at install, left open: in the open-deployment index (generation 2).
    let open = accept(
        &mut f,
        request(VaultKind::App { app: p(11) }),
        p(12),
        2 * DAY,
    );
    f.deployments
        .update(open, |d| {
            d.created(p(62), 0, 2 * DAY + 1);
            d.begin(Step::InstallCode, 2 * DAY + 2);
            d.fail(Step::InstallCode, "out of cycles".into(), true, 2 * DAY + 3);
        })
        .expect("open");
    let cancelled = accept(
        &mut f,
        request(VaultKind::App { app: p(13) }),
        p(13),
        2 * DAY + 4,
    );
    f.deployments
        .update(cancelled, |d| {
            d.create_failed(1_500, "CMC: rejected".into(), false, 2 * DAY + 5);
        })
        .expect("failed");
    f.cancelled(cancelled, 2 * DAY + 6).expect("cancelled");

    f.start_fleet_upgrade(Hash256::of(&v2), p(FACTORY), 3 * DAY)
        .expect("rollout");
    for vault in f.fleet.next_batch(1) {
        f.registry.set_version(&vault, Hash256::of(&v2));
        f.fleet
            .set_state(&vault, VaultUpgradeState::Upgraded { at_ns: 3 * DAY + 1 });
    }
    let mut raw = vec![0; usize::try_from(memory.size() * 65_536).expect("fits")];
    memory.read(0, &mut raw);
    raw
}

#[test]
fn the_persistent_layout_matches_the_golden_file() {
    assert_golden(
        GOLDEN,
        &replay(),
        "the factory's stable layout",
        "bump state::LAYOUT and add the migration (see golden_tests.rs)",
    );
}

#[test]
fn the_replay_touches_every_structure() {
    let raw = replay();
    let memory = VectorMemory::default();
    memory.grow(raw.len() as u64 / 65_536);
    memory.write(0, &raw);
    let f = Factory::init(memory);
    assert_eq!(f.settings().layout, Some(crate::state::LAYOUT));
    assert_eq!(f.versions.len(), 2);
    assert_eq!(f.versions.uploads().len(), 1);
    assert_eq!(f.registry.len(), 2);
    assert_eq!(f.deployments.open_count(), 1);
    let status = f.fleet.status().expect("a rollout");
    assert_eq!((status.upgraded, status.skipped, status.total), (1, 1, 2));
}

#[test]
fn the_replay_is_deterministic() {
    assert!(replay() == replay());
}
