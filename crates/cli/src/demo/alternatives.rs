//! Today's alternatives to canvault, run on real wasm in the in-process IC on the same
//! image bytes canvault backs up, each producing a copy on another subnet:
//!
//! 1. **manual native snapshots** (the `icp`/`dfx canister snapshot download` / `upload`
//!    path): stop, take, start, read the snapshot in 2,000,000-byte slices, upload it by
//!    ingress into a canister on another subnet, load, start;
//! 2. **Distrikt-style**: the app serialises its heap into stable memory in
//!    `pre_upgrade` (stop, upgrade, start), an operator streams stable memory out with
//!    paged queries, uploads the pages by ingress into a canister on another subnet and
//!    upgrades it so `post_upgrade` loads the state;
//! 3. **naive push**: the app sends every byte once, uncompressed, in 2,000,000-byte
//!    inter-canister calls ([`PUSH_WINDOW`] in flight) to a receiver on another subnet
//!    that writes it to stable memory.
//!
//! The app is `tests/alt-app` holding the image on its heap. Every path ends by
//! comparing the SHA-256 of the copy with the original's, page by page, and fails with
//! [`CliError::Integrity`] otherwise. Cycles are split by payer: the app, the receiving
//! side (target, receiver, vault), and the operator (the ingress fees of the operator's
//! messages, which the canister they address pays).

use candid::Principal;
use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use ic_harness::{CanisterId, CyclesBurned, Harness};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterInstallMode, DeleteCanisterSnapshotArgs, InstallCodeArgs,
    LoadCanisterSnapshotArgs, ReadCanisterSnapshotDataArgs, ReadCanisterSnapshotDataResult,
    ReadCanisterSnapshotMetadataArgs, ReadCanisterSnapshotMetadataResult, Snapshot,
    SnapshotDataKind, SnapshotDataOffset, TakeCanisterSnapshotArgs, UploadCanisterSnapshotDataArgs,
    UploadCanisterSnapshotMetadataArgs, UploadCanisterSnapshotMetadataResult,
};
use serde::Serialize;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::error::{CliError, CliResult};

/// The alternatives' test canister (`tests/alt-app`), by crate name.
pub const ALT_APP: &str = "alt_app";
/// The platform's largest snapshot slice, used by every alternative for its transfers.
pub const SLICE: u64 = 2_000_000;
/// Calls the naive push keeps in flight.
pub const PUSH_WINDOW: u32 = 8;
/// Where alt-app keeps the image in stable memory (after its 64-byte header).
const IMAGE_AT: u64 = 64;
/// Bytes per digest query (well under the query instruction limit).
const DIGEST_PAGE: u64 = 16 << 20;
/// Longest any path may take, in rounds.
const MAX_ROUNDS: u64 = 200_000;

/// What one path cost, by payer, and what it verifies.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct PathCost {
    /// The path.
    pub path: String,
    /// Cycles the app canister paid (its ingress fees excluded).
    pub app_cycles: u128,
    /// Cycles the receiving side paid (vault, receiver or target; ingress excluded).
    pub receiver_cycles: u128,
    /// Cycles of the operator's ingress messages (paid by the canisters they address).
    pub operator_cycles: u128,
    /// All of them.
    pub total_cycles: u128,
    /// Bytes transferred (between canisters, to and from the operator), each time.
    pub bytes_moved: u64,
    /// Rounds from the first step to the last (about a second each).
    pub rounds: u64,
    /// Rounds the app was stopped or not answering.
    pub downtime_rounds: u64,
    /// Ingress messages the operator sends.
    pub operator_steps: u64,
    /// Queries the operator sends (free).
    pub operator_queries: u64,
    /// What the path itself checks.
    pub verifies: String,
}

impl PathCost {
    /// The sum of two paths run one after the other (named `path`).
    #[must_use]
    pub fn then(&self, next: &Self, path: &str) -> Self {
        Self {
            path: path.to_string(),
            app_cycles: self.app_cycles + next.app_cycles,
            receiver_cycles: self.receiver_cycles + next.receiver_cycles,
            operator_cycles: self.operator_cycles + next.operator_cycles,
            total_cycles: self.total_cycles + next.total_cycles,
            bytes_moved: self.bytes_moved + next.bytes_moved,
            rounds: self.rounds + next.rounds,
            downtime_rounds: self.downtime_rounds + next.downtime_rounds,
            operator_steps: self.operator_steps + next.operator_steps,
            operator_queries: self.operator_queries + next.operator_queries,
            verifies: self.verifies.clone(),
        }
    }
}

/// Cycles and rounds from a starting point, split into the app's and the receiving side's.
pub struct Meter {
    rounds: u64,
    app: Vec<(CanisterId, CyclesBurned)>,
    receivers: Vec<(CanisterId, CyclesBurned)>,
}

impl Meter {
    /// Starts measuring `app` and `receivers` (canisters that exist now).
    #[must_use]
    pub fn start(ic: &Harness, app: &[CanisterId], receivers: &[CanisterId]) -> Self {
        let at = |ids: &[CanisterId]| {
            ids.iter()
                .map(|id| (*id, ic.metrics(*id).cycles_burned))
                .collect()
        };
        Self {
            rounds: ic.rounds(),
            app: at(app),
            receivers: at(receivers),
        }
    }

    /// The cost so far, with `path` and `verifies`; the caller fills in bytes, downtime
    /// and steps.
    #[must_use]
    pub fn cost(&self, ic: &Harness, path: &str, verifies: &str) -> PathCost {
        let delta = |from: &[(CanisterId, CyclesBurned)]| {
            from.iter()
                .fold((0u128, 0u128), |(paid, ingress), (id, was)| {
                    let now = ic.metrics(*id).cycles_burned;
                    let total = now.total().saturating_sub(was.total());
                    let ing = now.ingress.saturating_sub(was.ingress);
                    (paid + total - ing, ingress + ing)
                })
        };
        let (app_cycles, app_ingress) = delta(&self.app);
        let (receiver_cycles, receiver_ingress) = delta(&self.receivers);
        let operator_cycles = app_ingress + receiver_ingress;
        PathCost {
            path: path.to_string(),
            app_cycles,
            receiver_cycles,
            operator_cycles,
            total_cycles: app_cycles + receiver_cycles + operator_cycles,
            rounds: ic.rounds() - self.rounds,
            verifies: verifies.to_string(),
            ..PathCost::default()
        }
    }
}

/// The operator at the keyboard: every update is an ingress message (counted).
pub struct Operator<'a> {
    /// The IC.
    pub ic: &'a mut Harness,
    /// Who the operator is (controller of every canister involved).
    pub me: Principal,
    /// Ingress messages sent.
    pub steps: u64,
    /// Queries sent.
    pub queries: u64,
}

fn rejected(canister: Principal, method: &str, e: &impl std::fmt::Display) -> CliError {
    CliError::Rejected {
        canister,
        method: method.to_string(),
        message: e.to_string(),
    }
}

impl<'a> Operator<'a> {
    /// The operator `me` on `ic`.
    pub fn new(ic: &'a mut Harness, me: Principal) -> Self {
        Self {
            ic,
            me,
            steps: 0,
            queries: 0,
        }
    }

    /// An ingress update.
    ///
    /// # Errors
    /// The call was rejected or its reply did not decode.
    pub fn update<A: ArgumentEncoder, R: for<'de> ArgumentDecoder<'de>>(
        &mut self,
        canister: Principal,
        method: &str,
        args: A,
    ) -> CliResult<R> {
        self.steps += 1;
        self.ic
            .update_candid(canister, self.me, method, args)
            .map_err(|e| rejected(canister, method, &e))
    }

    /// A query.
    ///
    /// # Errors
    /// The query was rejected or its reply did not decode.
    pub fn query<A: ArgumentEncoder, R: for<'de> ArgumentDecoder<'de>>(
        &mut self,
        canister: Principal,
        method: &str,
        args: A,
    ) -> CliResult<R> {
        self.queries += 1;
        self.ic
            .query_candid(canister, self.me, method, args)
            .map_err(|e| rejected(canister, method, &e))
    }

    /// An ingress call to the management canister.
    ///
    /// # Errors
    /// The management canister refused.
    pub fn management<
        A: candid::CandidType,
        R: candid::CandidType + for<'de> candid::Deserialize<'de>,
    >(
        &mut self,
        method: &str,
        arg: A,
    ) -> CliResult<R> {
        let (r,): (R,) = self.update(Principal::management_canister(), method, (arg,))?;
        Ok(r)
    }

    fn install(
        &mut self,
        canister: CanisterId,
        mode: CanisterInstallMode,
        wasm: &[u8],
    ) -> CliResult<()> {
        self.management(
            "install_code",
            InstallCodeArgs {
                mode,
                canister_id: canister,
                wasm_module: wasm.to_vec(),
                arg: candid::encode_args(()).unwrap_or_default(),
                sender_canister_version: None,
            },
        )
    }

    fn stop(&mut self, canister: CanisterId) -> CliResult<()> {
        self.management(
            "stop_canister",
            CanisterIdRecord {
                canister_id: canister,
            },
        )
    }

    fn start(&mut self, canister: CanisterId) -> CliResult<()> {
        self.management(
            "start_canister",
            CanisterIdRecord {
                canister_id: canister,
            },
        )
    }
}

/// Installs alt-app on `subnet` under `operator` and loads `image` onto its heap (not
/// part of any measurement).
///
/// # Errors
/// An install or a load was refused.
pub fn install_alt_app(
    ic: &mut Harness,
    operator: Principal,
    subnet: Principal,
    wasm: &[u8],
    image: &[u8],
) -> CliResult<CanisterId> {
    let id = ic.create_canister_on_subnet(Some(operator), None, subnet);
    let mut op = Operator::new(ic, operator);
    op.install(id, CanisterInstallMode::Install, wasm)?;
    let () = op.update(id, "reserve", (image.len() as u64,))?;
    for (i, slice) in image.chunks(SLICE as usize).enumerate() {
        let () = op.update(id, "load", (i as u64 * SLICE, ByteBuf::from(slice)))?;
    }
    Ok(id)
}

/// Checks that `canister` holds `image` (on its heap, or in stable memory with
/// `stable`), page by page.
///
/// # Errors
/// A query failed; [`CliError::Integrity`] when any page differs.
pub fn verify_copy(
    ic: &mut Harness,
    operator: Principal,
    canister: CanisterId,
    image: &[u8],
    stable: bool,
    path: &str,
) -> CliResult<()> {
    let mut op = Operator::new(ic, operator);
    let method = if stable { "stable_digest" } else { "digest" };
    let mut pages = image.chunks(DIGEST_PAGE as usize).enumerate().peekable();
    if pages.peek().is_none() {
        return Err(CliError::Integrity(format!("{path}: the image is empty")));
    }
    for (i, page) in pages {
        let (d,): (ByteBuf,) = op.query(canister, method, (i as u64 * DIGEST_PAGE, DIGEST_PAGE))?;
        if d.as_slice() != Sha256::digest(page).as_slice() {
            return Err(CliError::Integrity(format!(
                "{path}: the copy in {canister} differs from the original at bytes {}..",
                i as u64 * DIGEST_PAGE
            )));
        }
    }
    if !stable {
        let (len,): (u64,) = op.query(canister, "image_len", ())?;
        if len != image.len() as u64 {
            return Err(CliError::Integrity(format!(
                "{path}: the copy holds {len} bytes, the original {}",
                image.len()
            )));
        }
    }
    Ok(())
}

fn running(ic: &mut Harness, canister: CanisterId, operator: Principal) -> bool {
    ic.canister_status(canister, Some(operator))
        .is_ok_and(|s| s.status == ic_management_canister_types::CanisterStatusType::Running)
}

/// The manual path from `app` to the empty canister `target`, every step an operator
/// ingress message. Verifies nothing: the caller compares the copy.
///
/// # Errors
/// A step was refused; the app has a wasm chunk store (not copied here).
pub fn manual_snapshots(
    ic: &mut Harness,
    operator: Principal,
    app: CanisterId,
    target: CanisterId,
) -> CliResult<PathCost> {
    let meter = Meter::start(ic, &[app], &[target]);
    let mut op = Operator::new(ic, operator);
    let before_stop = op.ic.rounds();
    op.stop(app)?;
    let snapshot: Snapshot = op.management(
        "take_canister_snapshot",
        TakeCanisterSnapshotArgs {
            canister_id: app,
            replace_snapshot: None,
            uninstall_code: None,
            sender_canister_version: None,
        },
    )?;
    op.start(app)?;
    let downtime_rounds = op.ic.rounds() - before_stop;
    let meta: ReadCanisterSnapshotMetadataResult = op.management(
        "read_canister_snapshot_metadata",
        ReadCanisterSnapshotMetadataArgs {
            canister_id: app,
            snapshot_id: snapshot.id.clone(),
        },
    )?;
    if !meta.wasm_chunk_store.is_empty() {
        return Err(CliError::Usage(
            "the manual path here copies no wasm chunk store".into(),
        ));
    }
    let mut parts: Vec<(u8, Vec<u8>)> = Vec::new();
    for (which, size) in [
        (0, meta.wasm_module_size),
        (1, meta.wasm_memory_size),
        (2, meta.stable_memory_size),
    ] {
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        let mut offset = 0;
        while offset < size {
            let len = SLICE.min(size - offset);
            let kind = match which {
                0 => SnapshotDataKind::WasmModule { offset, size: len },
                1 => SnapshotDataKind::WasmMemory { offset, size: len },
                _ => SnapshotDataKind::StableMemory { offset, size: len },
            };
            let r: ReadCanisterSnapshotDataResult = op.management(
                "read_canister_snapshot_data",
                ReadCanisterSnapshotDataArgs {
                    canister_id: app,
                    snapshot_id: snapshot.id.clone(),
                    kind,
                },
            )?;
            bytes.extend_from_slice(&r.chunk);
            offset += len;
        }
        parts.push((which, bytes));
    }
    let () = op.management(
        "delete_canister_snapshot",
        DeleteCanisterSnapshotArgs {
            canister_id: app,
            snapshot_id: snapshot.id,
        },
    )?;
    let uploaded: UploadCanisterSnapshotMetadataResult = op.management(
        "upload_canister_snapshot_metadata",
        UploadCanisterSnapshotMetadataArgs {
            canister_id: target,
            replace_snapshot: None,
            wasm_module_size: meta.wasm_module_size,
            globals: meta.globals.iter().flatten().cloned().collect(),
            wasm_memory_size: meta.wasm_memory_size,
            stable_memory_size: meta.stable_memory_size,
            certified_data: meta.certified_data.clone(),
            global_timer: meta.global_timer.clone(),
            on_low_wasm_memory_hook_status: meta.on_low_wasm_memory_hook_status.clone(),
        },
    )?;
    let mut bytes = 0;
    for (which, data) in &parts {
        for (i, slice) in data.chunks(SLICE as usize).enumerate() {
            let offset = i as u64 * SLICE;
            let kind = match which {
                0 => SnapshotDataOffset::WasmModule { offset },
                1 => SnapshotDataOffset::WasmMemory { offset },
                _ => SnapshotDataOffset::StableMemory { offset },
            };
            let () = op.management(
                "upload_canister_snapshot_data",
                UploadCanisterSnapshotDataArgs {
                    canister_id: target,
                    snapshot_id: uploaded.snapshot_id.clone(),
                    kind,
                    chunk: slice.to_vec(),
                },
            )?;
            bytes += slice.len() as u64;
        }
    }
    let () = op.management(
        "load_canister_snapshot",
        LoadCanisterSnapshotArgs {
            canister_id: target,
            snapshot_id: uploaded.snapshot_id,
            sender_canister_version: None,
        },
    )?;
    op.start(target)?;
    let (steps, queries) = (op.steps, op.queries);
    Ok(PathCost {
        bytes_moved: 2 * bytes,
        downtime_rounds,
        operator_steps: steps,
        operator_queries: queries,
        ..meter.cost(ic, "manual native snapshots (icp/dfx)", "none")
    })
}

/// The Distrikt-style path from alt-app `app` to the empty canister `target`: stop,
/// upgrade (serialise in `pre_upgrade`), start; stream stable memory out with queries;
/// install alt-app on `target`, upload the pages by ingress, upgrade it to load them.
///
/// # Errors
/// A step was refused.
pub fn distrikt(
    ic: &mut Harness,
    operator: Principal,
    app: CanisterId,
    target: CanisterId,
    wasm: &[u8],
) -> CliResult<PathCost> {
    let meter = Meter::start(ic, &[app], &[target]);
    let mut op = Operator::new(ic, operator);
    let before_stop = op.ic.rounds();
    op.stop(app)?;
    op.install(app, CanisterInstallMode::Upgrade(None), wasm)?;
    op.start(app)?;
    let downtime_rounds = op.ic.rounds() - before_stop;
    let (image_len,): (u64,) = op.query(app, "image_len", ())?;
    let total = IMAGE_AT + image_len;
    op.install(target, CanisterInstallMode::Install, wasm)?;
    let mut offset = 0;
    while offset < total {
        let (page,): (ByteBuf,) =
            op.query(app, "stable_read", (offset, SLICE.min(total - offset)))?;
        if page.is_empty() {
            return Err(CliError::Integrity(format!(
                "stable memory of {app} ends at {offset}"
            )));
        }
        let len = page.len() as u64;
        let () = op.update(target, "stable_write", (offset, page))?;
        offset += len;
    }
    op.install(target, CanisterInstallMode::Upgrade(None), wasm)?;
    let (steps, queries) = (op.steps, op.queries);
    Ok(PathCost {
        bytes_moved: 2 * total,
        downtime_rounds,
        operator_steps: steps,
        operator_queries: queries,
        ..meter.cost(
            ic,
            "Distrikt-style: pre_upgrade + paged stable reads + upload",
            "none",
        )
    })
}

/// The naive push from alt-app `app` into the empty canister `receiver`: install
/// alt-app there, allow `app` to push, push and wait.
///
/// # Errors
/// A step was refused; a push call failed; the push did not end in time.
pub fn naive_push(
    ic: &mut Harness,
    operator: Principal,
    app: CanisterId,
    receiver: CanisterId,
    wasm: &[u8],
) -> CliResult<PathCost> {
    let meter = Meter::start(ic, &[app], &[receiver]);
    let sent_before = ic.metrics(app).bytes_sent;
    let mut op = Operator::new(ic, operator);
    op.install(receiver, CanisterInstallMode::Install, wasm)?;
    let () = op.update(receiver, "allow_sender", (app,))?;
    let () = op.update(app, "push", (receiver, SLICE, PUSH_WINDOW))?;
    let mut down = 0;
    let started = op.ic.rounds();
    loop {
        let (_, _, failure, finished): (u64, u64, Option<String>, bool) = op
            .ic
            .query_candid(app, operator, "push_status", ())
            .map_err(|e| rejected(app, "push_status", &e))?;
        if let Some(f) = failure {
            return Err(CliError::Integrity(format!("naive push: {f}")));
        }
        if finished {
            break;
        }
        if op.ic.rounds() - started > MAX_ROUNDS {
            return Err(CliError::Usage("naive push: did not end".into()));
        }
        op.ic.tick();
        if !running(op.ic, app, operator) {
            down += 1;
        }
    }
    let (steps, queries) = (op.steps, op.queries);
    Ok(PathCost {
        bytes_moved: ic.metrics(app).bytes_sent - sent_before,
        downtime_rounds: down,
        operator_steps: steps,
        operator_queries: queries,
        ..meter.cost(ic, "naive push: 2,000,000-byte calls, uncompressed", "none")
    })
}

/// Runs the three alternatives on `image`, each from a fresh alt-app on `source` to a
/// fresh canister on `destination`, and verifies every copy.
///
/// # Errors
/// A step failed; [`CliError::Integrity`] when a copy differs from `image`.
pub fn run_all(
    ic: &mut Harness,
    operator: Principal,
    (source, destination): (Principal, Principal),
    wasm: &[u8],
    image: &[u8],
) -> CliResult<Vec<PathCost>> {
    let mut out = Vec::new();
    for which in 0..3 {
        let app = install_alt_app(ic, operator, source, wasm, image)?;
        verify_copy(ic, operator, app, image, false, "alt-app")?;
        let target = ic.create_canister_on_subnet(Some(operator), None, destination);
        let (cost, stable) = match which {
            0 => (manual_snapshots(ic, operator, app, target)?, false),
            1 => (distrikt(ic, operator, app, target, wasm)?, false),
            _ => (naive_push(ic, operator, app, target, wasm)?, true),
        };
        verify_copy(ic, operator, target, image, stable, &cost.path)?;
        out.push(cost);
    }
    Ok(out)
}
