//! The command line (clap).

use std::path::PathBuf;

use candid::Principal;
use clap::{Args, Parser, Subcommand};

use crate::native::Layout;

/// canvault: on-chain, cross-subnet backup and restore for Internet Computer canisters.
#[derive(Parser, Debug, Clone)]
#[command(name = "canvault", version, about, long_about = None)]
pub struct Cli {
    /// The network: `ic`, `local` (http://127.0.0.1:4943, dfx's replica) or a URL.
    #[arg(long, global = true, env = "CANVAULT_NETWORK", default_value = "ic")]
    pub network: String,
    /// PEM file of the identity to call as, e.g. ~/.config/dfx/identity/default/identity.pem
    /// (anonymous without one).
    #[arg(long, global = true, env = "CANVAULT_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Runs canvault end to end on an in-process IC (no network): deploy, fill, back up,
    /// change, back up again, delete the app, restore elsewhere, verify, report.
    Demo(DemoArgs),
    /// Create a vault, or show its status.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Manage a canvault factory: upload vault versions, show its status (admins).
    #[command(subcommand)]
    Factory(FactoryCommand),
    /// List, download, upload, verify, export and import snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Start a backup of an app canister now, or show its backup status.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Let a vault back up a canister that does not embed the kit (heap, Motoko...):
    /// shows what the vault will be allowed to do, and grants it with --yes.
    Protect(ProtectArgs),
    /// Fork a whole-canister snapshot onto a fresh canister on a chosen subnet: the
    /// factory creates it (paid from your cycles wallet, which must be an owner of the
    /// vault), then the vault loads the snapshot into it and verifies it.
    Fork(ForkArgs),
    /// Restore a snapshot into an app canister that embeds the canvault kit (you must be a
    /// controller of the target and an owner of the vault).
    Restore(RestoreArgs),
}

/// `canvault demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Size of the app's data, in MiB.
    #[arg(long, default_value_t = 256)]
    pub size_mib: u64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Seed of the generated content.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The vault to talk to.
#[derive(Args, Debug, Clone)]
pub struct VaultArg {
    /// The vault canister.
    #[arg(long, env = "CANVAULT_VAULT")]
    pub vault: Principal,
}

/// `canvault vault ...`.
#[derive(Subcommand, Debug, Clone)]
#[allow(clippy::large_enum_variant)] // parsed once per run
pub enum VaultCommand {
    /// Create a vault for an app through a canvault factory, paid from a cycles wallet
    /// (the dfx wallet's `wallet_call128`: ingress messages cannot carry cycles).
    Create(CreateArgs),
    /// Show a vault's gauges.
    Status(VaultArg),
}

/// `canvault vault create`.
#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// The factory canister.
    #[arg(long, env = "CANVAULT_FACTORY")]
    pub factory: Principal,
    /// The cycles wallet that pays (you must be its controller); see `dfx identity get-wallet`.
    #[arg(long)]
    pub wallet: Principal,
    /// The app canister the vault backs up (it becomes the vault's writer).
    #[arg(long)]
    pub app: Principal,
    /// Create it on this subnet (default: any default subnet other than --avoid-subnet).
    #[arg(long)]
    pub subnet: Option<Principal>,
    /// Keep the vault off this subnet (pass the app's subnet).
    #[arg(long, conflicts_with = "subnet")]
    pub avoid_subnet: Option<Principal>,
    /// Owners (repeat; default: the caller of the factory, i.e. the wallet).
    #[arg(long = "owner")]
    pub owners: Vec<Principal>,
    /// Readers (repeat).
    #[arg(long = "reader")]
    pub readers: Vec<Principal>,
    /// The vault's starting balance, in cycles.
    #[arg(long, default_value_t = 1_000_000_000_000)]
    pub initial_cycles: u128,
    /// Cycles attached for the factory's fees on top of the starting balance (default:
    /// the `fixed_cost` the factory's `status` reports).
    #[arg(long)]
    pub fee_cycles: Option<u128>,
    /// Let the factory upgrade this vault with fleet upgrades (it stays a controller).
    #[arg(long)]
    pub managed_upgrades: bool,
}

/// The factory to talk to.
#[derive(Args, Debug, Clone)]
pub struct FactoryArg {
    /// The factory canister.
    #[arg(long, env = "CANVAULT_FACTORY")]
    pub factory: Principal,
}

/// `canvault factory ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum FactoryCommand {
    /// Upload a vault module (target/wasm32-unknown-unknown/canister/canvault_vault.wasm)
    /// as a new version; new vaults get it unless --keep-current.
    UploadVersion {
        /// The factory.
        #[command(flatten)]
        factory: FactoryArg,
        /// The vault module.
        #[arg(long)]
        wasm: PathBuf,
        /// Its label, e.g. the release "0.1.0".
        #[arg(long)]
        label: String,
        /// Store it without making it the version new vaults get.
        #[arg(long)]
        keep_current: bool,
    },
    /// Show the factory's versions, fees, quotas and balance.
    Status(FactoryArg),
}

/// `canvault snapshot ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum SnapshotCommand {
    /// List a vault's snapshots.
    List {
        /// The vault.
        #[command(flatten)]
        vault: VaultArg,
        /// Only snapshots of this source canister.
        #[arg(long)]
        source: Option<Principal>,
    },
    /// Download a snapshot into a file: verified chunk by chunk and by its root; run it
    /// again to resume an interrupted download.
    Download {
        /// The snapshot id.
        id: u64,
        /// The vault.
        #[command(flatten)]
        vault: VaultArg,
        /// The file to write.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Upload a snapshot file into a vault as a new snapshot (owners).
    Upload {
        /// The snapshot file.
        file: PathBuf,
        /// The vault.
        #[command(flatten)]
        vault: VaultArg,
        /// Record it as a snapshot of this canister (default: the file's source).
        #[arg(long)]
        source: Option<Principal>,
        /// A label.
        #[arg(long)]
        label: Option<String>,
    },
    /// Verify a snapshot file offline: every chunk and the image root.
    Verify {
        /// The snapshot file.
        file: PathBuf,
    },
    /// Export a snapshot file to the platform's snapshot directory layout
    /// (`icp`/`dfx canister snapshot download`): metadata.json and stable_memory.bin.
    Export {
        /// The snapshot file.
        file: PathBuf,
        /// The directory to write.
        #[arg(long)]
        dir: PathBuf,
        /// How the image is laid out in stable_memory.bin.
        #[arg(long, value_enum, default_value = "raw")]
        layout: Layout,
    },
    /// Import a platform snapshot directory (its stable memory) into a snapshot file.
    Import {
        /// The directory (metadata.json, stable_memory.bin).
        dir: PathBuf,
        /// The snapshot file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// The canister the snapshot is of (default: from an exported canvault.json).
        #[arg(long)]
        source: Option<Principal>,
        /// How the image is laid out in stable_memory.bin.
        #[arg(long, value_enum, default_value = "raw")]
        layout: Layout,
        /// Chunk size in bytes (default: an exported snapshot's, else the kit's 65536);
        /// the image root depends on it.
        #[arg(long)]
        chunk_size: Option<u32>,
    },
}

/// The app canister to talk to.
#[derive(Args, Debug, Clone)]
pub struct AppArg {
    /// The app canister (it embeds the canvault kit).
    #[arg(long, env = "CANVAULT_APP")]
    pub app: Principal,
}

/// `canvault backup ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum BackupCommand {
    /// Freeze the app's image and back it up now; waits for the end unless --no-wait.
    Now {
        /// The app.
        #[command(flatten)]
        app: AppArg,
        /// Return once the backup started.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
    /// Show the app's backup and restore status.
    Status(AppArg),
    /// Copy a whole canister (module, heap, stable memory, chunk store) into the vault
    /// through a native snapshot; it need not embed the kit (see `canvault protect`).
    Canister(BackupCanisterArgs),
}

/// How a whole-canister backup gets its native snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsistencyArg {
    /// Stop the canister, snapshot it, start it: a consistent image, a short downtime.
    Stop,
    /// Snapshot it while it runs: no downtime; calls it awaits are in flight.
    Running,
}

/// `canvault backup canister`.
#[derive(Args, Debug, Clone)]
pub struct BackupCanisterArgs {
    /// The canister to copy.
    pub canister: Principal,
    /// The vault (a controller of the canister, or an allowed snapshot viewer with --snapshot).
    #[command(flatten)]
    pub vault: VaultArg,
    /// How to take the native snapshot (the vault must be a controller).
    #[arg(long, value_enum, default_value = "stop")]
    pub consistency: ConsistencyArg,
    /// Copy this native snapshot you took yourself (hex id, as `icp canister snapshot
    /// list` shows it); the vault only reads it and leaves it in place.
    #[arg(long)]
    pub snapshot: Option<String>,
    /// A label for the vault's catalogue.
    #[arg(long)]
    pub label: Option<String>,
    /// Return once the backup started.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
}

/// `canvault fork`.
#[derive(Args, Debug, Clone)]
pub struct ForkArgs {
    /// The whole-canister snapshot id.
    pub id: u64,
    /// The vault holding it.
    #[command(flatten)]
    pub vault: VaultArg,
    /// The factory that creates the fresh canister.
    #[arg(long, env = "CANVAULT_FACTORY")]
    pub factory: Principal,
    /// The cycles wallet that pays (an owner of the vault); it and the vault become the
    /// fork's controllers.
    #[arg(long)]
    pub wallet: Principal,
    /// Create it on this subnet (default: any default subnet other than --avoid-subnet).
    #[arg(long)]
    pub subnet: Option<Principal>,
    /// Keep the fork off this subnet.
    #[arg(long, conflicts_with = "subnet")]
    pub avoid_subnet: Option<Principal>,
    /// The fork's starting balance, in cycles (it pays for the uploaded snapshot and the load).
    #[arg(long, default_value_t = 1_000_000_000_000)]
    pub initial_cycles: u128,
    /// Cycles attached for the factory's fees (default: its `fixed_cost`).
    #[arg(long)]
    pub fee_cycles: Option<u128>,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
}

/// `canvault protect`.
#[derive(Args, Debug, Clone)]
pub struct ProtectArgs {
    /// The canister to protect (you must be its controller).
    pub canister: Principal,
    /// The vault that will back it up.
    #[command(flatten)]
    pub vault: VaultArg,
    /// Least privilege: do not make the vault a controller, only let it read the
    /// snapshots you take (`snapshot_visibility`).
    #[arg(long)]
    pub viewer: bool,
    /// Back it up whole every this many seconds (at least 600), stopping it around the
    /// snapshot unless --running (needs the vault as a controller, not --viewer).
    #[arg(long, conflicts_with = "viewer")]
    pub every: Option<u64>,
    /// Scheduled backups snapshot it while it runs (no downtime).
    #[arg(long, requires = "every")]
    pub running: bool,
    /// Apply the change (without it, only show what would change).
    #[arg(long)]
    pub yes: bool,
}

/// `canvault restore`.
#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    /// The snapshot id.
    pub id: u64,
    /// The vault.
    #[command(flatten)]
    pub vault: VaultArg,
    /// The target canister: for a kit image, the same app or a fresh canister running the
    /// app's module; for a whole-canister snapshot, any canister the vault controls (its
    /// module, memories and metadata are replaced).
    #[arg(long)]
    pub to: Principal,
    /// Return once the restore started.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
}
