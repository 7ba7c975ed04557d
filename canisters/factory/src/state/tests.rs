use super::*;
use canvault_factory_api::{
    BeginUploadRequest, QuotaKind, Quotas, SubnetChoice, UploadChunkRequest, VaultKind,
};
use ic_stable_structures::DefaultMemoryImpl;
use serde_bytes::ByteBuf;

fn p(n: u8) -> Principal {
    Principal::from_slice(&[n; 10])
}

const ADMIN: u8 = 1;
const FACTORY: u8 = 100;
const FEE: u128 = 500;
const T: u64 = 1_000;

fn config() -> FactoryConfig {
    FactoryConfig {
        creation_fee: Some(FEE),
        service_fee: 10,
        min_initial_cycles: 100,
        top_up_fee: 1,
        quotas: Quotas {
            max_vaults_per_principal: 2,
            max_creations_per_day: 3,
        },
    }
}

/// A factory with one admin and a current version.
fn factory() -> Factory<DefaultMemoryImpl> {
    let mut f = Factory::init(DefaultMemoryImpl::default());
    f.configure(
        &FactoryInit {
            admins: vec![p(ADMIN)],
            config: Some(config()),
        },
        true,
    )
    .unwrap();
    let module = b"\0asm vault v1".to_vec();
    let id = f.next_upload_id();
    let req = BeginUploadRequest {
        label: "v1".into(),
        sha256: Hash256::of(&module),
        size: module.len() as u64,
    };
    f.versions.begin(id, &req, p(ADMIN), 0).unwrap();
    f.versions
        .append(&UploadChunkRequest {
            upload_id: id,
            offset: 0,
            bytes: ByteBuf::from(module),
        })
        .unwrap();
    let v = f.versions.commit(id, 0).unwrap();
    f.set_current_version(v.hash).unwrap();
    f
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
        // An app may not choose managed upgrades for a personal vault.
        managed_upgrades: matches!(kind, VaultKind::App { .. }),
    }
}

/// Accepts and completes a deployment as the driver would.
fn deploy(
    f: &mut Factory<DefaultMemoryImpl>,
    req: CreateVaultRequest,
    caller: Principal,
    canister: u8,
) -> VaultInfo {
    let required = f.check_create(&req, caller, u128::MAX, FEE, T).unwrap();
    let d = f.accept(req, caller, Some(p(50)), required, T);
    f.deployments
        .update(d.id, |d| {
            d.created(p(canister), 0, T);
            d.advance(Stage::CodeInstalled, T);
            d.advance(Stage::ControllersSet, T);
        })
        .unwrap();
    f.register(d.id, p(FACTORY), T).unwrap()
}

#[test]
fn should_install_only_with_an_admin() {
    let mut f = Factory::init(DefaultMemoryImpl::default());
    assert!(f.configure(&FactoryInit::default(), true).is_err());
    assert!(
        f.configure(
            &FactoryInit {
                admins: vec![Principal::anonymous()],
                config: None
            },
            true
        )
        .is_err()
    );
    assert_eq!(
        f.configure(&FactoryInit::default(), false),
        Ok(()),
        "an upgrade may keep everything"
    );
}

#[test]
fn should_reject_non_admins() {
    let f = factory();
    assert_eq!(f.authorize_admin(p(ADMIN)), Ok(()));
    assert_eq!(
        f.authorize_admin(p(2)),
        Err(FactoryError::Unauthorized {
            caller: p(2),
            needed: Permission::Admin
        })
    );
}

#[test]
fn should_check_cycles_after_everything_else_and_require_the_exact_cost() {
    let f = factory();
    let app = p(2);
    let req = request(VaultKind::App { app });
    let required = FEE + 1_000 + 10;
    assert_eq!(f.check_create(&req, app, required, FEE, T), Ok(required));
    assert_eq!(
        f.check_create(&req, app, required - 1, FEE, T),
        Err(FactoryError::InsufficientCycles {
            attached: required - 1,
            required
        })
    );
    assert_eq!(
        f.check_create(&req, app, required + 7, FEE, T),
        Ok(required),
        "never more than the cost"
    );
    let mut empty = Factory::init(DefaultMemoryImpl::default());
    empty
        .configure(
            &FactoryInit {
                admins: vec![p(ADMIN)],
                config: Some(config()),
            },
            true,
        )
        .unwrap();
    assert_eq!(
        empty.check_create(&req, app, required, FEE, T),
        Err(FactoryError::NoCurrentVersion)
    );
}

#[test]
fn should_enforce_quotas_from_acceptance_until_cancel_or_deletion() {
    let mut f = factory();
    let app = p(2);
    let req = request(VaultKind::App { app });
    let first = deploy(&mut f, req.clone(), app, 60);
    let required = f.check_create(&req, app, u128::MAX, FEE, T).unwrap();
    let open = f.accept(req.clone(), app, None, required, T);
    assert_eq!(
        f.check_create(&req, app, u128::MAX, FEE, T),
        Err(FactoryError::QuotaExceeded {
            quota: QuotaKind::VaultsPerPrincipal,
            limit: 2,
            used: 2
        })
    );
    f.cancelled(open.id, T).unwrap();
    assert!(f.check_create(&req, app, u128::MAX, FEE, T).is_ok());
    deploy(&mut f, req.clone(), app, 61);
    assert!(f.check_create(&req, app, u128::MAX, FEE, T).is_err());
    f.unregister(first.canister_id).unwrap();
    // Two vaults again, but three creations today.
    assert_eq!(
        f.check_create(&req, app, u128::MAX, FEE, T),
        Err(FactoryError::QuotaExceeded {
            quota: QuotaKind::CreationsPerDay,
            limit: 3,
            used: 3
        })
    );
}

#[test]
fn should_allow_one_personal_vault_per_user_and_app() {
    let mut f = factory();
    let (user, app) = (p(3), p(2));
    let req = request(VaultKind::Personal { user, app });
    let vault = deploy(&mut f, req.clone(), app, 60);
    assert_eq!(vault.owners, vec![user]);
    assert_eq!(vault.writers, vec![app]);
    assert_eq!(
        vault.controllers,
        vec![user],
        "an app cannot choose managed upgrades"
    );
    assert_eq!(
        f.check_create(&req, user, u128::MAX, FEE, T),
        Err(FactoryError::PersonalVaultExists(p(60)))
    );
    assert_eq!(f.registry.of_owner(user), vec![vault.clone()]);
    assert_eq!(f.registry.of_app(app), vec![vault]);
}

#[test]
fn should_let_only_owners_opt_out_of_managed_upgrades() {
    let mut f = factory();
    let (user, app) = (p(3), p(2));
    let vault = deploy(&mut f, request(VaultKind::App { app }), user, 60);
    let now = [user, p(FACTORY)];
    assert_eq!(
        f.set_managed_upgrades(vault.canister_id, false, app, Some(&now), p(FACTORY)),
        Err(FactoryError::Unauthorized {
            caller: app,
            needed: Permission::VaultOwner
        })
    );
    let v = f
        .set_managed_upgrades(vault.canister_id, false, user, Some(&now), p(FACTORY))
        .unwrap();
    assert!(!v.managed_upgrades);
    // Opting in needs the factory among the controllers.
    assert!(matches!(
        f.set_managed_upgrades(vault.canister_id, true, user, None, p(FACTORY)),
        Err(FactoryError::InvalidRequest(_))
    ));
    let status = f.start_fleet_upgrade(Hash256::of(b"nope"), p(FACTORY), T);
    assert_eq!(
        status,
        Err(FactoryError::VersionNotFound(Hash256::of(b"nope")))
    );
}

#[test]
fn should_authorize_owners_against_the_current_controllers() {
    let mut f = factory();
    let (ops, co, app) = (p(3), p(7), p(2));
    let req = CreateVaultRequest {
        owners: vec![ops, co],
        ..request(VaultKind::App { app })
    };
    let id = deploy(&mut f, req, ops, 60).canister_id;
    let factory = p(FACTORY);
    // `co` was taken out of the controllers: the registered owner list no longer counts.
    let now = [ops, factory];
    assert!(f.authorize_owner(id, ops, Some(&now), factory).is_ok());
    assert_eq!(
        f.authorize_owner(id, co, Some(&now), factory),
        Err(FactoryError::Unauthorized {
            caller: co,
            needed: Permission::VaultOwner
        })
    );
    // Nor does the factory act for itself; a controller added later may act.
    assert!(f.authorize_owner(id, factory, Some(&now), factory).is_err());
    assert!(
        f.authorize_owner(id, p(8), Some(&[p(8), factory]), factory)
            .is_ok()
    );
    // The factory controls nothing: the registered owners may make it forget the vault.
    assert!(f.authorize_owner(id, co, None, factory).is_ok());
    assert!(f.authorize_owner(id, app, None, factory).is_err());
}

#[test]
fn should_protect_versions_in_use() {
    let mut f = factory();
    let current = f.current_version().unwrap().hash;
    assert_eq!(
        f.delete_version(current),
        Err(FactoryError::VersionInUse(current))
    );
    assert_eq!(f.list_versions().len(), 1);
    assert!(f.list_versions()[0].current);
    let status = f.status(FEE, 42);
    assert_eq!(status.fixed_cost, FEE + 10);
    assert_eq!(status.cycles, 42);
    assert_eq!(status.current_version.map(|v| v.hash), Some(current));
}

/// Commits `module` as a version (not current).
fn add_version(f: &mut Factory<DefaultMemoryImpl>, module: &[u8]) -> Hash256 {
    let id = f.next_upload_id();
    let req = BeginUploadRequest {
        label: format!("v{id}"),
        sha256: Hash256::of(module),
        size: module.len() as u64,
    };
    f.versions.begin(id, &req, p(ADMIN), 0).unwrap();
    f.versions
        .append(&UploadChunkRequest {
            upload_id: id,
            offset: 0,
            bytes: ByteBuf::from(module.to_vec()),
        })
        .unwrap();
    f.versions.commit(id, 0).unwrap().hash
}

/// A managed app vault `canister` on `version`, registered directly.
fn registered(canister: Principal, version: Hash256, managed: bool) -> VaultInfo {
    VaultInfo {
        canister_id: canister,
        kind: VaultKind::App { app: p(9) },
        owners: vec![p(3)],
        writers: vec![p(9)],
        readers: vec![],
        controllers: vec![p(3), p(FACTORY)],
        subnet: None,
        version,
        managed_upgrades: managed,
        created_at_ns: 0,
        deployment_id: 0,
    }
}

/// The `i`-th of many canister ids (10 bytes, as the IC's).
fn canister(i: u32) -> Principal {
    let mut bytes = [0xab; 10];
    bytes[..4].copy_from_slice(&i.to_be_bytes());
    Principal::from_slice(&bytes)
}

/// Largest reply kept for a status: far below the 2 MiB a reply may carry.
const SMALL_REPLY: usize = 16 * 1024;

#[test]
fn should_start_and_report_a_fleet_upgrade_of_25000_vaults_in_small_replies() {
    let mut f = factory();
    let v1 = f.current_version().unwrap().hash;
    const VAULTS: u32 = 25_000;
    for i in 0..VAULTS {
        f.registry.insert(registered(canister(i), v1, i % 10 != 0));
    }
    let v2 = add_version(&mut f, b"\0asm vault v2");
    let started = f.start_fleet_upgrade(v2, p(FACTORY), T).unwrap();
    let size = candid::encode_one(&started).unwrap().len();
    assert!(
        size < SMALL_REPLY,
        "start_fleet_upgrade replies {size} bytes"
    );
    assert_eq!(
        (started.pending, started.skipped),
        (VAULTS - VAULTS / 10, VAULTS / 10)
    );
    let status = f.fleet.status().unwrap();
    assert!(candid::encode_one(&status).unwrap().len() < SMALL_REPLY);
}

/// Finished deployments older than the retention are pruned, a few per creation.
#[test]
fn should_prune_finished_deployments_of_deleted_vaults() {
    let mut f = factory();
    let requester = p(4);
    let mut deleted = Vec::new();
    for i in 0..2u8 {
        let req = CreateVaultRequest {
            kind: VaultKind::App { app: p(9) },
            ..request(VaultKind::App { app: p(9) })
        };
        let v = deploy(&mut f, req, requester, 70 + i);
        f.unregister(v.canister_id).unwrap();
        deleted.push(v.deployment_id);
    }
    let kept = deploy(&mut f, request(VaultKind::App { app: p(9) }), p(5), 80);
    // Long after, the next creations prune the finished records of deleted vaults.
    let later = T + 400 * 86_400 * 1_000_000_000;
    let req = request(VaultKind::App { app: p(9) });
    let required = f.check_create(&req, p(6), u128::MAX, FEE, later).unwrap();
    f.accept(req, p(6), Some(p(50)), required, later);
    for id in deleted {
        assert_eq!(
            f.deployments.get(id),
            Err(FactoryError::DeploymentNotFound(id))
        );
    }
    assert!(
        f.deployments.get(kept.deployment_id).is_ok(),
        "a registered vault keeps its deployment"
    );
}

/// Layout 1 had no index of open deployments: loading such a state builds it.
#[test]
fn should_migrate_a_layout_1_state_by_indexing_its_open_deployments() {
    let memory = DefaultMemoryImpl::default();
    let mut f = Factory::init(memory.clone());
    f.configure(
        &FactoryInit {
            admins: vec![p(ADMIN)],
            config: Some(config()),
        },
        true,
    )
    .unwrap();
    let v1 = add_version(&mut f, b"\0asm vault v1");
    f.set_current_version(v1).unwrap();
    assert_eq!(f.settings().layout, Some(LAYOUT));
    deploy(&mut f, request(VaultKind::App { app: p(9) }), p(4), 60);
    let req = request(VaultKind::App { app: p(9) });
    let required = f.check_create(&req, p(5), u128::MAX, FEE, T).unwrap();
    let open = f.accept(req, p(5), Some(p(50)), required, T);
    // Back to layout 1: no generation, an empty map 12.
    f.update_settings(|s| s.layout = None);
    let memories = Memories::init(memory.clone());
    let mut index: ic_stable_structures::StableBTreeMap<u64, (), _> =
        ic_stable_structures::StableBTreeMap::init(memories.get(memory::OPEN_DEPLOYMENTS));
    index.clear_new();
    drop(f);
    let f = Factory::init(memory);
    assert_eq!(f.settings().layout, Some(LAYOUT));
    assert_eq!(f.deployments.open(), vec![open]);
    assert_eq!(f.status(FEE, 0).open_deployments, 1);
}
