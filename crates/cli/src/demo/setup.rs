//! The demo's world: the in-process IC, the canisters it deploys, and the app calls
//! that fill, change and inspect the example app.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use candid::{CandidType, Encode, Principal};
use canvault_factory_api::{FactoryInit, VaultInfo};
use canvault_protocol::kit_api::KitConfig;
use ic_harness::{CanisterMetrics, Harness, HarnessBuilder, canister_wasm_dir};
use ic_stable_structures::VectorMemory;
use serde::Deserialize;
use serde_bytes::ByteBuf;

use super::Phase;
use super::alternatives::{Meter, PathCost};
use super::comparison::KIT_VERIFIES;
use super::report::CanisterReport;
use crate::cli::CreateArgs;
use crate::client::{KitClient, call_plain};
use crate::error::{CliError, CliResult};
use crate::progress::ProgressMode;
use crate::transport::{HarnessTransport, Transport};

/// The example app's counters.
#[derive(CandidType, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppStats {
    /// Users.
    pub users: u64,
    /// Posts.
    pub posts: u64,
    /// Image size in bytes.
    pub image_bytes: u64,
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Post {
    id: u64,
    author: u64,
    created_at_ns: u64,
    text: String,
    edits: u32,
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
struct User {
    id: u64,
    name: String,
    joined_at_ns: u64,
}

/// The app's own error (only `Unauthorized`).
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
enum AppError {
    Unauthorized(Principal),
}

/// The canister modules, read from `scripts/build-wasm.sh`'s output.
struct Modules {
    factory: Vec<u8>,
    app: Vec<u8>,
    wallet: Vec<u8>,
    /// tests/heap-app: a canister that keeps its state on the heap and knows nothing of
    /// canvault.
    heap_app: Vec<u8>,
    /// tests/alt-app: today's alternatives (pre_upgrade serialisation, naive push).
    alt_app: Vec<u8>,
}

fn module(name: &str) -> CliResult<Vec<u8>> {
    let path = canister_wasm_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).map_err(|e| {
        CliError::Usage(format!(
            "cannot read the canister module {} ({e}); build the canisters first: scripts/build-wasm.sh",
            path.display()
        ))
    })
}

/// A point in the demo, to measure a phase from.
pub struct Clock {
    wall: Instant,
    /// Rounds executed so far.
    pub rounds: u64,
    time: u64,
    cycles: u128,
}

/// The demo's IC and canisters.
pub struct World {
    /// The operator's transport.
    pub t: HarnessTransport,
    /// Subnets A, B, C.
    pub subnets: [Principal; 3],
    /// The factory.
    pub factory: Principal,
    /// The cycles wallet.
    pub wallet: Principal,
    /// Phases measured so far.
    pub phases: Vec<Phase>,
    progress: ProgressMode,
    modules: Modules,
    /// Every canister deployed, with its metrics at deletion for deleted ones.
    canisters: Vec<Principal>,
    deleted: HashMap<Principal, (Option<Principal>, CanisterMetrics)>,
}

fn rejected(canister: Principal, method: &str, r: &ic_harness::Reject) -> CliError {
    CliError::Rejected {
        canister,
        method: method.to_string(),
        message: r.message.clone(),
    }
}

impl World {
    /// Three subnets and the modules.
    ///
    /// # Errors
    /// A module is not built.
    pub fn new(progress: ProgressMode) -> CliResult<Self> {
        module("canvault_vault")?; // uploaded to the factory from its file
        let modules = Modules {
            factory: module("canvault_factory")?,
            app: module("canvault_example_app")?,
            wallet: module("canvault_cli_test_wallet")?,
            heap_app: module("heap_app")?,
            alt_app: module(super::alternatives::ALT_APP)?,
        };
        let ic = HarnessBuilder::new()
            .with_application_subnet()
            .with_application_subnet()
            .with_application_subnet()
            .build();
        let s = ic.topology().app_subnets;
        let subnets = [s[0], s[1], s[2]];
        let t = HarnessTransport::new(Rc::new(RefCell::new(ic)), super::operator());
        Ok(Self {
            t,
            subnets,
            factory: Principal::anonymous(),
            wallet: Principal::anonymous(),
            phases: Vec::new(),
            progress,
            modules,
            canisters: Vec::new(),
            deleted: HashMap::new(),
        })
    }

    fn ic(&self) -> Rc<RefCell<Harness>> {
        self.t.ic()
    }

    fn install(&mut self, subnet: Principal, wasm: Vec<u8>, arg: Vec<u8>) -> CliResult<Principal> {
        let ic = self.ic();
        let mut ic = ic.borrow_mut();
        let me = self.t.caller();
        let id = ic.create_canister_on_subnet(Some(me), None, subnet);
        ic.try_install_canister(id, wasm, arg, Some(me))
            .map_err(|r| rejected(id, "install_code", &r))?;
        self.canisters.push(id);
        Ok(id)
    }

    /// The factory (with the vault module uploaded) and the operator's wallet, on subnet A.
    ///
    /// # Errors
    /// An install or an upload failed.
    pub fn deploy_factory_and_wallet(&mut self) -> CliResult<()> {
        let me = self.t.caller();
        let init = Encode!(&FactoryInit {
            admins: vec![me],
            config: None
        })
        .map_err(|e| CliError::Usage(e.to_string()))?;
        self.factory = self.install(self.subnets[0], self.modules.factory.clone(), init)?;
        self.wallet = self.install(
            self.subnets[0],
            self.modules.wallet.clone(),
            Encode!().unwrap_or_default(),
        )?;
        let dir = canister_wasm_dir();
        let module = dir.join("canvault_vault.wasm");
        crate::commands::factory::upload_version(
            &self.t,
            self.factory,
            &module,
            "demo",
            true,
            self.progress,
        )
        .map(drop)
    }

    /// The example app on `subnet`.
    ///
    /// # Errors
    /// The install failed.
    pub fn deploy_app(&mut self, subnet: Principal) -> CliResult<Principal> {
        let wasm = self.modules.app.clone();
        self.install(subnet, wasm, Encode!().unwrap_or_default())
    }

    /// The heap-only app (no kit, no stable memory) on `subnet`.
    ///
    /// # Errors
    /// The install failed.
    pub fn deploy_heap_app(&mut self, subnet: Principal) -> CliResult<Principal> {
        let wasm = self.modules.heap_app.clone();
        self.install(subnet, wasm, Encode!().unwrap_or_default())
    }

    /// The alternatives' test canister module.
    #[must_use]
    pub fn alt_app_module(&self) -> Vec<u8> {
        self.modules.alt_app.clone()
    }

    /// Starts measuring `app` and the receiving side.
    #[must_use]
    pub fn meter(&self, app: &[Principal], receivers: &[Principal]) -> Meter {
        Meter::start(&self.ic().borrow(), app, receivers)
    }

    /// A kit path's cost since `meter`: `bytes` sent, `steps` operator ingress messages.
    #[must_use]
    pub fn kit_cost(&self, meter: &Meter, path: &str, bytes: u64, steps: u64) -> PathCost {
        PathCost {
            bytes_moved: bytes,
            operator_steps: steps,
            ..meter.cost(&self.ic().borrow(), path, KIT_VERIFIES)
        }
    }

    /// Counts `id` among the demo's canisters (for the report's totals).
    pub fn track(&mut self, id: Principal) {
        self.canisters.push(id);
    }

    /// `vault create` arguments for `app`'s vault on `subnet`.
    #[must_use]
    pub fn create_args(&self, app: Principal, subnet: Principal) -> CreateArgs {
        CreateArgs {
            factory: self.factory,
            wallet: self.wallet,
            app,
            subnet: Some(subnet),
            avoid_subnet: None,
            // The wallet too: it pays the factory for a fork's fresh canister, which only
            // a registered owner of the vault may ask for.
            owners: vec![self.t.caller(), self.wallet],
            readers: Vec::new(),
            initial_cycles: 5_000_000_000_000,
            fee_cycles: None,
            managed_upgrades: false,
        }
    }

    /// The vault the factory registered for `app`.
    ///
    /// # Errors
    /// None registered.
    pub fn vault_of(&mut self, app: Principal) -> CliResult<Principal> {
        let vaults: Vec<VaultInfo> = call_plain(
            &self.t,
            self.factory,
            false,
            "vaults_of_app",
            (app,),
            "factory",
        )?;
        let id = vaults
            .last()
            .map(|v| v.canister_id)
            .ok_or_else(|| CliError::Usage("the factory registered no vault".into()))?;
        self.canisters.push(id);
        Ok(id)
    }

    /// Points the app's kit at `vault`.
    ///
    /// # Errors
    /// The kit refused.
    pub fn configure(&self, app: Principal, vault: Principal) -> CliResult<()> {
        KitClient::new(&self.t, app).configure(KitConfig {
            vault: Some(vault),
            ..KitConfig::default()
        })
    }

    fn app_update<A: candid::utils::ArgumentEncoder, T: CandidType + for<'de> Deserialize<'de>>(
        &self,
        app: Principal,
        method: &str,
        args: A,
    ) -> CliResult<T> {
        let r: Result<T, AppError> = call_plain(&self.t, app, true, method, args, "example app")?;
        r.map_err(|e| CliError::Rejected {
            canister: app,
            method: method.into(),
            message: format!("{e:?}"),
        })
    }

    /// Adds users, then long-form posts until they take about `size` more bytes.
    ///
    /// # Errors
    /// An app call failed.
    pub fn fill(&self, app: Principal, size: u64, seed: u64) -> CliResult<AppStats> {
        let _: u64 = self.app_update(app, "add_users", (1_000u32, seed))?;
        let target = self.stats(app)?.image_bytes + size;
        let bar = self.progress.bytes(target, "fill");
        loop {
            let s: AppStats = self.app_update(app, "fill_articles_to", (target, seed))?;
            bar.set_position(s.image_bytes.min(target));
            if s.image_bytes >= target {
                bar.finish_and_clear();
                return Ok(s);
            }
        }
    }

    /// Edits 1% of the posts (a third of the way in) and adds 500 short ones.
    ///
    /// # Errors
    /// An app call failed.
    pub fn change(&self, app: Principal, posts: u64, seed: u64) -> CliResult<()> {
        let _: u64 = self.app_update(
            app,
            "edit_posts",
            (posts / 3, (posts / 100).max(1), seed + 7),
        )?;
        let _: u64 = self.app_update(app, "add_posts", (500u32, seed + 11))?;
        Ok(())
    }

    /// The app's image as the app sees it (its memory inside the kit's layout).
    #[must_use]
    pub fn app_image(&self, app: Principal) -> Vec<u8> {
        let raw = self.ic().borrow().get_stable_memory(app);
        canvault_kit::Kit::load(VectorMemory::new(RefCell::new(raw))).image_bytes()
    }

    /// `stats`.
    ///
    /// # Errors
    /// The query failed.
    pub fn stats(&self, app: Principal) -> CliResult<AppStats> {
        call_plain(&self.t, app, false, "stats", (), "example app")
    }

    /// Every page digest of the app's posts.
    ///
    /// # Errors
    /// A query failed.
    pub fn digest_pages(&self, app: Principal) -> CliResult<Vec<Vec<u8>>> {
        let mut pages = Vec::new();
        let mut start = 0u64;
        loop {
            let arg = Encode!(&start, &5_000u64).map_err(|e| CliError::Usage(e.to_string()))?;
            let reply = self.t.query(app, "digest", arg).map_err(|e| {
                CliError::from_transport(e, app, "digest", self.t.caller(), "the in-process IC")
            })?;
            let (page, next): (ByteBuf, Option<u64>) =
                candid::decode_args(&reply).map_err(|e| CliError::BadReply {
                    canister: app,
                    method: "digest".into(),
                    kind: "example app",
                    message: e.to_string(),
                })?;
            pages.push(page.into_vec());
            match next {
                Some(n) => start = n,
                None => return Ok(pages),
            }
        }
    }

    /// The first and last post and the first user, as text.
    ///
    /// # Errors
    /// A query failed.
    pub fn sample(&self, app: Principal, posts: u64) -> CliResult<String> {
        let first: Option<Post> =
            call_plain(&self.t, app, false, "get_post", (0u64,), "example app")?;
        let last: Option<Post> = call_plain(
            &self.t,
            app,
            false,
            "get_post",
            (posts.saturating_sub(1),),
            "example app",
        )?;
        let user: Option<User> =
            call_plain(&self.t, app, false, "get_user", (0u64,), "example app")?;
        Ok(format!("{first:?}{last:?}{user:?}"))
    }

    /// Stops and deletes `app` (its metrics are kept for the report).
    ///
    /// # Errors
    /// The management canister refused.
    pub fn delete(&mut self, app: Principal) -> CliResult<()> {
        let ic = self.ic();
        let mut ic = ic.borrow_mut();
        let me = self.t.caller();
        self.deleted
            .insert(app, (ic.get_subnet(app), ic.metrics(app)));
        ic.stop_canister(app, Some(me))
            .map_err(|r| rejected(app, "stop_canister", &r))?;
        ic.delete_canister(app, Some(me))
            .map_err(|r| rejected(app, "delete_canister", &r))
    }

    fn metrics(&self, id: Principal) -> (Option<Principal>, CanisterMetrics) {
        let ic = self.ic();
        let ic = ic.borrow();
        if ic.canister_exists(id) {
            (ic.get_subnet(id), ic.metrics(id))
        } else {
            self.deleted.get(&id).cloned().unwrap_or_default()
        }
    }

    /// One canister's line of the report.
    #[must_use]
    pub fn canister_report(&self, role: &str, id: Principal) -> CanisterReport {
        let (subnet, m) = self.metrics(id);
        CanisterReport::new(role, id, subnet, &m)
    }

    fn total_cycles(&self) -> u128 {
        self.canisters
            .iter()
            .map(|id| self.metrics(*id).1.cycles_burned.total())
            .sum()
    }

    /// Now, to measure a phase from.
    #[must_use]
    pub fn clock(&self) -> Clock {
        let ic = self.ic();
        let ic = ic.borrow();
        Clock {
            wall: Instant::now(),
            rounds: ic.rounds(),
            time: ic.time_nanos(),
            cycles: self.total_cycles(),
        }
    }

    /// Records the phase that started at `clock`.
    pub fn end_phase(&mut self, clock: Clock, name: &str) {
        let (rounds, time) = {
            let ic = self.ic();
            let ic = ic.borrow();
            (ic.rounds(), ic.time_nanos())
        };
        self.phases.push(Phase {
            name: name.to_string(),
            wall_seconds: clock.wall.elapsed().as_secs_f64(),
            rounds: rounds - clock.rounds,
            ic_seconds: (time - clock.time) as f64 / 1e9,
            cycles: self.total_cycles().saturating_sub(clock.cycles),
        });
    }
}
