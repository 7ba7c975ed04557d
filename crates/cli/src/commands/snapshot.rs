//! `canvault snapshot list | download | upload | verify | export | import`.

use std::fmt::Write as _;
use std::path::Path;

use candid::Principal;
use canvault_protocol::vault_api::{SnapshotInfo, SnapshotState};

use super::{human_bytes, utc};
use crate::client::VaultClient;
use crate::error::CliResult;
use crate::native::{self, Layout};
use crate::progress::ProgressMode;
use crate::transport::Transport;
use crate::{download, upload, verify as verify_file};

fn state(s: &SnapshotState) -> String {
    match s {
        SnapshotState::InProgress => "in progress".into(),
        SnapshotState::Complete => "complete".into(),
        SnapshotState::Failed { reason } => format!("failed: {reason}"),
    }
}

/// The snapshot table.
#[must_use]
pub fn render_list(vault: Principal, snapshots: &[SnapshotInfo]) -> String {
    if snapshots.is_empty() {
        return format!("vault {vault} holds no snapshots\n");
    }
    let mut s = format!(
        "{:>5}  {:<11}  {:<23}  {:>10}  {:>7}  {:>10}  {:>6}  {:<14}  {:<27}  {}\n",
        "id", "state", "taken", "size", "chunks", "new data", "parent", "kind", "source", "label"
    );
    for i in snapshots {
        let _ = writeln!(
            s,
            "{:>5}  {:<11}  {:<23}  {:>10}  {:>7}  {:>10}  {:>6}  {:<14}  {:<27}  {}",
            i.id,
            state(&i.state),
            utc(i.created_at_ns),
            human_bytes(i.image_size),
            i.chunk_count,
            human_bytes(i.new_bytes),
            i.parent.map_or_else(|| "-".into(), |p| p.to_string()),
            if super::canister::is_whole_canister(i) {
                "whole canister"
            } else {
                "kit image"
            },
            i.source.to_text(),
            i.label.as_deref().unwrap_or("")
        );
    }
    s
}

/// `snapshot list`.
///
/// # Errors
/// Not a reader or owner; network; not a vault.
pub fn list(t: &dyn Transport, vault: Principal, source: Option<Principal>) -> CliResult<String> {
    let snapshots = VaultClient::new(t, vault).list_snapshots(source)?;
    Ok(render_list(vault, &snapshots))
}

/// `snapshot download`.
///
/// # Errors
/// See [`download::download`].
pub fn download(
    t: &dyn Transport,
    vault: Principal,
    id: u64,
    output: &Path,
    progress: ProgressMode,
) -> CliResult<String> {
    let r = download::download(&VaultClient::new(t, vault), id, output, progress)?;
    let resumed = if r.resumed_from > 0 {
        format!(" (resumed after {} chunks already on disk)", r.resumed_from)
    } else {
        String::new()
    };
    Ok(format!(
        "downloaded snapshot {id} of {} from vault {vault} into {}{resumed}\n  {} chunks fetched ({} of chunk data, {} zero chunks), file {}\n  every chunk and the image root {} verified\n",
        r.snapshot.source,
        r.path.display(),
        r.fetched,
        human_bytes(r.bytes_fetched),
        r.zero_chunks,
        human_bytes(r.file_bytes),
        r.snapshot.root.map(|h| h.to_hex()).unwrap_or_default(),
    ))
}

/// `snapshot upload`.
///
/// # Errors
/// See [`upload::upload`].
pub fn upload(
    t: &dyn Transport,
    vault: Principal,
    file: &Path,
    source: Option<Principal>,
    label: Option<String>,
    progress: ProgressMode,
) -> CliResult<String> {
    let r = upload::upload(&VaultClient::new(t, vault), file, source, label, progress)?;
    let resumed = if r.resumed_chunks > 0 {
        format!(
            ", resumed after {} chunks already recorded",
            r.resumed_chunks
        )
    } else {
        String::new()
    };
    Ok(format!(
        "uploaded {} into vault {vault} as snapshot {} of {} ({}, {} calls, {} sent, {} chunks already stored in the vault{resumed}); the vault verified every chunk and the root {}\n",
        file.display(),
        r.snapshot.id,
        r.snapshot.source,
        state(&r.snapshot.state),
        r.batches,
        human_bytes(r.bytes_sent),
        r.deduplicated_chunks,
        r.snapshot.root.map(|h| h.to_hex()).unwrap_or_default(),
    ))
}

/// `snapshot verify`.
///
/// # Errors
/// See [`verify_file::verify`].
pub fn verify(file: &Path, progress: ProgressMode) -> CliResult<String> {
    let r = verify_file::verify(file, progress)?;
    let m = &r.meta;
    let ratio = if r.encoded_bytes > 0 {
        r.data_bytes as f64 / r.encoded_bytes as f64
    } else {
        1.0
    };
    Ok(format!(
        "{}: OK\n  source {}{}\n  taken {}\n  image {} in {} chunks of {} ({} with data, {} zero), stored as {} (compression {ratio:.2}x)\n  root {}\n",
        file.display(),
        m.source,
        match (&m.vault, m.snapshot_id) {
            (Some(v), Some(id)) => format!(", snapshot {id} of vault {v}"),
            _ => String::new(),
        },
        utc(m.created_at_ns),
        human_bytes(m.image_size),
        m.chunk_count,
        human_bytes(u64::from(m.chunk_size)),
        r.data_chunks,
        r.zero_chunks,
        human_bytes(r.encoded_bytes),
        m.root,
    ))
}

/// `snapshot export`.
///
/// # Errors
/// See [`native::export`].
pub fn export(
    file: &Path,
    dir: &Path,
    layout: Layout,
    progress: ProgressMode,
) -> CliResult<String> {
    let r = native::export(file, dir, layout, progress)?;
    if r.whole_canister {
        return Ok(format!(
            "exported the whole-canister snapshot {} to {}: metadata.json, wasm_module.bin, wasm_memory.bin, stable_memory.bin ({}), wasm_chunk_store/\n  load it into a canister with `icp canister snapshot upload` and `icp canister snapshot restore`\n",
            file.display(),
            dir.display(),
            human_bytes(r.stable_memory_bytes),
        ));
    }
    Ok(format!(
        "exported {} to {} (metadata.json, stable_memory.bin of {}, {:?} layout)\n  carried: the stable memory; not carried: the wasm module, heap, globals and timers\n",
        file.display(),
        dir.display(),
        human_bytes(r.stable_memory_bytes),
        layout,
    ))
}

/// `snapshot import`.
///
/// # Errors
/// See [`native::import`].
pub fn import(
    dir: &Path,
    output: &Path,
    source: Option<Principal>,
    layout: Layout,
    chunk_size: Option<u32>,
) -> CliResult<String> {
    let r = native::import(dir, output, source, layout, chunk_size)?;
    if r.whole_canister {
        return Ok(format!(
            "imported the whole native snapshot {} into {}: an image of {} for {}, root {}\n",
            dir.display(),
            output.display(),
            human_bytes(r.meta.image_size),
            r.meta.source,
            r.meta.root,
        ));
    }
    Ok(format!(
        "imported {} ({} of stable memory, {:?} layout) into {}: an image of {} for {}, root {}\n  upload it with `canvault snapshot upload {} --vault <vault>`\n",
        dir.display(),
        human_bytes(r.stable_memory_bytes),
        layout,
        output.display(),
        human_bytes(r.meta.image_size),
        r.meta.source,
        r.meta.root,
        output.display(),
    ))
}
