//! The canister-job state machine against a small model of the management canister's
//! snapshot methods (one canister, whole parts), with faults injected per method.

use std::collections::BTreeMap;

use candid::Principal;
use canvault_protocol::canister_image::Consistency;
use ic_management_canister_types::{
    CanisterStatusType, CanisterTimer, ChunkHash, ReadCanisterSnapshotMetadataResult,
    SnapshotDataKind, SnapshotDataOffset,
};
use ic_stable_structures::VectorMemory;

use super::*;
use crate::backup::tests::{owner, unlimited, vault};
use crate::restore_job::Failure;

const MIB: usize = 1 << 20;

#[derive(Clone, Debug, Default, PartialEq)]
struct Image {
    module: Vec<u8>,
    heap: Vec<u8>,
    stable: Vec<u8>,
    chunks: Vec<Vec<u8>>,
    certified: Vec<u8>,
}

/// Canisters (by principal) with a state, a running flag and native snapshots.
#[derive(Default)]
struct Ic {
    state: BTreeMap<Principal, Image>,
    running: BTreeMap<Principal, bool>,
    /// A status `canister_status` reports instead of the running flag's (`Stopping`).
    status: BTreeMap<Principal, CanisterStatusType>,
    snapshots: BTreeMap<Vec<u8>, (Principal, Image)>,
    next: u8,
    /// Method name → failures still to inject.
    faults: BTreeMap<&'static str, (u32, Failure)>,
    /// Replies to lose (the call acts, the vault sees a retryable failure).
    lose: BTreeMap<&'static str, u32>,
    /// A load flips one heap byte (a platform that loads something else).
    corrupt_load: bool,
}

impl Ic {
    fn fault(&mut self, method: &'static str) -> Option<Failure> {
        let (n, f) = self.faults.get_mut(method)?;
        if *n == 0 {
            return None;
        }
        *n -= 1;
        Some(f.clone())
    }

    fn lost(&mut self, method: &'static str) -> bool {
        self.lose.get_mut(method).is_some_and(|n| {
            let hit = *n > 0;
            *n = n.saturating_sub(1);
            hit
        })
    }

    fn new_snapshot(&mut self, canister: Principal, image: Image) -> ByteBuf {
        self.next += 1;
        let id = vec![self.next; 9];
        self.snapshots.insert(id.clone(), (canister, image));
        ByteBuf::from(id)
    }

    fn list(&self, canister: Principal) -> Vec<ByteBuf> {
        self.snapshots
            .iter()
            .filter(|(_, (c, _))| *c == canister)
            .map(|(id, _)| ByteBuf::from(id.clone()))
            .collect()
    }

    fn call(&mut self, step: Step) -> Outcome {
        let acked = |f: Option<Failure>| f.map_or(Outcome::Acked, Outcome::Failed);
        match step {
            Step::Status(c) => match self.fault("status") {
                Some(f) => Outcome::Failed(f),
                None => Outcome::Status(self.status.get(&c).copied().unwrap_or(
                    if self.running.get(&c) == Some(&false) {
                        CanisterStatusType::Stopped
                    } else {
                        CanisterStatusType::Running
                    },
                )),
            },
            Step::Stop(c) => {
                self.status.remove(&c);
                let f = self.fault("stop");
                if f.is_none() {
                    self.running.insert(c, false);
                }
                acked(f)
            }
            Step::Start(c) => {
                let f = self.fault("start");
                if f.is_none() {
                    self.running.insert(c, true);
                }
                acked(f)
            }
            Step::Take { canister, known } => {
                let listed = self.list(canister);
                if let Some(k) = &known
                    && let Some(new) = listed.iter().find(|id| !k.contains(id))
                {
                    return Outcome::Created(new.clone());
                }
                if let Some(failure) = self.fault("take") {
                    return Outcome::NotCreated {
                        known: known.unwrap_or(listed),
                        failure,
                    };
                }
                let image = self.state[&canister].clone();
                let id = self.new_snapshot(canister, image);
                if self.lost("take") {
                    return Outcome::NotCreated {
                        known: known.unwrap_or(listed),
                        failure: Failure::Retry("lost".into()),
                    };
                }
                Outcome::Created(id)
            }
            Step::UploadMetadata { known, args } => {
                let canister = args.canister_id;
                let listed = self.list(canister);
                if let Some(k) = &known
                    && let Some(new) = listed.iter().find(|id| !k.contains(id))
                {
                    return Outcome::Created(new.clone());
                }
                let image = Image {
                    module: vec![0; args.wasm_module_size as usize],
                    heap: vec![0; args.wasm_memory_size as usize],
                    stable: vec![0; args.stable_memory_size as usize],
                    chunks: Vec::new(),
                    certified: args.certified_data,
                };
                Outcome::Created(self.new_snapshot(canister, image))
            }
            Step::ReadMetadata { snapshot, .. } => {
                if let Some(f) = self.fault("metadata") {
                    return Outcome::Failed(f);
                }
                let (_, s) = &self.snapshots[snapshot.as_slice()];
                let m = ReadCanisterSnapshotMetadataResult {
                    source: None,
                    taken_at_timestamp: 7,
                    wasm_module_size: s.module.len() as u64,
                    globals: vec![],
                    wasm_memory_size: s.heap.len() as u64,
                    stable_memory_size: s.stable.len() as u64,
                    wasm_chunk_store: s
                        .chunks
                        .iter()
                        .map(|c| ChunkHash { hash: Hash::of(c) })
                        .collect(),
                    canister_version: 3,
                    certified_data: s.certified.clone(),
                    global_timer: Some(CanisterTimer::Inactive),
                    on_low_wasm_memory_hook_status: None,
                };
                Outcome::Metadata(ByteBuf::from(candid::encode_one(m).expect("encode")))
            }
            Step::Read {
                snapshot, kinds, ..
            } => {
                let mut out = Vec::new();
                for kind in kinds {
                    if let Some(f) = self.fault("read") {
                        out.push(Err(f));
                        continue;
                    }
                    let (_, s) = &self.snapshots[snapshot.as_slice()];
                    let cut = |b: &[u8], o: u64, n: u64| b[o as usize..(o + n) as usize].to_vec();
                    out.push(Ok(ByteBuf::from(match kind {
                        SnapshotDataKind::WasmModule { offset, size } => {
                            cut(&s.module, offset, size)
                        }
                        SnapshotDataKind::WasmMemory { offset, size } => cut(&s.heap, offset, size),
                        SnapshotDataKind::StableMemory { offset, size } => {
                            cut(&s.stable, offset, size)
                        }
                        SnapshotDataKind::WasmChunk { hash } => s
                            .chunks
                            .iter()
                            .find(|c| Hash::of(c) == hash)
                            .expect("chunk")
                            .clone(),
                    })));
                }
                Outcome::Read(out)
            }
            Step::Upload(uploads) => Outcome::Uploaded(
                uploads
                    .into_iter()
                    .map(|u| {
                        let Some(u) = u else { return Ok(()) };
                        let (_, s) = self.snapshots.get_mut(&u.snapshot_id).expect("uploaded");
                        let put = |b: &mut Vec<u8>, o: u64| {
                            b[o as usize..o as usize + u.chunk.len()].copy_from_slice(&u.chunk);
                        };
                        match u.kind {
                            SnapshotDataOffset::WasmModule { offset } => put(&mut s.module, offset),
                            SnapshotDataOffset::WasmMemory { offset } => put(&mut s.heap, offset),
                            SnapshotDataOffset::StableMemory { offset } => {
                                put(&mut s.stable, offset);
                            }
                            SnapshotDataOffset::WasmChunk => s.chunks.push(u.chunk.clone()),
                        }
                        Ok(())
                    })
                    .collect(),
            ),
            Step::Load { canister, snapshot } => {
                let (_, mut s) = self.snapshots[snapshot.as_slice()].clone();
                if self.corrupt_load {
                    s.heap[MIB + 1] ^= 1;
                }
                self.state.insert(canister, s);
                Outcome::Acked
            }
            Step::Delete { snapshot, .. } => {
                if let Some(f) = self.fault("delete") {
                    return Outcome::Failed(f);
                }
                self.snapshots.remove(snapshot.as_slice());
                Outcome::Acked
            }
        }
    }
}

struct Hash;
impl Hash {
    fn of(b: &[u8]) -> Vec<u8> {
        canvault_protocol::Hash256::of(b).0.to_vec()
    }
}

fn app() -> Principal {
    Principal::from_slice(&[9; 10])
}

fn fork() -> Principal {
    Principal::from_slice(&[8; 10])
}

fn sample() -> Image {
    let pattern = |n: usize, k: u8| (0..n).map(|i| (i as u8).wrapping_mul(k)).collect();
    Image {
        module: pattern(MIB + 100, 7),
        heap: pattern(3 * MIB, 13),
        stable: vec![0; 2 * MIB],
        chunks: vec![pattern(1000, 3)],
        certified: vec![1, 2, 3],
    }
}

fn ic() -> Ic {
    let mut ic = Ic::default();
    ic.state.insert(app(), sample());
    ic.running.insert(app(), true);
    ic.state.insert(fork(), Image::default());
    ic.running.insert(fork(), true);
    ic
}

/// Runs job `id` to its end (retries without waiting); returns its final state.
fn drive(v: &mut Vault<VectorMemory>, ic: &mut Ic, id: u64) -> CanisterJobState {
    for _ in 0..500 {
        match v.canister_step(id, 3, 1, &unlimited) {
            Plan::Over => return v.canister_jobs.map.get(&id).expect("job").job.state,
            Plan::Later(_) => {}
            Plan::Call(step) => {
                let outcome = ic.call(step);
                v.canister_record(id, outcome, 1);
            }
        }
    }
    panic!("job {id} did not end")
}

fn backup(v: &mut Vault<VectorMemory>, consistency: Consistency) -> u64 {
    let req = CanisterBackupRequest {
        canister: app(),
        consistency,
        label: Some("whole".into()),
    };
    v.backup_canister(req, owner().principal, 0)
        .expect("backup")
        .id
}

#[test]
fn a_backup_then_a_fork_copies_every_part_and_leaves_no_native_snapshot() {
    let mut v = vault();
    let mut ic = ic();
    let id = backup(&mut v, Consistency::StopTakeStart);
    assert_eq!(drive(&mut v, &mut ic, id), CanisterJobState::Done);
    assert!(ic.snapshots.is_empty() && ic.running[&app()]);
    let job = v.canister_job(id, true).expect("job");
    let info = v
        .get_snapshot(job.snapshot_id.expect("snapshot"))
        .expect("info");
    assert_eq!(info.state, SnapshotState::Complete);
    assert!(matches!(info.kind, Some(SnapshotKind::WholeCanister(_))));

    let req = RestoreCanisterRequest {
        snapshot_id: info.id,
        target: fork(),
    };
    let restore = v
        .restore_canister(req, owner().principal, 2)
        .expect("restore")
        .id;
    assert_eq!(drive(&mut v, &mut ic, restore), CanisterJobState::Done);
    assert_eq!(ic.state[&fork()], sample());
    assert!(ic.snapshots.is_empty() && ic.running[&fork()]);
}

#[test]
fn a_second_backup_of_the_same_state_stores_no_new_chunk() {
    let mut v = vault();
    let mut ic = ic();
    let first = backup(&mut v, Consistency::Running);
    drive(&mut v, &mut ic, first);
    let stored = v.store.encoded_bytes();
    let second = backup(&mut v, Consistency::Running);
    assert_eq!(drive(&mut v, &mut ic, second), CanisterJobState::Done);
    assert_eq!(v.store.encoded_bytes(), stored);
}

#[test]
fn a_permanent_failure_at_any_step_starts_the_app_and_deletes_its_snapshot() {
    for method in ["stop", "take", "metadata", "read"] {
        let mut v = vault();
        let mut ic = ic();
        ic.faults
            .insert(method, (1, Failure::Permanent(format!("{method} refused"))));
        let id = backup(&mut v, Consistency::StopTakeStart);
        let state = drive(&mut v, &mut ic, id);
        assert!(
            matches!(&state, CanisterJobState::Failed { reason } if reason.contains(method)),
            "{method}: {state:?}"
        );
        assert!(ic.snapshots.is_empty(), "{method}: snapshot leaked");
        assert!(ic.running[&app()], "{method}: app left stopped");
        assert!(v.pinned(0).is_empty());
        let snap = v.canister_job(id, true).expect("job").snapshot_id;
        if let Some(s) = snap {
            assert!(matches!(
                v.get_snapshot(s).expect("kept").state,
                SnapshotState::Failed { .. }
            ));
        }
    }
}

#[test]
fn retryable_failures_and_a_lost_take_reply_still_end_with_one_copy() {
    let mut v = vault();
    let mut ic = ic();
    ic.lose.insert("take", 1);
    for method in ["stop", "metadata", "read", "delete", "start"] {
        ic.faults.insert(method, (2, Failure::Retry("busy".into())));
    }
    let id = backup(&mut v, Consistency::StopTakeStart);
    assert_eq!(drive(&mut v, &mut ic, id), CanisterJobState::Done);
    assert!(
        ic.snapshots.is_empty(),
        "the lost take's snapshot was adopted"
    );
    assert!(ic.running[&app()]);
    assert!(v.canister_job(id, true).expect("job").retries >= 10);
}

#[test]
fn a_restore_refuses_kit_images_and_a_busy_target() {
    let mut v = vault();
    let kit = crate::backup::tests::backup(
        &mut v,
        crate::backup::tests::writer(0),
        &crate::backup::tests::image(2, 1),
        1,
    );
    let req = RestoreCanisterRequest {
        snapshot_id: kit,
        target: fork(),
    };
    assert!(matches!(
        v.restore_canister(req, owner().principal, 0),
        Err(VaultError::InvalidRequest(_))
    ));
    backup(&mut v, Consistency::Running);
    let again = CanisterBackupRequest {
        canister: app(),
        consistency: Consistency::Running,
        label: None,
    };
    assert!(matches!(
        v.backup_canister(again, owner().principal, 0),
        Err(VaultError::InvalidRequest(_))
    ));
}

#[test]
fn a_refused_start_or_delete_is_retried_so_the_app_ends_running_and_clean() {
    for method in ["start", "delete"] {
        let mut v = vault();
        let mut ic = ic();
        ic.faults
            .insert(method, (3, Failure::Permanent(format!("{method} refused"))));
        let id = backup(&mut v, Consistency::StopTakeStart);
        assert_eq!(
            drive(&mut v, &mut ic, id),
            CanisterJobState::Done,
            "{method}"
        );
        assert!(ic.snapshots.is_empty() && ic.running[&app()], "{method}");
    }
}

#[test]
fn retention_keeps_whole_canister_snapshots_and_kit_images_as_separate_groups() {
    use canvault_protocol::vault_api::RetentionPolicy;
    let mut v = vault();
    let mut ic = ic();
    let writer = crate::backup::tests::writer(0);
    // The app is also a kit source: its kit images and whole copies share a source.
    let image = ic.state.remove(&app()).expect("app");
    ic.state.insert(writer.principal, image);
    ic.running.insert(writer.principal, true);
    let img = crate::backup::tests::image(2, 3);
    let kits: Vec<u64> = (1..=2)
        .map(|n| crate::backup::tests::backup(&mut v, writer, &img, n))
        .collect();
    let mut wholes = Vec::new();
    for _ in 0..2 {
        let req = CanisterBackupRequest {
            canister: writer.principal,
            consistency: Consistency::Running,
            label: None,
        };
        let id = v
            .backup_canister(req, owner().principal, 0)
            .expect("job")
            .id;
        assert_eq!(drive(&mut v, &mut ic, id), CanisterJobState::Done);
        wholes.push(
            v.canister_job(id, true)
                .expect("job")
                .snapshot_id
                .expect("id"),
        );
    }
    v.set_retention(RetentionPolicy {
        keep_last: 1,
        keep_daily: 0,
        keep_weekly: 0,
    });
    let pass = v.apply_retention(1, &unlimited);
    assert_eq!(pass.deleted, vec![kits[0], wholes[0]]);
    let left: Vec<u64> = v.list_snapshots(None).iter().map(|i| i.id).collect();
    assert_eq!(left, vec![kits[1], wholes[1]]);
}

#[test]
fn a_restore_whose_loaded_state_differs_fails_its_verification() {
    let mut v = vault();
    let mut ic = ic();
    let id = backup(&mut v, Consistency::Running);
    drive(&mut v, &mut ic, id);
    let snapshot_id = v
        .canister_job(id, true)
        .expect("job")
        .snapshot_id
        .expect("id");
    ic.corrupt_load = true;
    let req = RestoreCanisterRequest {
        snapshot_id,
        target: fork(),
    };
    let restore = v
        .restore_canister(req, owner().principal, 2)
        .expect("job")
        .id;
    let state = drive(&mut v, &mut ic, restore);
    assert!(
        matches!(&state, CanisterJobState::Failed { reason } if reason.contains("verification")),
        "{state:?}"
    );
    assert!(ic.snapshots.is_empty() && ic.running[&fork()]);
}

#[test]
fn reading_the_owners_snapshot_never_stops_the_app_nor_deletes_the_snapshot() {
    let mut v = vault();
    let mut ic = ic();
    let image = ic.state[&app()].clone();
    let theirs = ic.new_snapshot(app(), image);
    let req = CanisterBackupRequest {
        canister: app(),
        consistency: Consistency::ReadOwnerSnapshot {
            snapshot_id: theirs.clone(),
        },
        label: None,
    };
    let id = v
        .backup_canister(req, owner().principal, 0)
        .expect("job")
        .id;
    ic.faults
        .insert("stop", (1, Failure::Permanent("no stop".into())));
    assert_eq!(drive(&mut v, &mut ic, id), CanisterJobState::Done);
    assert_eq!(ic.list(app()), vec![theirs], "the owner's snapshot stays");
    assert_eq!(ic.faults["stop"].0, 1, "never stopped");
    let too_long = CanisterBackupRequest {
        canister: fork(),
        consistency: Consistency::ReadOwnerSnapshot {
            snapshot_id: ByteBuf::from(vec![0; 65]),
        },
        label: None,
    };
    assert!(v.backup_canister(too_long, owner().principal, 0).is_err());
}

#[test]
fn a_job_leaves_its_canister_stopped_when_it_found_it_stopped_or_stopping() {
    for found in [CanisterStatusType::Stopped, CanisterStatusType::Stopping] {
        let mut v = vault();
        let mut ic = ic();
        ic.running.insert(app(), false);
        if found == CanisterStatusType::Stopping {
            ic.status.insert(app(), found);
        }
        let id = backup(&mut v, Consistency::StopTakeStart);
        assert_eq!(drive(&mut v, &mut ic, id), CanisterJobState::Done);
        assert_eq!(
            ic.running.get(&app()),
            Some(&false),
            "{found:?}: left stopped"
        );
        assert_eq!(
            v.canister_jobs.map.get(&id).expect("job").found,
            Some(found)
        );
        let snapshot = v
            .canister_job(id, true)
            .expect("job")
            .snapshot_id
            .expect("id");
        // A restore into a stopped target leaves it stopped; into a running one, running.
        for target_running in [false, true] {
            ic.running.insert(fork(), target_running);
            let req = RestoreCanisterRequest {
                snapshot_id: snapshot,
                target: fork(),
            };
            let job = v
                .restore_canister(req, owner().principal, 0)
                .expect("restore");
            assert_eq!(drive(&mut v, &mut ic, job.id), CanisterJobState::Done);
            assert_eq!(ic.running.get(&fork()), Some(&target_running));
            assert_eq!(ic.state.get(&fork()), ic.state.get(&app()));
        }
    }
    // A running app is stopped for the take and started again.
    let mut v = vault();
    let mut ic = ic();
    let id = backup(&mut v, Consistency::StopTakeStart);
    assert_eq!(drive(&mut v, &mut ic, id), CanisterJobState::Done);
    assert_eq!(ic.running.get(&app()), Some(&true));
    // A failed status read fails the job before anything was stopped.
    let mut ic = self::ic();
    ic.faults
        .insert("status", (1, Failure::Permanent("not a controller".into())));
    let id = backup(&mut v, Consistency::StopTakeStart);
    assert!(matches!(
        drive(&mut v, &mut ic, id),
        CanisterJobState::Failed { .. }
    ));
    assert_eq!(ic.running.get(&app()), Some(&true));
}
