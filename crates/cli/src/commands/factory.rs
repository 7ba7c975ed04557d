//! `canvault factory upload-version | status`: the factory admin's side.

use std::path::Path;

use candid::Principal;
use candid::utils::ArgumentEncoder;
use canvault_factory_api::{
    BeginUploadRequest, FactoryError, FactoryStatus, MAX_UPLOAD_CHUNK_BYTES, UploadChunkRequest,
    UploadProgress, VersionInfo,
};
use canvault_protocol::Hash256;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

use super::{human_bytes, human_cycles, utc};
use crate::client::call_plain;
use crate::error::{CliError, CliResult};
use crate::progress::ProgressMode;
use crate::transport::Transport;

/// A factory call whose reply is `Result<T, FactoryError>`.
fn call<A: ArgumentEncoder, T: candid::CandidType + DeserializeOwned>(
    t: &dyn Transport,
    factory: Principal,
    method: &str,
    args: A,
) -> CliResult<T> {
    let r: Result<T, FactoryError> = call_plain(t, factory, true, method, args, "factory")?;
    r.map_err(|e| match e {
        FactoryError::Unauthorized { caller, .. } => CliError::NotAllowed {
            canister: factory,
            method: method.to_string(),
            caller,
            message: "only the factory's admins may manage vault versions".into(),
        },
        other => CliError::Rejected {
            canister: factory,
            method: method.to_string(),
            message: other.to_string(),
        },
    })
}

/// Uploads a vault module to the factory in 1 MiB chunks; with `activate`, new vaults
/// get it from now on.
///
/// # Errors
/// Not an admin; the module is unreadable, too large or already uploaded.
pub fn upload_version(
    t: &dyn Transport,
    factory: Principal,
    wasm: &Path,
    label: &str,
    activate: bool,
    progress: ProgressMode,
) -> CliResult<VersionInfo> {
    let module = std::fs::read(wasm).map_err(|e| CliError::io("read", wasm, &e))?;
    let begin = BeginUploadRequest {
        label: label.to_string(),
        sha256: Hash256::of(&module),
        size: module.len() as u64,
    };
    let mut up: UploadProgress = call(t, factory, "begin_version_upload", (begin,))?;
    let bar = progress.bytes(module.len() as u64, "upload");
    for piece in module.chunks(MAX_UPLOAD_CHUNK_BYTES) {
        let req = UploadChunkRequest {
            upload_id: up.upload_id,
            offset: up.received,
            bytes: ByteBuf::from(piece.to_vec()),
        };
        up = call(t, factory, "upload_version_chunk", (req,))?;
        bar.set_position(up.received);
    }
    bar.finish_and_clear();
    let version: VersionInfo = call(t, factory, "commit_version_upload", (up.upload_id,))?;
    if activate {
        return call(t, factory, "set_current_version", (version.hash,));
    }
    Ok(version)
}

/// `factory upload-version`.
///
/// # Errors
/// See [`upload_version`].
pub fn upload(
    t: &dyn Transport,
    factory: Principal,
    wasm: &Path,
    label: &str,
    activate: bool,
    progress: ProgressMode,
) -> CliResult<String> {
    let v = upload_version(t, factory, wasm, label, activate, progress)?;
    Ok(format!(
        "uploaded vault version {} ({}, {} chunks, sha256 {}) to factory {factory}{}\n",
        v.label,
        human_bytes(v.size),
        v.chunks,
        v.hash,
        if v.current {
            "; new vaults get it from now on"
        } else {
            ""
        }
    ))
}

/// `factory status`.
///
/// # Errors
/// Network; not a factory.
pub fn status(t: &dyn Transport, factory: Principal) -> CliResult<String> {
    let s: FactoryStatus = call_plain(t, factory, false, "status", (), "factory")?;
    Ok(format!(
        "factory {factory}\n  current vault version: {}\n  versions stored: {}; vaults registered: {}; deployments open: {}\n  a vault costs {} + its starting balance (creation {}, service {}; at least {} to start)\n  quotas: {} vaults per principal, {} creations per day\n  cycles: {}\n",
        s.current_version.as_ref().map_or_else(
            || "none (upload one with `canvault factory upload-version`)".into(),
            |v| format!(
                "{} ({}, uploaded {})",
                v.label,
                v.hash,
                utc(v.uploaded_at_ns)
            )
        ),
        s.versions,
        s.vaults,
        s.open_deployments,
        human_cycles(s.fixed_cost),
        human_cycles(s.creation_fee),
        human_cycles(s.config.service_fee),
        human_cycles(s.config.min_initial_cycles),
        s.config.quotas.max_vaults_per_principal,
        s.config.quotas.max_creations_per_day,
        human_cycles(s.cycles),
    ))
}
