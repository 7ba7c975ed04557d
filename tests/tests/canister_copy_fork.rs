//! Forking through the factory (#11): a heap-only app on subnet A is backed up whole by a
//! vault on subnet B (created by the factory); the factory's `create_fork_target` makes
//! an empty canister on subnet C, paid by a vault owner and controlled by it and the
//! vault; the vault's `restore_canister` into it is the fork, with identical state and
//! answers. Also: a fork target's deployment survives a lost CMC reply (settled by
//! `recover_fork_target`, never a second canister) and a rejected creation (resumed).
//! Build the wasm first: `scripts/build-wasm.sh`.

mod factory_support;

use candid::Principal;
use canvault_factory_api::{
    CreateForkTargetRequest, CreateVaultRequest, DeploymentInfo, FactoryError, ForkTargetResponse,
    RecoverDeploymentRequest, Stage, Step, SubnetChoice,
};
use canvault_protocol::canister_image::{
    CanisterBackupRequest, CanisterJob, CanisterJobState, Consistency, RestoreCanisterRequest,
};
use canvault_scenarios::heap_app::{self, Digest, HEAP_APP};
use canvault_scenarios::vault::VaultClient;
use canvault_scenarios::{install, principal};
use factory_support::{CREATION_FEE, INITIAL, REQUIRED, SERVICE_FEE, Setup, sorted};
use ic_harness::cmc_types::CMC_PRINCIPAL;
use ic_harness::{CanisterId, RejectCode};
use ic_management_canister_types::{CanisterSettings, CanisterStatusType};
use serde_bytes::ByteBuf;

/// What `create_fork_target` takes for a target of `INITIAL` cycles.
const TARGET_COST: u128 = CREATION_FEE + SERVICE_FEE + INITIAL;

/// The factory's setup, plus a vault on subnet B owned by `owner` and the app wallet
/// (which pays for fork targets), and the heap app on subnet A controlled by `owner`
/// and the vault.
struct Fork {
    s: Setup,
    owner: Principal,
    vault: VaultClient,
    heap: CanisterId,
}

impl Fork {
    fn new() -> Self {
        let mut s = Setup::new();
        let owner = principal("owner");
        let req = CreateVaultRequest {
            owners: vec![owner, s.app],
            readers: vec![],
            subnet: SubnetChoice::Subnet {
                subnet: s.subnets[1],
            },
            ..s.app_request(owner, owner)
        };
        let vault = s
            .create(&req, REQUIRED)
            .0
            .expect("a vault")
            .vault
            .canister_id;
        let heap = install(
            &mut s.ic,
            0,
            HEAP_APP,
            candid::encode_args(()).expect("arg"),
            owner,
        );
        let settings = CanisterSettings {
            controllers: Some(vec![owner, vault]),
            ..Default::default()
        };
        s.ic.update_canister_settings(heap, Some(owner), settings)
            .expect("controllers");
        Self {
            s,
            owner,
            vault: VaultClient { id: vault },
            heap,
        }
    }

    fn target_request(&self, subnet: usize) -> CreateForkTargetRequest {
        CreateForkTargetRequest {
            vault: self.vault.id,
            subnet: SubnetChoice::Subnet {
                subnet: self.s.subnets[subnet],
            },
            initial_cycles: INITIAL,
        }
    }

    fn fill(&mut self, entries: u32) {
        let () = self
            .s
            .ic
            .update_candid(self.heap, self.owner, "fill", (1u64, entries, 65_536u32))
            .expect("fill");
    }

    fn digest(&mut self, canister: CanisterId) -> Digest {
        heap_app::digest(&mut self.s.ic, canister, self.owner)
    }

    fn get(&mut self, canister: CanisterId, key: u64) -> Option<ByteBuf> {
        heap_app::get(&mut self.s.ic, canister, self.owner, key)
    }

    fn wait(&mut self, id: u64, status: &str) -> CanisterJob {
        self.vault
            .wait_canister_job(&mut self.s.ic, self.owner, id, status)
    }

    fn deployment(&mut self, id: u64) -> DeploymentInfo {
        self.s.deployment(id).expect("deployment")
    }
}

#[test]
fn canister_copy_fork_onto_a_fresh_canister_the_factory_creates_on_subnet_c() {
    let mut f = Fork::new();
    f.fill(40);
    let before = f.digest(f.heap);
    let sample = f.get(f.heap, (1 << 32) | 3);
    assert!(sample.is_some());

    let req = CanisterBackupRequest {
        canister: f.heap,
        consistency: Consistency::StopTakeStart,
        label: Some("to fork".into()),
    };
    let job: CanisterJob = f
        .vault
        .call(&mut f.s.ic, f.owner, "backup_canister", (req,))
        .expect("backup_canister");
    let job = f.wait(job.id, "canister_backup_status");
    assert_eq!(job.state, CanisterJobState::Done, "{job:?}");
    let snapshot = job.snapshot_id.expect("a catalogue snapshot");

    // Refusals take nothing: too few cycles, an unknown vault, a balance below the minimum.
    let wallet0 = f.s.books(f.s.app);
    let req = f.target_request(2);
    let (r, refunded) = f.s.app_call::<_, Result<ForkTargetResponse, FactoryError>>(
        "create_fork_target",
        &req,
        TARGET_COST - 1,
    );
    assert_eq!(
        r,
        Err(FactoryError::InsufficientCycles {
            attached: TARGET_COST - 1,
            required: TARGET_COST
        })
    );
    assert_eq!(refunded, TARGET_COST - 1);
    let unknown = CreateForkTargetRequest {
        vault: f.heap,
        ..req.clone()
    };
    let (r, _) = f.s.app_call::<_, Result<ForkTargetResponse, FactoryError>>(
        "create_fork_target",
        &unknown,
        TARGET_COST,
    );
    assert_eq!(r, Err(FactoryError::VaultNotFound(f.heap)));
    assert_eq!(f.s.created_canisters().len(), 1, "only the vault so far");

    // The fork target: an empty canister on subnet C, the owner (payer) and the vault its
    // controllers, funded with exactly its initial balance.
    let (r, refunded) = f.s.app_call::<_, Result<ForkTargetResponse, FactoryError>>(
        "create_fork_target",
        &req,
        TARGET_COST,
    );
    let target = r.expect("a fork target");
    assert_eq!(refunded, 0);
    let fork = target.canister_id;
    assert_eq!(f.s.ic.get_subnet(fork), Some(f.s.subnets[2]), "on subnet C");
    assert_eq!(target.subnet, Some(f.s.subnets[2]));
    assert_eq!(
        sorted(target.controllers.clone()),
        sorted(vec![f.s.app, f.vault.id])
    );
    assert_eq!(
        f.s.controllers(fork, f.s.app),
        sorted(vec![f.s.app, f.vault.id])
    );
    assert_eq!(f.s.module_hash(fork, f.s.app), None, "empty");
    let books = f.s.books(fork);
    assert_eq!(books.balance + books.burned, INITIAL);
    assert_eq!(wallet0.sent_since(f.s.books(f.s.app)), TARGET_COST as i128);
    let d = f.deployment(target.deployment_id);
    assert_eq!(
        (d.stage, d.canister_id, d.fork_target_of, d.pending),
        (Stage::Registered, Some(fork), Some(f.vault.id), None)
    );
    // Not a vault: the registry does not list it, its deployment cannot be resumed as one.
    let vaults: Vec<canvault_factory_api::VaultInfo> =
        f.s.query_as(f.owner, "vaults_of_owner", (f.s.app,));
    assert!(vaults.iter().all(|v| v.canister_id != fork));
    let (r, _) =
        f.s.app_call::<_, Result<canvault_factory_api::CreateVaultResponse, FactoryError>>(
            "resume_deployment",
            &target.deployment_id,
            0,
        );
    assert!(matches!(r, Err(FactoryError::InvalidRequest(_))), "{r:?}");

    // The fork: the vault restores the snapshot into it.
    let req = RestoreCanisterRequest {
        snapshot_id: snapshot,
        target: fork,
    };
    let job: CanisterJob = f
        .vault
        .call(&mut f.s.ic, f.owner, "restore_canister", (req,))
        .expect("restore_canister");
    let job = f.wait(job.id, "canister_restore_status");
    assert_eq!(job.state, CanisterJobState::Done, "{job:?}");
    let status = f.s.ic.canister_status(fork, Some(f.s.app)).expect("status");
    assert_eq!(status.status, CanisterStatusType::Running);
    assert!(status.module_hash.is_some(), "the app's module");
    assert_eq!(f.digest(fork), before, "heap state identical");
    assert_eq!(
        f.get(fork, (1 << 32) | 3),
        sample,
        "query answers identical"
    );
    assert_eq!(f.digest(f.heap), before, "the original runs on unchanged");
}

/// A fork target whose CMC reply is lost (the factory's callback traps) is settled by an
/// admin with the canister the CMC made: one canister, never two; one whose creation is
/// rejected before anything happened is resumed by its requester.
#[test]
fn canister_copy_fork_target_survives_a_lost_cmc_reply_and_a_rejected_creation() {
    for lost in [true, false] {
        let mut f = Fork::new();
        let req = f.target_request(2);
        let id = 1; // deployment 0 made the vault
        if !lost {
            f.s.ic
                .inject_rejects(f.s.factory, CMC_PRINCIPAL, 1, RejectCode::SysTransient);
        }
        let msg = f.s.submit("create_fork_target", &req, TARGET_COST);
        if lost {
            f.s.tick_until(msg, "create sent", |s| {
                s.deployment(id)
                    .is_ok_and(|d| d.pending == Some(Step::CreateCanister))
            });
            f.s.ic.trap_next_execution(f.s.factory);
        }
        let (r, refunded) = f.s.finish::<Result<ForkTargetResponse, FactoryError>>(msg);
        assert_eq!(refunded, 0, "the cost was accepted");
        let created = f.s.created_canisters();
        let d = f.deployment(id);
        let (resumed, _) = f.s.app_call::<_, Result<ForkTargetResponse, FactoryError>>(
            "resume_fork_target",
            &id,
            0,
        );
        let target = if lost {
            assert!(r.is_err(), "the callback trapped: no reply");
            assert_eq!(
                created.len(),
                2,
                "the vault and the target the factory lost"
            );
            assert_eq!(
                (d.stage, d.pending),
                (Stage::Accepted, Some(Step::CreateCanister))
            );
            assert_eq!(
                resumed,
                Err(FactoryError::OutcomeUnknown {
                    deployment_id: id,
                    step: Step::CreateCanister
                }),
                "never a second creation"
            );
            let recover = RecoverDeploymentRequest {
                deployment_id: id,
                canister_id: created[1],
            };
            // The vault's recovery endpoint refuses a fork target's deployment.
            let wrong: Result<canvault_factory_api::CreateVaultResponse, FactoryError> =
                f.s.admin_call("recover_deployment", (recover.clone(),));
            assert!(
                matches!(wrong, Err(FactoryError::InvalidRequest(_))),
                "{wrong:?}"
            );
            let r: Result<ForkTargetResponse, FactoryError> =
                f.s.admin_call("recover_fork_target", (recover,));
            r.expect("recovered")
        } else {
            let message = d.last_error.clone().expect("recorded").message;
            assert_eq!(
                r,
                Ok(Err(FactoryError::DeploymentFailed {
                    deployment_id: id,
                    step: Step::CreateCanister,
                    message,
                    retryable: true
                }))
            );
            assert_eq!(created.len(), 1, "only the vault");
            resumed.expect("resumed")
        };
        let all = f.s.created_canisters();
        assert_eq!(all.len(), 2, "exactly one fork target");
        assert_eq!(target.canister_id, all[1]);
        assert_eq!(f.s.ic.get_subnet(target.canister_id), Some(f.s.subnets[2]));
        assert_eq!(
            f.s.controllers(target.canister_id, f.s.app),
            sorted(vec![f.s.app, f.vault.id])
        );
        let d = f.deployment(id);
        assert_eq!((d.stage, d.pending, d.credit), (Stage::Registered, None, 0));
        assert_eq!(d.funded, CREATION_FEE + INITIAL);
        let books = f.s.books(target.canister_id);
        assert_eq!(books.balance + books.burned, INITIAL);
        for c in [f.s.app, f.s.factory, target.canister_id] {
            assert_eq!(f.s.ic.metrics(c).cycles_burned.lost, 0);
        }
    }
}
