//! Model-based property tests of the vault's state machine: random sequences of begin
//! (with or without a parent), put, commit, abort, delete, retention, download leases
//! and budgeted table work, run against the vault on `VectorMemory` and against a
//! plain in-memory model, with every invariant checked after every step (in the style
//! of ic-stable-structures' B-tree proptests). Small budgets make every table-sized
//! operation run over several steps.

use std::collections::{BTreeMap, BTreeSet};

use canvault_protocol::Hash256;
use canvault_protocol::chunk::zero_hash;
use canvault_protocol::merkle::image_root;
use canvault_protocol::vault_api::{
    BeginSnapshotRequest, ChunkPut, CommitSnapshotRequest, PutChunksRequest, RetentionPolicy,
    SnapshotState, VaultError,
};
use ic_stable_structures::VectorMemory;
use proptest::prelude::*;

use crate::backup::tests::{CS, assert_refcounts, steps, unlimited, vault, writer};
use crate::vault::{Platform, Vault};

const HOUR_NS: u64 = 3_600 * 1_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    /// Writer `w` begins an image of `chunks` chunks, from its newest complete snapshot
    /// if `incremental`.
    Begin {
        w: u8,
        chunks: u32,
        incremental: bool,
    },
    /// Puts chunk `index` (modulo the count) of the `nth` open snapshot: content `seed`
    /// (0: zero chunk).
    Put { nth: usize, index: u32, seed: u8 },
    /// Fills every missing index of the `nth` open snapshot, then commits it.
    Commit { nth: usize, budget: u32 },
    /// Aborts the `nth` open snapshot.
    Abort { nth: usize },
    /// Deletes the `nth` listed snapshot.
    Delete { nth: usize, budget: u32 },
    /// Leases the `nth` listed snapshot.
    Lease { nth: usize },
    /// Advances time and runs a retention pass.
    Retention { hours: u64, budget: u32 },
    /// One step of table work.
    Collect { budget: u32 },
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..2, 1u32..12, any::<bool>()).prop_map(|(w, chunks, incremental)| Op::Begin {
            w,
            chunks,
            incremental
        }),
        (0usize..4, 0u32..12, 0u8..6).prop_map(|(nth, index, seed)| Op::Put { nth, index, seed }),
        (0usize..4, 2u32..8).prop_map(|(nth, budget)| Op::Commit { nth, budget }),
        (0usize..4).prop_map(|nth| Op::Abort { nth }),
        (0usize..8, 2u32..8).prop_map(|(nth, budget)| Op::Delete { nth, budget }),
        (0usize..8).prop_map(|nth| Op::Lease { nth }),
        (0u64..60, 2u32..8).prop_map(|(hours, budget)| Op::Retention { hours, budget }),
        (1u32..8).prop_map(|budget| Op::Collect { budget }),
    ]
}

/// The model: each live snapshot's table, exactly what its chunks should be.
#[derive(Debug, Default)]
struct Model {
    /// id -> (writer, chunk count, table index -> hash, complete).
    snapshots: BTreeMap<u64, (u8, u32, BTreeMap<u32, Hash256>, bool)>,
}

fn chunk(index: u32, seed: u8) -> ChunkPut {
    if seed == 0 {
        return ChunkPut::with_bytes(index, &vec![0u8; CS as usize]);
    }
    let bytes: Vec<u8> = (0..CS).map(|i| seed ^ (i % 13) as u8).collect();
    ChunkPut::with_bytes(index, &bytes)
}

struct Run {
    v: Vault<VectorMemory>,
    m: Model,
    now: u64,
    nonce: u64,
}

impl Run {
    fn open(&self) -> Vec<u64> {
        self.m
            .snapshots
            .iter()
            .filter(|(_, s)| !s.3)
            .map(|(id, _)| *id)
            .filter(|id| self.v.get_snapshot(*id).map(|i| i.state) == Ok(SnapshotState::InProgress))
            .collect()
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Begin {
                w,
                chunks,
                incremental,
            } => {
                let parent = self
                    .v
                    .list_snapshots(Some(writer(w).principal))
                    .iter()
                    .filter(|i| i.state == SnapshotState::Complete)
                    .map(|i| i.id)
                    .next_back()
                    .filter(|_| incremental);
                self.nonce += 1;
                let req = BeginSnapshotRequest {
                    parent,
                    image_size: u64::from(chunks) * u64::from(CS),
                    chunk_size: CS,
                    nonce: self.nonce,
                    label: None,
                    source: None,
                };
                match self
                    .v
                    .begin_snapshot(writer(w), req, None, self.now, &steps(3))
                {
                    Ok(r) => {
                        let inherited = r
                            .parent
                            .map(|p| self.m.snapshots[&p].2.clone())
                            .unwrap_or_default()
                            .into_iter()
                            .filter(|(i, _)| *i < chunks)
                            .collect();
                        self.m
                            .snapshots
                            .insert(r.snapshot_id, (w, chunks, inherited, false));
                    }
                    Err(VaultError::InvalidRequest(m)) => assert!(m.contains("in progress")),
                    Err(e) => panic!("begin: {e:?}"),
                }
            }
            Op::Put { nth, index, seed } => {
                let open = self.open();
                let Some(&id) = open.get(nth % open.len().max(1)) else {
                    return;
                };
                let (w, count, _, _) = self.m.snapshots[&id].clone();
                let index = index % count;
                let put = chunk(index, seed);
                let hash = put.hash;
                let req = PutChunksRequest {
                    snapshot_id: id,
                    chunks: vec![put],
                };
                match self.v.put_chunks(writer(w), &req, self.now) {
                    Ok(_) => {
                        self.m
                            .snapshots
                            .get_mut(&id)
                            .expect("open")
                            .2
                            .insert(index, hash);
                    }
                    Err(VaultError::ConflictingChunk { .. }) => {}
                    Err(e) => panic!("put: {e:?}"),
                }
            }
            Op::Commit { nth, budget } => {
                let open = self.open();
                let Some(&id) = open.get(nth % open.len().max(1)) else {
                    return;
                };
                let (w, count, table, _) = self.m.snapshots[&id].clone();
                let fill: Vec<ChunkPut> = (0..count)
                    .filter(|i| !table.contains_key(i))
                    .map(|i| chunk(i, (i % 3) as u8))
                    .collect();
                for c in &fill {
                    self.m
                        .snapshots
                        .get_mut(&id)
                        .expect("open")
                        .2
                        .insert(c.index, c.hash);
                }
                let req = PutChunksRequest {
                    snapshot_id: id,
                    chunks: fill,
                };
                // Indices the parent's copy has not reached may be sent; ones it has
                // reached were inherited and are replaced.
                self.v.put_chunks(writer(w), &req, self.now).expect("fill");
                let hashes: Vec<Hash256> = self.m.snapshots[&id].2.values().copied().collect();
                let root = image_root(u64::from(count) * u64::from(CS), CS, hashes);
                let req = CommitSnapshotRequest {
                    snapshot_id: id,
                    root,
                };
                let info = loop {
                    match self
                        .v
                        .commit_snapshot(writer(w), &req, self.now, &steps(budget))
                    {
                        Err(VaultError::InUse(_)) => {}
                        other => break other.expect("commit"),
                    }
                };
                assert_eq!(info.root, Some(root));
                self.m.snapshots.get_mut(&id).expect("open").3 = true;
            }
            Op::Abort { nth } => {
                let open = self.open();
                let Some(&id) = open.get(nth % open.len().max(1)) else {
                    return;
                };
                let w = self.m.snapshots[&id].0;
                self.v
                    .abort_snapshot(writer(w), id, "test".into(), self.now)
                    .expect("abort");
            }
            Op::Delete { nth, budget } => {
                let listed = self.v.list_snapshots(None);
                let Some(info) = listed.get(nth % listed.len().max(1)) else {
                    return;
                };
                match self.v.delete_snapshot(info.id, &steps(budget)) {
                    Ok(_) => {
                        self.m.snapshots.remove(&info.id);
                    }
                    Err(VaultError::InUse(_)) => {}
                    Err(e) => panic!("delete: {e:?}"),
                }
            }
            Op::Lease { nth } => {
                let listed = self.v.list_snapshots(None);
                if let Some(info) = listed.get(nth % listed.len().max(1)) {
                    let _ = self.v.open_download(info.id, 3_600, self.now);
                }
            }
            Op::Retention { hours, budget } => {
                self.now += hours * HOUR_NS;
                let pass = self.v.apply_retention(self.now, &steps(budget));
                for id in pass.deleted {
                    assert!(
                        !self.v.pinned(self.now).contains(&id),
                        "retention deleted pinned {id}"
                    );
                    self.m.snapshots.remove(&id);
                }
            }
            Op::Collect { budget } => {
                self.v.collect(&steps(budget));
            }
        }
    }

    /// Every invariant, after every step.
    fn check(&self) {
        assert_refcounts(&self.v);
        // The catalogue is the model's.
        let listed: BTreeSet<u64> = self.v.list_snapshots(None).iter().map(|i| i.id).collect();
        assert_eq!(listed, self.m.snapshots.keys().copied().collect());
        // A complete snapshot's table is exactly its chunks, and every chunk is stored.
        for (id, (_, count, table, complete)) in &self.m.snapshots {
            if !complete {
                continue;
            }
            let got: BTreeMap<u32, Hash256> = self
                .v
                .catalogue
                .entries(*id, 0)
                .map(|(i, e)| (i, e.hash))
                .collect();
            assert_eq!(&got, table, "snapshot {id}");
            assert_eq!(got.len(), *count as usize);
            for h in got.values() {
                assert!(*h == zero_hash(CS) || self.v.get_chunk(h).is_ok());
            }
        }
        // No orphan: every stored chunk is referenced by some table (queued ones too).
        let referenced: BTreeSet<Hash256> = self
            .v
            .catalogue
            .all_entries()
            .filter(|(_, e)| !e.zero)
            .map(|(_, e)| e.hash)
            .collect();
        assert_eq!(self.v.store.len(), referenced.len() as u64);
        // Counters equal a scan.
        let mut counts = (0, 0, 0);
        for info in self.v.list_snapshots(None) {
            match info.state {
                SnapshotState::InProgress => counts.0 += 1,
                SnapshotState::Complete => counts.1 += 1,
                SnapshotState::Failed { .. } => counts.2 += 1,
            }
        }
        assert_eq!(self.v.status(Platform::default()).snapshots, counts);
        // Each source may name exactly the chunks its own tables reference.
        for w in 0..2u8 {
            for (ww, _, table, _) in self.m.snapshots.values() {
                if *ww == w {
                    for h in table.values().filter(|h| **h != zero_hash(CS)) {
                        assert!(self.v.catalogue.source_holds(writer(w).principal, h));
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn vault_matches_the_model(ops in prop::collection::vec(arb_op(), 1..40)) {
        let mut v = vault();
        v.set_retention(RetentionPolicy { keep_last: 1, keep_daily: 1, keep_weekly: 0 });
        let mut run = Run { v, m: Model::default(), now: HOUR_NS, nonce: 0 };
        for op in &ops {
            run.apply(op);
            run.check();
        }
        while !run.v.collect(&unlimited) {}
        run.check();
        prop_assert_eq!(run.v.catalogue.doomed_count(), 0);
    }
}
