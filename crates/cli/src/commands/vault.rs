//! `canvault vault create | status`.

use candid::{CandidType, Deserialize, Principal};
use canvault_factory_api::{
    CreateVaultRequest, CreateVaultResponse, FactoryError, FactoryStatus, SubnetChoice, VaultKind,
};
use serde_bytes::ByteBuf;

use super::{human_bytes, human_cycles, utc};
use crate::cli::CreateArgs;
use crate::client::{VaultClient, call_plain};
use crate::error::{CliError, CliResult};
use crate::transport::Transport;

/// The dfx cycles wallet's `wallet_call128` argument.
#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct WalletCall128 {
    /// The callee.
    pub canister: Principal,
    /// Its method.
    pub method_name: String,
    /// The candid-encoded argument.
    pub args: ByteBuf,
    /// Cycles to attach.
    pub cycles: candid::Nat,
}

/// The callee's raw reply, as the wallet returns it.
#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct WalletCallReply {
    /// The reply bytes.
    #[serde(rename = "return")]
    pub reply: ByteBuf,
}

/// Calls `target.method(arg)` through `wallet` with `cycles` attached; returns the raw reply.
///
/// # Errors
/// The wallet's or the callee's refusal, as every call.
pub fn wallet_call(
    t: &dyn Transport,
    wallet: Principal,
    target: Principal,
    method: &str,
    arg: Vec<u8>,
    cycles: u128,
) -> CliResult<Vec<u8>> {
    let req = WalletCall128 {
        canister: target,
        method_name: method.to_string(),
        args: ByteBuf::from(arg),
        cycles: candid::Nat::from(cycles),
    };
    let r: Result<WalletCallReply, String> = call_plain(
        t,
        wallet,
        true,
        "wallet_call128",
        (req,),
        "cycles wallet (dfx's wallet_call128)",
    )?;
    r.map(|r| r.reply.into_vec()).map_err(|message| {
        let lower = message.to_lowercase();
        if lower.contains("cycles")
            && (lower.contains("insufficient") || lower.contains("not enough"))
        {
            CliError::OutOfCycles {
                canister: wallet,
                method: format!("{method} on {target}"),
                message,
            }
        } else {
            CliError::Rejected {
                canister: target,
                method: format!("{method} (through wallet {wallet})"),
                message,
            }
        }
    })
}

fn factory_error(e: FactoryError, factory: Principal, wallet: Principal) -> CliError {
    match e {
        FactoryError::Unauthorized { caller, needed } => CliError::NotAllowed {
            canister: factory,
            method: "create_vault".into(),
            caller,
            message: format!("the factory requires the {needed:?} permission"),
        },
        FactoryError::InsufficientCycles { attached, required } => CliError::OutOfCycles {
            canister: wallet,
            method: "create_vault".into(),
            message: format!(
                "{} attached but the factory needs {}; raise --fee-cycles or --initial-cycles",
                human_cycles(attached),
                human_cycles(required)
            ),
        },
        other => CliError::Rejected {
            canister: factory,
            method: "create_vault".into(),
            message: other.to_string(),
        },
    }
}

/// `vault create`: asks the factory for an app vault, paid by the wallet.
///
/// # Errors
/// The wallet or the factory refused; too few cycles; a quota.
pub fn create(t: &dyn Transport, args: &CreateArgs) -> CliResult<String> {
    let subnet = match (args.subnet, args.avoid_subnet) {
        (Some(subnet), _) => SubnetChoice::Subnet { subnet },
        (None, avoid) => SubnetChoice::Default { avoid },
    };
    let req = CreateVaultRequest {
        kind: VaultKind::App { app: args.app },
        owners: args.owners.clone(),
        writers: Vec::new(),
        readers: args.readers.clone(),
        retention: None,
        subnet,
        initial_cycles: args.initial_cycles,
        managed_upgrades: args.managed_upgrades,
    };
    let arg = candid::encode_one(&req).map_err(|e| CliError::Usage(e.to_string()))?;
    let fee = match args.fee_cycles {
        Some(fee) => fee,
        None => {
            call_plain::<_, FactoryStatus>(t, args.factory, false, "status", (), "factory")?
                .fixed_cost
        }
    };
    let cycles = args.initial_cycles.saturating_add(fee);
    let reply = wallet_call(t, args.wallet, args.factory, "create_vault", arg, cycles)?;
    let r: Result<CreateVaultResponse, FactoryError> =
        candid::decode_one(&reply).map_err(|e| CliError::BadReply {
            canister: args.factory,
            method: "create_vault".into(),
            kind: "factory",
            message: e.to_string(),
        })?;
    let r = r.map_err(|e| factory_error(e, args.factory, args.wallet))?;
    let v = &r.vault;
    let list = |ps: &[Principal]| {
        ps.iter()
            .map(Principal::to_text)
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(format!(
        "created vault {} (deployment {}) for app {}\n  subnet {}\n  owners {}\n  writers {}\n  controllers {}\n  next: configure the app's kit: canvault_configure(record {{ vault = opt principal \"{}\" }})\n",
        v.canister_id,
        r.deployment_id,
        args.app,
        v.subnet.map_or_else(
            || "chosen by the cycles minting canister".into(),
            |s| s.to_text()
        ),
        list(&v.owners),
        list(&v.writers),
        list(&v.controllers),
        v.canister_id,
    ))
}

/// `vault status`.
///
/// # Errors
/// No role in the vault; network; not a vault.
pub fn status(t: &dyn Transport, vault: Principal) -> CliResult<String> {
    let s = VaultClient::new(t, vault).status()?;
    let (in_progress, complete, failed) = s.snapshots;
    Ok(format!(
        "vault {vault} (version {})\n  snapshots: {complete} complete, {in_progress} in progress, {failed} failed\n  last complete: {}\n  chunks: {} distinct, {} stored; stable memory {}\n  retention: keep last {}, daily {}, weekly {}\n  restores running: {}\n  canister jobs running: {}, canisters scheduled: {}\n  cycles: {}\n",
        s.version,
        s.last_complete_at_ns.map_or_else(|| "never".into(), utc),
        s.chunks,
        human_bytes(s.chunk_bytes),
        human_bytes(s.stable_memory_bytes),
        s.retention.keep_last,
        s.retention.keep_daily,
        s.retention.keep_weekly,
        s.active_restores,
        s.active_canister_jobs
            .map_or_else(|| "-".into(), |n| n.to_string()),
        s.scheduled_canisters
            .map_or_else(|| "-".into(), |n| n.to_string()),
        human_cycles(s.cycles),
    ))
}
