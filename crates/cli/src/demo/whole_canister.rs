//! The demo's second half: a canister that does NOT embed the kit (tests/heap-app keeps
//! its state in a `RefCell<BTreeMap>` on the heap) is protected, copied whole into the
//! vault through a native snapshot, deleted, and forked (`canvault fork`: the factory
//! creates a fresh canister on a third subnet, the vault loads the copy into it); the
//! fork answers exactly as the original did.

use std::io::Write;

use candid::{Encode, Principal};
use canvault_protocol::canister_image::{CanisterBackupRequest, Consistency};
use serde::Serialize;
use serde_bytes::ByteBuf;

use super::setup::World;
use super::{MIB, WAIT, say};
use crate::cli::{ForkArgs, ProtectArgs, VaultArg};
use crate::client::{VaultClient, call_plain};
use crate::commands::{canister, human_bytes};
use crate::error::{CliError, CliResult};
use crate::progress::ProgressMode;
use crate::transport::Transport;

/// Bytes per value the heap app stores.
const VALUE_BYTES: u32 = 4096;
/// Values per `fill` call (16 MiB: far below the instruction limit).
const VALUES_PER_CALL: u32 = 4096;

/// The whole-canister part of the report.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct WholeCanisterReport {
    /// The heap app (deleted after the backup).
    pub app: Principal,
    /// The fork on subnet C.
    pub fork: Principal,
    /// Heap data the app held (values only).
    pub heap_data_bytes: u64,
    /// The whole-canister image (module, heap, stable memory, chunk store, header).
    pub image_bytes: u64,
    /// Bytes the vault read from the app's native snapshot.
    pub bytes_read: u64,
    /// Bytes the restore uploaded into the fork.
    pub bytes_uploaded: u64,
    /// Rounds the backup took (stop, snapshot, start, read).
    pub backup_rounds: u64,
    /// Rounds the fork took (upload, load, read back, start).
    pub fork_rounds: u64,
    /// The fork answers every query as the original did (digest of every entry, the
    /// write counter, sample values).
    pub fork_answers_identical: bool,
}

type Answers = ((u64, u64, ByteBuf), u64, Vec<Option<ByteBuf>>);

/// Entries, value bytes and the digests of every page of 64 entries, read page by page
/// so that each query stays under the query instruction limit whatever the heap's size.
fn digest_pages(w: &World, app: Principal) -> CliResult<(u64, u64, ByteBuf)> {
    let (mut entries, mut bytes, mut pages) = (0u64, 0u64, Vec::new());
    let mut from = Some(0u64);
    while let Some(start) = from {
        let arg = Encode!(&start, &64u32).map_err(|e| CliError::Usage(e.to_string()))?;
        let reply = w
            .t
            .query(app, "digest_page", arg)
            .map_err(|e| CliError::from_transport(e, app, "digest_page", w.t.caller(), "demo"))?;
        let (n, b, d, next): (u64, u64, ByteBuf, Option<u64>) =
            candid::decode_args(&reply).map_err(|e| CliError::Usage(e.to_string()))?;
        entries += n;
        bytes += b;
        pages.extend_from_slice(&d);
        from = next;
    }
    Ok((entries, bytes, ByteBuf::from(pages)))
}

fn answers(w: &World, app: Principal, calls: u32) -> CliResult<Answers> {
    let digest = digest_pages(w, app)?;
    let writes: u64 = call_plain(&w.t, app, false, "writes", (), "heap app")?;
    let mut samples = Vec::new();
    for seed in 0..u64::from(calls) {
        let key = (seed << 32) | u64::from(VALUES_PER_CALL - 1);
        samples.push(call_plain(&w.t, app, false, "get", (key,), "heap app")?);
    }
    Ok((digest, writes, samples))
}

/// Runs the whole-canister part with `mib` MiB of heap data, into `vault`.
///
/// # Errors
/// A step failed.
pub fn run(
    w: &mut World,
    vault: Principal,
    mib: u64,
    progress: ProgressMode,
    out: &mut dyn Write,
) -> CliResult<WholeCanisterReport> {
    let [subnet_a, _, subnet_c] = w.subnets;
    say(
        out,
        "\na canister that does not embed the kit: whole-canister backup and fork",
    )?;
    let clock = w.clock();
    let app = w.deploy_heap_app(subnet_a)?;
    let calls = u32::try_from((mib * MIB).div_ceil(u64::from(VALUE_BYTES * VALUES_PER_CALL)))
        .unwrap_or(1)
        .max(1);
    for seed in 0..u64::from(calls) {
        let arg = Encode!(&seed, &VALUES_PER_CALL, &VALUE_BYTES)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        w.t.update(app, "fill", arg)
            .map_err(|e| CliError::from_transport(e, app, "fill", w.t.caller(), "demo"))?;
    }
    let heap_data_bytes = u64::from(calls) * u64::from(VALUES_PER_CALL * VALUE_BYTES);
    w.end_phase(clock, "deploy and fill the heap app");
    say(
        out,
        &format!(
            "  heap app {app} on subnet A: {} of values in a RefCell<BTreeMap>, no stable memory, no kit",
            human_bytes(heap_data_bytes)
        ),
    )?;

    let protect = canister::protect(
        &w.t,
        &ProtectArgs {
            canister: app,
            vault: VaultArg { vault },
            viewer: false,
            every: None,
            running: false,
            yes: true,
        },
    )?;
    for line in protect.lines().filter(|l| l.starts_with("done")) {
        say(out, &format!("  protect: {line}"))?;
    }

    let clock = w.clock();
    let job = canister::backup_job(
        &w.t,
        vault,
        CanisterBackupRequest {
            canister: app,
            consistency: Consistency::StopTakeStart,
            label: Some("demo: heap app".into()),
        },
        true,
        WAIT,
        progress,
    )?;
    let backup_rounds = w.clock().rounds - clock.rounds;
    w.end_phase(clock, "whole-canister backup (A -> B)");
    let snapshot = job
        .snapshot_id
        .ok_or_else(|| CliError::Usage("the canister backup names no snapshot".into()))?;
    let info = VaultClient::new(&w.t, vault).get_snapshot(snapshot)?;
    say(
        out,
        &format!(
            "  whole-canister backup: snapshot {snapshot}, image {}, {} read (stop, snapshot, start, read)",
            human_bytes(info.image_size),
            human_bytes(job.bytes)
        ),
    )?;

    let before = answers(w, app, calls)?;
    let clock = w.clock();
    w.delete(app)?;
    w.end_phase(clock, "delete the heap app");
    let clock = w.clock();
    let (created, restored) = canister::fork_job(
        &w.t,
        &ForkArgs {
            id: snapshot,
            vault: VaultArg { vault },
            factory: w.factory,
            wallet: w.wallet,
            subnet: Some(subnet_c),
            avoid_subnet: None,
            initial_cycles: 1_000_000_000_000,
            fee_cycles: None,
            timeout: WAIT.as_secs(),
        },
        progress,
    )?;
    let fork = created.canister_id;
    w.track(fork);
    let fork_rounds = w.clock().rounds - clock.rounds;
    w.end_phase(clock, "fork (B -> C): factory, upload, load, verify");
    let fork_answers_identical = answers(w, fork, calls)? == before;
    say(
        out,
        &format!(
            "  deleted {app}; `canvault fork`: the factory created {fork} on subnet C, the vault uploaded {}, loaded it, read it back and compared it with the stored root",
            human_bytes(restored.bytes)
        ),
    )?;
    Ok(WholeCanisterReport {
        app,
        fork,
        heap_data_bytes,
        image_bytes: info.image_size,
        bytes_read: job.bytes,
        bytes_uploaded: restored.bytes,
        backup_rounds,
        fork_rounds,
        fork_answers_identical,
    })
}
