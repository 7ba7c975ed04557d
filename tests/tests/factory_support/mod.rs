//! Shared setup of the factory scenarios (`factory.rs`, `factory_*.rs`): a factory on
//! subnet 2 with the vault module current, the app (a test wallet) on subnet 0.
#![allow(dead_code, unused_imports)]

use candid::utils::ArgumentEncoder;
use candid::{CandidType, Encode, Principal};
use canvault_factory_api::{
    BeginUploadRequest, CreateVaultRequest, CreateVaultResponse, DeleteVaultResponse,
    DeploymentInfo, FactoryConfig, FactoryError, FactoryInit, FactoryStatus, FleetUpgradeStatus,
    Permission, QuotaKind, Quotas, RecoverDeploymentRequest, RunFleetBatchRequest,
    SetManagedUpgradesRequest, SkipReason, Stage, StartFleetUpgradeRequest, Step, SubnetChoice,
    TopUpRequest, TopUpResponse, UploadChunkRequest, UploadProgress, VaultInfo, VaultKind,
    VaultUpgradeState, VersionInfo,
};
use canvault_protocol::Hash256;
use canvault_protocol::vault_api::{Role, RoleChange, SnapshotInfo, SnapshotState, VaultError};
use canvault_scenarios::vault::{VaultClient, noise_image};
use canvault_scenarios::{harness, install, principal, wasm};
use ic_harness::cmc_types::{BAD_REQUEST_CYCLES_PENALTY, CMC_PRINCIPAL};
use ic_harness::{CanisterId, Harness, MessageId, RejectCode, SubnetId};
use ic_management_canister_types::CanisterStatusType;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

pub const FACTORY_WASM: &str = "canvault_factory";
pub const WALLET_WASM: &str = "factory_test_wallet";
pub const VAULT_WASM: &str = "canvault_vault";

pub const T: u128 = 1_000_000_000_000;
/// The vaults' starting balance.
pub const INITIAL: u128 = T;
/// The harness's creation fee (13-node subnet), which the factory reads from
/// `cost_create_canister`.
pub const CREATION_FEE: u128 = 500_000_000_000;
/// The factory's default service fee.
pub const SERVICE_FEE: u128 = 10_000_000_000;
/// What `create_vault` takes for a vault of `INITIAL` cycles.
pub const REQUIRED: u128 = CREATION_FEE + INITIAL + SERVICE_FEE;
/// Vault snapshot chunk size in the scenarios.
pub const CS: u32 = 64 * 1024;

/// The test wallet's candid types.
#[derive(CandidType)]
pub struct ForwardRequest {
    pub target: Principal,
    pub method: String,
    pub arg: ByteBuf,
    pub cycles: u128,
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub code: u32,
    pub message: String,
}

#[derive(CandidType, Deserialize, Debug)]
pub struct ForwardResponse {
    pub result: Result<ByteBuf, Rejected>,
    pub refunded: u128,
}

/// Balance and cycles burned of a canister at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Books {
    pub balance: u128,
    pub burned: u128,
}

impl Books {
    /// Cycles that left the canister other than as its own fees since `self`
    /// (negative: cycles that came in).
    pub fn sent_since(self, now: Books) -> i128 {
        self.balance as i128 - now.balance as i128 - (now.burned - self.burned) as i128
    }
}

pub struct Setup {
    pub ic: Harness,
    pub factory: CanisterId,
    /// The app canister (pays through its `forward` method), on subnet 0.
    pub app: CanisterId,
    /// Controls the app canister; never gets anything in a personal vault.
    pub app_admin: Principal,
    pub admin: Principal,
    pub subnets: Vec<SubnetId>,
    pub v1: VersionInfo,
}

/// A module whose hash differs from `module`'s but which runs the same code: a custom
/// section appended (`0x00`, size, name, payload).
pub fn with_custom_section(module: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = module.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

impl Setup {
    /// Three subnets; the factory (default config, one admin) on subnet 2 with the vault
    /// module uploaded in 500,000-byte chunks and current; the app on subnet 0.
    pub fn new() -> Self {
        Self::with_factory_module(wasm(FACTORY_WASM))
    }

    /// As [`Setup::new`], with `module` as the factory (e.g. a previous release's).
    pub fn with_factory_module(module: Vec<u8>) -> Self {
        let mut ic = harness(3);
        let admin = principal("factory admin");
        let init = FactoryInit {
            admins: vec![admin],
            config: None,
        };
        let subnet = ic.topology().app_subnets[2];
        let factory = ic.create_canister_on_subnet(Some(admin), None, subnet);
        ic.install_canister(factory, module, Encode!(&init).unwrap(), Some(admin));
        let app_admin = principal("app admin");
        let app = install(&mut ic, 0, WALLET_WASM, Encode!().unwrap(), app_admin);
        let subnets = ic.topology().app_subnets;
        // ic-harness numbers canisters like the NNS subnet, so its fifth canister would get
        // the CMC's principal (rkp4c-7iaaa-aaaaa-aaaca-cai) and sit unreachable behind the
        // CMC: burn the ids up to it with empty canisters.
        for _ in 0..3 {
            if ic.create_canister_on_subnet(None, None, subnets[1]) == CMC_PRINCIPAL {
                break;
            }
        }
        let mut s = Self {
            ic,
            factory,
            app,
            app_admin,
            admin,
            subnets,
            v1: VersionInfo {
                hash: Hash256::default(),
                label: String::new(),
                size: 0,
                chunks: 0,
                uploaded_by: admin,
                uploaded_at_ns: 0,
                current: false,
            },
        };
        s.v1 = s.upload("1.0.0", &wasm(VAULT_WASM), 500_000);
        let current: Result<VersionInfo, FactoryError> =
            s.admin_call("set_current_version", (s.v1.hash,));
        assert!(current.unwrap().current);
        s
    }

    /// An ingress update to the factory from `sender`, decoded.
    pub fn call_as<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        sender: Principal,
        method: &str,
        args: A,
    ) -> R {
        let (r,): (R,) = self
            .ic
            .update_candid(self.factory, sender, method, args)
            .unwrap_or_else(|e| panic!("factory {method} failed: {e:?}"));
        r
    }

    /// An ingress query to the factory from `sender`, decoded.
    pub fn query_as<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        sender: Principal,
        method: &str,
        args: A,
    ) -> R {
        let (r,): (R,) = self
            .ic
            .query_candid(self.factory, sender, method, args)
            .unwrap_or_else(|e| panic!("factory {method} failed: {e:?}"));
        r
    }

    pub fn admin_call<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        method: &str,
        args: A,
    ) -> R {
        self.call_as(self.admin, method, args)
    }

    /// Uploads `module` in chunks of `chunk` bytes and commits it.
    pub fn upload(&mut self, label: &str, module: &[u8], chunk: usize) -> VersionInfo {
        let begin = BeginUploadRequest {
            label: label.into(),
            sha256: Hash256::of(module),
            size: module.len() as u64,
        };
        let p: Result<UploadProgress, FactoryError> =
            self.admin_call("begin_version_upload", (begin,));
        let id = p.unwrap().upload_id;
        let mut offset = 0;
        for part in module.chunks(chunk) {
            let req = UploadChunkRequest {
                upload_id: id,
                offset,
                bytes: ByteBuf::from(part.to_vec()),
            };
            let p: Result<UploadProgress, FactoryError> =
                self.admin_call("upload_version_chunk", (req,));
            offset += part.len() as u64;
            assert_eq!(p.unwrap().received, offset);
        }
        let v: Result<VersionInfo, FactoryError> = self.admin_call("commit_version_upload", (id,));
        let v = v.unwrap();
        assert_eq!((v.hash, v.size), (Hash256::of(module), module.len() as u64));
        v
    }

    /// The books of `canister`. Its `creation` category is left out: the harness counts
    /// the CMC's creation fee there for the creator, although the fee is paid out of the
    /// cycles attached to `create_canister` (already counted as sent).
    pub fn books(&self, canister: CanisterId) -> Books {
        let burned = self.ic.metrics(canister).cycles_burned;
        Books {
            balance: self.ic.cycle_balance(canister),
            burned: burned.total() - burned.creation,
        }
    }

    /// Submits `app.forward(factory.method(arg))` with `cycles` attached.
    pub fn submit<A: CandidType>(&mut self, method: &str, arg: &A, cycles: u128) -> MessageId {
        let req = ForwardRequest {
            target: self.factory,
            method: method.into(),
            arg: ByteBuf::from(Encode!(arg).unwrap()),
            cycles,
        };
        self.ic
            .submit_call(self.app, self.app_admin, "forward", Encode!(&req).unwrap())
            .expect("submitted")
    }

    /// Awaits a forwarded call: the factory's reply decoded (or its reject), and the refund.
    pub fn finish<R: CandidType + DeserializeOwned>(
        &mut self,
        msg: MessageId,
    ) -> (Result<R, Rejected>, u128) {
        let reply = self.ic.await_call(msg).expect("the wallet answers");
        let r: ForwardResponse = candid::decode_one(&reply).expect("ForwardResponse");
        let result = r
            .result
            .map(|bytes| candid::decode_one::<R>(&bytes).expect("the factory's reply decodes"));
        (result, r.refunded)
    }

    /// The app calls `factory.method(arg)` with `cycles` attached; the call must be answered.
    pub fn app_call<A: CandidType, R: CandidType + DeserializeOwned>(
        &mut self,
        method: &str,
        arg: &A,
        cycles: u128,
    ) -> (R, u128) {
        let msg = self.submit(method, arg, cycles);
        let (r, refunded) = self.finish::<R>(msg);
        (
            r.unwrap_or_else(|e| panic!("factory {method} rejected: {e:?}")),
            refunded,
        )
    }

    pub fn create(
        &mut self,
        req: &CreateVaultRequest,
        cycles: u128,
    ) -> (Result<CreateVaultResponse, FactoryError>, u128) {
        self.app_call("create_vault", req, cycles)
    }

    pub fn deployment(&mut self, id: u64) -> Result<DeploymentInfo, FactoryError> {
        self.query_as(self.admin, "get_deployment", (id,))
    }

    /// Canisters the cycles minting canister created so far, from the harness event log.
    pub fn created_canisters(&self) -> Vec<Principal> {
        self.ic
            .fault_log()
            .iter()
            .filter_map(|line| line.split("CMC: created canister ").nth(1))
            .map(|rest| Principal::from_text(rest.split(' ').next().unwrap()).unwrap())
            .collect()
    }

    /// An app vault for the app, owned by `owner`, read by `reader`, placed by default
    /// away from the app's subnet.
    pub fn app_request(&self, owner: Principal, reader: Principal) -> CreateVaultRequest {
        CreateVaultRequest {
            kind: VaultKind::App { app: self.app },
            owners: vec![owner],
            writers: vec![self.app],
            readers: vec![reader],
            retention: None,
            subnet: SubnetChoice::Default {
                avoid: Some(self.subnets[0]),
            },
            initial_cycles: INITIAL,
            managed_upgrades: true,
        }
    }

    /// A personal vault for `user` of the app, asked for by the app (the user alone
    /// owns and controls it), placed by default away from the app's subnet.
    pub fn personal_request(&self, user: Principal) -> CreateVaultRequest {
        CreateVaultRequest {
            kind: VaultKind::Personal {
                user,
                app: self.app,
            },
            owners: vec![],
            writers: vec![],
            readers: vec![],
            retention: None,
            subnet: SubnetChoice::Default {
                avoid: Some(self.subnets[0]),
            },
            initial_cycles: INITIAL,
            managed_upgrades: false,
        }
    }

    /// Ticks until `pred` holds, while the message `msg` is still pending.
    pub fn tick_until(&mut self, msg: MessageId, what: &str, pred: impl Fn(&mut Self) -> bool) {
        for _ in 0..1_000 {
            if pred(self) {
                return;
            }
            assert!(
                self.ic.ingress_status(msg).is_none(),
                "{what}: the call finished first"
            );
            self.ic.tick();
        }
        panic!("{what}: never happened");
    }

    pub fn vault_roles(&mut self, vault: CanisterId, owner: Principal) -> Vec<(Principal, Role)> {
        let mut roles: Vec<(Principal, Role)> = VaultClient { id: vault }
            .read(&mut self.ic, owner, "list_roles", ())
            .expect("list_roles");
        roles.sort();
        roles
    }

    pub fn controllers(&mut self, vault: CanisterId, controller: Principal) -> Vec<Principal> {
        let mut c = self
            .ic
            .canister_status(vault, Some(controller))
            .expect("canister_status")
            .settings
            .controllers;
        c.sort();
        c
    }

    pub fn module_hash(&mut self, vault: CanisterId, controller: Principal) -> Option<Vec<u8>> {
        self.ic
            .canister_status(vault, Some(controller))
            .expect("canister_status")
            .module_hash
    }
}

impl Setup {
    /// Every line of the current fleet upgrade, read in pages of `limit`; also returns
    /// how many pages it took.
    pub fn fleet_lines(&mut self, limit: u32) -> (Vec<canvault_factory_api::VaultUpgrade>, usize) {
        use canvault_factory_api::{FleetVaultsPage, ListFleetVaultsRequest};
        let mut lines = Vec::new();
        let mut start = None;
        for pages in 1.. {
            let page: FleetVaultsPage = self.query_as(
                self.admin,
                "list_fleet_upgrade_vaults",
                (ListFleetVaultsRequest { start, limit },),
            );
            assert!(page.vaults.len() <= limit as usize);
            lines.extend(page.vaults);
            match page.next {
                Some(next) => start = Some(next),
                None => return (lines, pages),
            }
        }
        unreachable!()
    }
}

pub fn sorted(mut v: Vec<Principal>) -> Vec<Principal> {
    v.sort();
    v
}

pub fn sorted_roles(mut v: Vec<(Principal, Role)>) -> Vec<(Principal, Role)> {
    v.sort();
    v
}
