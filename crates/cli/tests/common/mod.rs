//! Shared setup for the CLI's tests: every command runs through `commands::execute`
//! against the in-process IC (`HarnessTransport`), on the real canister wasm built by
//! `scripts/build-wasm.sh`. Faults are injected by wrapping the transport.

#![allow(dead_code)] // each test binary uses part of it

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use candid::{Encode, Principal};
use canvault_cli::Cli;
use canvault_cli::commands::execute;
use canvault_cli::error::{CliError, CliResult};
use canvault_cli::transport::{HarnessTransport, Transport, TransportError};
use canvault_protocol::kit_api::KitConfig;
use canvault_protocol::vault_api::{StoredChunk, VaultError, VaultInit};
use clap::Parser;
use ic_harness::{Harness, HarnessBuilder, load_canister_wasm};
use ic_stable_structures::VectorMemory;

/// A canister module, read once per test binary.
pub fn wasm(name: &str) -> Vec<u8> {
    static CACHE: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cache
        .entry(name.to_string())
        .or_insert_with(|| load_canister_wasm(name))
        .clone()
}

/// A distinct principal per name.
pub fn principal(name: &str) -> Principal {
    Principal::self_authenticating(name.as_bytes())
}

/// An app (subnet A) backing up into a vault (subnet B); subnet C is free.
pub struct Env {
    /// The operator: controller of the app, owner of the vault.
    pub t: HarnessTransport,
    /// The app.
    pub app: Principal,
    /// The vault.
    pub vault: Principal,
    /// The three subnets.
    pub subnets: Vec<Principal>,
}

impl Env {
    /// The app filled with about `data_mib` MiB of posts, configured to back up into
    /// the vault; no backup yet.
    pub fn new(data_mib: u64) -> Self {
        let t = harness();
        let subnets = t.ic().borrow().topology().app_subnets;
        let owner = t.caller();
        let app = install(&t, subnets[0], "canvault_example_app", Encode!().unwrap());
        let init = VaultInit {
            owners: vec![owner],
            writers: vec![app],
            ..VaultInit::default()
        };
        let vault = install(&t, subnets[1], "canvault_vault", Encode!(&init).unwrap());
        let env = Self {
            t,
            app,
            vault,
            subnets,
        };
        let config = KitConfig {
            vault: Some(vault),
            ..KitConfig::default()
        };
        canvault_cli::client::KitClient::new(&env.t, app)
            .configure(config)
            .unwrap();
        env.fill(app, data_mib);
        env
    }

    /// `canvault snapshot download ID --vault VAULT -o FILE`, which must succeed.
    pub fn download(&self, vault: Principal, id: u64, file: &Path) -> String {
        self.run(&[
            "snapshot",
            "download",
            &id.to_string(),
            "--vault",
            &vault.to_text(),
            "-o",
            arg(file),
        ])
        .unwrap()
    }

    /// A second vault on the `subnet`-th subnet, owned by the operator, with no writers.
    pub fn new_vault(&self, subnet: usize) -> Principal {
        let init = VaultInit {
            owners: vec![self.t.caller()],
            ..VaultInit::default()
        };
        install(
            &self.t,
            self.subnets[subnet],
            "canvault_vault",
            Encode!(&init).unwrap(),
        )
    }

    /// Adds about `mib` MiB of long posts.
    pub fn fill(&self, app: Principal, mib: u64) {
        let stats = |t: &HarnessTransport| -> (u64, u64, u64) {
            let r = t.query(app, "stats", Encode!().unwrap()).unwrap();
            let s: AppStats = candid::decode_one(&r).unwrap();
            (s.users, s.posts, s.image_bytes)
        };
        let target = stats(&self.t).2 + mib * 1024 * 1024;
        while stats(&self.t).2 < target {
            self.t
                .update(app, "fill_articles_to", Encode!(&target, &3u64).unwrap())
                .unwrap();
        }
    }

    /// The app's image as the app sees it.
    pub fn image(&self, app: Principal) -> Vec<u8> {
        let raw = self.t.ic().borrow().get_stable_memory(app);
        canvault_kit::Kit::load(VectorMemory::new(RefCell::new(raw))).image_bytes()
    }

    /// The app's raw stable memory (as a native snapshot holds it).
    pub fn raw_stable_memory(&self, app: Principal) -> Vec<u8> {
        self.t.ic().borrow().get_stable_memory(app)
    }

    /// Runs `canvault -q <args>` as the operator.
    pub fn run(&self, args: &[&str]) -> CliResult<String> {
        run_with(self.t.clone(), args)
    }

    /// Backs up through the CLI; returns its output.
    pub fn backup(&self) -> String {
        self.run(&["backup", "now", "--app", &self.app.to_text()])
            .unwrap()
    }

    /// A fresh example app on subnet `subnet`, controlled by the operator.
    pub fn fresh_app(&self, subnet: usize) -> Principal {
        install(
            &self.t,
            self.subnets[subnet],
            "canvault_example_app",
            Encode!().unwrap(),
        )
    }
}

/// Three subnets; calls as the operator.
pub fn harness() -> HarnessTransport {
    let ic = HarnessBuilder::new()
        .with_application_subnet()
        .with_application_subnet()
        .with_application_subnet()
        .build();
    HarnessTransport::new(Rc::new(RefCell::new(ic)), principal("operator"))
}

/// The example app's counters.
#[derive(candid::CandidType, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppStats {
    /// Users.
    pub users: u64,
    /// Posts.
    pub posts: u64,
    /// Image bytes.
    pub image_bytes: u64,
}

/// The app's counters.
pub fn stats(t: &HarnessTransport, app: Principal) -> AppStats {
    candid::decode_one(&t.query(app, "stats", Encode!().unwrap()).unwrap()).unwrap()
}

/// Creates a canister on `subnet` controlled by the transport's caller and installs `name`.
pub fn install(t: &HarnessTransport, subnet: Principal, name: &str, arg: Vec<u8>) -> Principal {
    let ic = t.ic();
    let mut ic = ic.borrow_mut();
    let id = ic.create_canister_on_subnet(Some(t.caller()), None, subnet);
    ic.install_canister(id, wasm(name), arg, Some(t.caller()));
    id
}

/// Runs `canvault -q <args>` on `transport`; returns the output.
pub fn run_with(transport: impl Transport + Clone + 'static, args: &[&str]) -> CliResult<String> {
    let cli = Cli::try_parse_from(
        std::iter::once("canvault")
            .chain(std::iter::once("-q"))
            .chain(args.iter().copied()),
    )
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let mut out = Vec::new();
    let connect =
        move |_: &Cli| -> CliResult<Box<dyn Transport>> { Ok(Box::new(transport.clone())) };
    execute(&cli, &connect, &mut out)?;
    Ok(String::from_utf8(out).expect("utf-8 output"))
}

/// A path as an argument.
pub fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// What a [`Faulty`] transport does to `get_chunk` replies or `put_chunks` calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The network fails from the `n`-th `get_chunk` on (counting from 0).
    FailFrom(u32),
    /// The `n`-th `get_chunk` reply has one byte flipped.
    CorruptAt(u32),
    /// The network fails from the `n`-th `put_chunks` on (counting from 0).
    FailPutsFrom(u32),
}

/// Wraps the harness transport and injects one fault into `get_chunk` or `put_chunks`
/// calls.
#[derive(Clone)]
pub struct Faulty {
    inner: HarnessTransport,
    fault: Fault,
    chunks: Rc<Cell<u32>>,
}

impl Faulty {
    /// `inner` with `fault`.
    pub fn new(inner: HarnessTransport, fault: Fault) -> Self {
        Self {
            inner,
            fault,
            chunks: Rc::new(Cell::new(0)),
        }
    }
}

impl Transport for Faulty {
    fn caller(&self) -> Principal {
        self.inner.caller()
    }

    fn query(
        &self,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, TransportError> {
        if method != "get_chunk" {
            return self.inner.query(canister, method, arg);
        }
        let n = self.chunks.get();
        self.chunks.set(n + 1);
        match self.fault {
            Fault::FailFrom(k) if n >= k => {
                Err(TransportError::Network("connection reset by peer".into()))
            }
            Fault::CorruptAt(k) if n == k => {
                let reply = self.inner.query(canister, method, arg)?;
                let mut r: Result<StoredChunk, VaultError> = candid::decode_one(&reply).unwrap();
                if let Ok(c) = &mut r {
                    let mid = c.bytes.len() / 2;
                    c.bytes[mid] ^= 0x55;
                }
                Ok(candid::encode_one(&r).unwrap())
            }
            _ => self.inner.query(canister, method, arg),
        }
    }

    fn update(
        &self,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, TransportError> {
        if let Fault::FailPutsFrom(k) = self.fault
            && method == "put_chunks"
        {
            let n = self.chunks.get();
            self.chunks.set(n + 1);
            if n >= k {
                return Err(TransportError::Network("connection reset by peer".into()));
            }
        }
        self.inner.update(canister, method, arg)
    }

    fn pause(&self) -> Duration {
        self.inner.pause()
    }

    fn network(&self) -> String {
        self.inner.network()
    }
}

/// The harness behind a transport.
pub fn ic(t: &HarnessTransport) -> Rc<RefCell<Harness>> {
    t.ic()
}
