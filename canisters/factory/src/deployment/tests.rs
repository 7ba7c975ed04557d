use super::*;
use canvault_protocol::vault_api::RetentionPolicy;
use ic_stable_structures::DefaultMemoryImpl;

fn p(n: u8) -> Principal {
    Principal::from_slice(&[n; 10])
}

const FACTORY: u8 = 100;

fn app_request(app: Principal) -> CreateVaultRequest {
    CreateVaultRequest {
        kind: VaultKind::App { app },
        owners: vec![],
        writers: vec![],
        readers: vec![],
        retention: None,
        subnet: SubnetChoice::Default { avoid: None },
        initial_cycles: 1_000_000_000_000,
        managed_upgrades: true,
    }
}

fn personal_request(user: Principal, app: Principal, managed: bool) -> CreateVaultRequest {
    CreateVaultRequest {
        kind: VaultKind::Personal { user, app },
        managed_upgrades: managed,
        ..app_request(app)
    }
}

fn record(req: CreateVaultRequest) -> DeploymentInfo {
    new_record(7, p(1), req, Some(p(50)), Hash256::of(b"v1"), 1_510, 10, 3)
}

#[test]
fn should_default_app_vault_roles_to_the_requester_and_the_app() {
    let (requester, app) = (p(1), p(2));
    let req = app_request(app);
    assert_eq!(
        roles(&req, requester),
        Roles {
            owners: vec![requester],
            writers: vec![app],
            readers: vec![],
        }
    );
    let explicit = CreateVaultRequest {
        owners: vec![p(3), p(4), p(3)],
        writers: vec![p(5)],
        readers: vec![p(6)],
        retention: Some(RetentionPolicy::default()),
        ..req
    };
    let init = vault_init(&explicit, requester);
    assert_eq!(init.owners, vec![p(3), p(4)]);
    assert_eq!(init.writers, vec![p(5)]);
    assert_eq!(init.readers, vec![p(6)]);
    assert_eq!(init.retention, Some(RetentionPolicy::default()));
    assert_eq!(
        controllers(&explicit, requester, p(FACTORY)),
        vec![p(3), p(4), p(FACTORY)]
    );
}

#[test]
fn should_make_the_user_the_only_owner_and_controller_of_a_personal_vault() {
    let (user, app) = (p(3), p(2));
    let managed = personal_request(user, app, true);
    assert_eq!(
        roles(&managed, app),
        Roles {
            owners: vec![user],
            writers: vec![app],
            readers: vec![],
        }
    );
    assert_eq!(
        controllers(&managed, app, p(FACTORY)),
        vec![user, p(FACTORY)]
    );
    let unmanaged = personal_request(user, app, false);
    assert_eq!(controllers(&unmanaged, app, p(FACTORY)), vec![user]);
    assert!(!controllers(&unmanaged, app, p(FACTORY)).contains(&app));
    assert_eq!(quota_subject(&managed.kind, app), user);
    assert_eq!(quota_subject(&app_request(app).kind, p(1)), p(1));
}

#[test]
fn should_reject_malformed_requests_before_charging() {
    let config = FactoryConfig::default();
    let (user, app, stranger) = (p(3), p(2), p(9));
    assert_eq!(validate(&app_request(app), stranger, &config), Ok(()));
    assert_eq!(
        validate(&personal_request(user, app, true), stranger, &config),
        Err(FactoryError::Unauthorized {
            caller: stranger,
            needed: Permission::AppOrUser
        })
    );
    assert_eq!(
        validate(&personal_request(user, app, true), user, &config),
        Ok(())
    );
    assert_eq!(
        validate(&personal_request(user, app, false), app, &config),
        Ok(())
    );
    let bad = |req: CreateVaultRequest| {
        matches!(
            validate(&req, app, &config),
            Err(FactoryError::InvalidRequest(_))
        )
    };
    assert!(bad(personal_request(app, app, true)));
    assert!(bad(CreateVaultRequest {
        owners: vec![p(4)],
        ..personal_request(user, app, true)
    }));
    assert!(bad(CreateVaultRequest {
        owners: (10..20).map(p).collect(),
        ..app_request(app)
    }));
    assert_eq!(
        validate(
            &CreateVaultRequest {
                owners: (10..19).map(p).collect(),
                ..app_request(app)
            },
            app,
            &config
        ),
        Ok(()),
        "9 owners and the factory make 10 controllers"
    );
    assert!(bad(CreateVaultRequest {
        readers: vec![Principal::anonymous()],
        ..app_request(app)
    }));
    assert!(bad(CreateVaultRequest {
        initial_cycles: config.min_initial_cycles - 1,
        ..app_request(app)
    }));
    assert!(bad(CreateVaultRequest {
        subnet: SubnetChoice::SubnetType {
            subnet_type: String::new()
        },
        ..app_request(app)
    }));
}

#[test]
fn should_require_fee_service_and_initial_balance() {
    let config = FactoryConfig::default();
    let req = app_request(p(2));
    assert_eq!(
        required_cycles(&req, 500_000_000_000, &config),
        500_000_000_000 + 1_000_000_000_000 + config.service_fee
    );
}

#[test]
fn should_pick_a_default_subnet_other_than_the_avoided_one_in_rotation() {
    let subnets = vec![p(30), p(10), p(20)];
    assert_eq!(
        pick_default_subnet(subnets.clone(), Some(p(10)), 0),
        Ok(p(20))
    );
    assert_eq!(
        pick_default_subnet(subnets.clone(), Some(p(10)), 1),
        Ok(p(30))
    );
    assert_eq!(
        pick_default_subnet(subnets.clone(), Some(p(10)), 2),
        Ok(p(20))
    );
    assert_eq!(pick_default_subnet(subnets.clone(), None, 1), Ok(p(20)));
    assert_eq!(
        pick_default_subnet(vec![p(10)], Some(p(10)), 0),
        Err(FactoryError::NoSubnetAvailable {
            avoided: Some(p(10))
        })
    );
}

#[test]
fn should_walk_the_steps_in_order() {
    let mut d = record(app_request(p(2)));
    assert_eq!(d.credit, 1_500);
    assert_eq!(next_step(&d), NextStep::CreateCanister { cycles: 1_500 });
    d.begin(Step::CreateCanister, 4);
    d.created(p(60), 0, 4);
    assert_eq!((d.credit, d.funded), (0, 1_500));
    assert_eq!(
        next_step(&d),
        NextStep::InstallCode {
            canister: p(60),
            verify: false
        }
    );
    d.begin(Step::InstallCode, 5);
    d.advance(Stage::CodeInstalled, 6);
    assert_eq!(
        next_step(&d),
        NextStep::SetControllers {
            canister: p(60),
            verify: false
        }
    );
    d.advance(Stage::ControllersSet, 7);
    assert_eq!(next_step(&d), NextStep::Register);
    d.advance(Stage::Registered, 8);
    assert_eq!(next_step(&d), NextStep::Done);
    assert_eq!(d.pending, None);
}

#[test]
fn should_retry_a_failed_creation_with_the_refunded_credit() {
    let mut d = record(app_request(p(2)));
    d.begin(Step::CreateCanister, 4);
    d.create_failed(1_400, "refused".into(), false, 5);
    assert_eq!(next_step(&d), NextStep::CreateCanister { cycles: 1_400 });
    assert_eq!(d.pending, None);
    let err = d.last_error.clone().unwrap();
    assert_eq!(
        (err.step, err.retryable, err.at_ns),
        (Step::CreateCanister, false, 5)
    );
    d.cancelled(6);
    assert_eq!(
        (d.stage, d.refunded, d.credit),
        (Stage::Cancelled, 1_400, 0)
    );
    assert_eq!(next_step(&d), NextStep::Cancelled);
}

#[test]
fn should_verify_a_step_whose_result_was_lost() {
    let mut d = record(app_request(p(2)));
    d.begin(Step::CreateCanister, 4);
    // The callback trapped: the record still says the creation is pending.
    assert_eq!(next_step(&d), NextStep::Unknown(Step::CreateCanister));
    d.created(p(60), 0, 5);
    d.begin(Step::InstallCode, 6);
    assert_eq!(
        next_step(&d),
        NextStep::InstallCode {
            canister: p(60),
            verify: true
        }
    );
    d.advance(Stage::CodeInstalled, 7);
    d.begin(Step::SetControllers, 8);
    assert_eq!(
        next_step(&d),
        NextStep::SetControllers {
            canister: p(60),
            verify: true
        }
    );
    // A failure with a known outcome clears the pending step: no verification needed.
    d.fail(Step::SetControllers, "rejected".into(), true, 9);
    assert_eq!(
        next_step(&d),
        NextStep::SetControllers {
            canister: p(60),
            verify: false
        }
    );
}

#[test]
fn should_build_the_registry_record_from_the_deployment() {
    let (user, app) = (p(3), p(2));
    let mut d = record(personal_request(user, app, false));
    d.created(p(60), 0, 4);
    let v = vault_record(&d, p(FACTORY), 11);
    assert_eq!(v.canister_id, p(60));
    assert_eq!(v.owners, vec![user]);
    assert_eq!(v.writers, vec![app]);
    assert_eq!(v.controllers, vec![user]);
    assert_eq!(v.subnet, Some(p(50)));
    assert!(!v.managed_upgrades);
    assert_eq!((v.deployment_id, v.created_at_ns), (7, 11));
}

#[test]
fn should_list_and_filter_deployments() {
    let mut ds = Deployments::init(&Memories::init(DefaultMemoryImpl::default()));
    for (id, requester) in [(0, p(1)), (1, p(2)), (2, p(1))] {
        let mut d = record(app_request(p(2)));
        d.id = id;
        d.requester = requester;
        ds.put(d);
    }
    assert_eq!(ds.list(0, 10, None).len(), 3);
    assert_eq!(
        ds.list(1, 10, Some(p(1)))
            .iter()
            .map(|d| d.id)
            .collect::<Vec<_>>(),
        vec![2]
    );
    ds.update(1, |d| d.advance(Stage::CanisterCreated, 1))
        .unwrap();
    ds.update(0, |d| d.cancelled(1)).unwrap();
    assert_eq!(
        ds.open().iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(ds.get(9), Err(FactoryError::DeploymentNotFound(9)));
}

/// M4: a personal vault's readers, retention and managed upgrades are its user's alone.
#[test]
fn should_refuse_an_app_choosing_a_personal_vaults_settings() {
    let config = FactoryConfig::default();
    let (user, app) = (p(3), p(2));
    let plain = personal_request(user, app, false);
    let chosen = [
        personal_request(user, app, true),
        CreateVaultRequest {
            readers: vec![p(9)],
            ..plain.clone()
        },
        CreateVaultRequest {
            retention: Some(RetentionPolicy::default()),
            ..plain.clone()
        },
    ];
    for req in chosen {
        assert!(
            matches!(
                validate(&req, app, &config),
                Err(FactoryError::InvalidRequest(_))
            ),
            "{req:?}"
        );
        assert_eq!(validate(&req, user, &config), Ok(()), "the user may");
    }
    assert_eq!(validate(&plain, app, &config), Ok(()));
}

fn fork_target(requester: Principal, vault: Principal) -> DeploymentInfo {
    let req = CreateForkTargetRequest {
        vault,
        subnet: SubnetChoice::Subnet { subnet: p(50) },
        initial_cycles: 1_000,
    };
    let mut d = new_record(
        8,
        requester,
        fork_target_request(&req, requester),
        Some(p(50)),
        Hash256([0; 32]),
        1_510,
        10,
        3,
    );
    d.fork_target_of = Some(vault);
    d
}

#[test]
fn should_take_a_fork_target_from_creation_straight_to_its_controllers() {
    let (requester, vault, canister) = (p(1), p(9), p(20));
    let mut d = fork_target(requester, vault);
    assert_eq!(next_step(&d), NextStep::CreateCanister { cycles: 1_500 });
    d.begin(Step::CreateCanister, 4);
    assert_eq!(next_step(&d), NextStep::Unknown(Step::CreateCanister));
    d.created(canister, 0, 5);
    assert_eq!(
        next_step(&d),
        NextStep::SetControllers {
            canister,
            verify: false
        },
        "no module is installed"
    );
    d.begin(Step::SetControllers, 6);
    assert_eq!(
        next_step(&d),
        NextStep::SetControllers {
            canister,
            verify: true
        }
    );
    d.advance(Stage::ControllersSet, 7);
    assert_eq!(next_step(&d), NextStep::Register);
    assert_eq!(
        final_controllers(&d, p(FACTORY)),
        vec![requester, vault],
        "the requester and the vault, never the factory"
    );
    let same = fork_target(vault, vault);
    assert_eq!(final_controllers(&same, p(FACTORY)), vec![vault]);
    // A vault deployment keeps its own controllers.
    let vault_d = record(app_request(p(2)));
    assert_eq!(
        final_controllers(&vault_d, p(FACTORY)),
        controllers(&vault_d.request, vault_d.requester, p(FACTORY))
    );
    assert_eq!(quota_subject(&d.request.kind, d.requester), requester);
}

#[test]
fn should_let_only_a_registered_owner_ask_for_a_fork_target() {
    let (owner, stranger, vault) = (p(1), p(3), p(9));
    let info = VaultInfo {
        canister_id: vault,
        kind: VaultKind::App { app: p(2) },
        owners: vec![owner],
        writers: vec![p(2)],
        readers: vec![],
        controllers: vec![owner],
        subnet: None,
        version: Hash256::of(b"v1"),
        managed_upgrades: false,
        created_at_ns: 0,
        deployment_id: 0,
    };
    let config = FactoryConfig::default();
    let req = CreateForkTargetRequest {
        vault,
        subnet: SubnetChoice::Default { avoid: None },
        initial_cycles: config.min_initial_cycles,
    };
    assert_eq!(validate_fork_target(&req, owner, &info, &config), Ok(()));
    assert_eq!(
        validate_fork_target(&req, stranger, &info, &config),
        Err(FactoryError::Unauthorized {
            caller: stranger,
            needed: Permission::VaultOwner
        })
    );
    let poor = CreateForkTargetRequest {
        initial_cycles: config.min_initial_cycles - 1,
        ..req.clone()
    };
    assert!(matches!(
        validate_fork_target(&poor, owner, &info, &config),
        Err(FactoryError::InvalidRequest(_))
    ));
    let bad_type = CreateForkTargetRequest {
        subnet: SubnetChoice::SubnetType {
            subnet_type: String::new(),
        },
        ..req
    };
    assert!(matches!(
        validate_fork_target(&bad_type, owner, &info, &config),
        Err(FactoryError::InvalidRequest(_))
    ));
}
