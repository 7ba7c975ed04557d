//! H2 (issue #10.2): one writer must not wedge retention and garbage collection.
//!
//! The attack: begin a huge image, record many `Zero` entries (no bytes needed),
//! abort. Before the fix, deleting that snapshot walked its whole table in one message:
//! every retention pass (and `delete_snapshot`) trapped there, forever, and no other
//! snapshot was deleted either. The harness's update limit is lowered to 4B
//! instructions so a table of 60,000 entries is "too big for one message", as
//! ~450,000 entries are on the IC's 40B.
//!
//! Build the wasm first: `scripts/build-wasm.sh`.

use std::time::Duration;

use candid::Principal;
use canvault_protocol::Hash256;
use canvault_protocol::chunk::zero_hash;
use canvault_protocol::vault_api::{
    BeginSnapshotRequest, ChunkBody, ChunkPut, RetentionPolicy, SnapshotId, VaultError, VaultInit,
};
use canvault_scenarios::principal;
use canvault_scenarios::vault::{VaultClient, noise_image};
use ic_harness::{Harness, HarnessBuilder, InstructionLimits};

const CS: u32 = 64 * 1024;
const ENTRIES: u32 = 60_000;
const LIMIT: u64 = 4_000_000_000;

struct Setup {
    ic: Harness,
    vault: VaultClient,
    owner: Principal,
    writer: Principal,
    attacker: Principal,
}

fn setup() -> Setup {
    let mut ic = HarnessBuilder::new()
        .with_application_subnet()
        .with_application_subnet()
        .with_instruction_limits(InstructionLimits {
            update: LIMIT,
            ..InstructionLimits::default()
        })
        .build();
    let (owner, writer, attacker) = (
        principal("owner"),
        principal("writer"),
        principal("attacker"),
    );
    let init = VaultInit {
        owners: vec![owner],
        writers: vec![writer, attacker],
        readers: vec![],
        retention: Some(RetentionPolicy {
            keep_last: 1,
            keep_daily: 0,
            keep_weekly: 0,
        }),
    };
    let vault = VaultClient::install(&mut ic, 1, &init, owner);
    Setup {
        ic,
        vault,
        owner,
        writer,
        attacker,
    }
}

/// Begins an image of `ENTRIES` chunks and records every one as `Zero`.
fn huge_zero_snapshot(s: &mut Setup, nonce: u64) -> SnapshotId {
    let req = BeginSnapshotRequest {
        parent: None,
        image_size: u64::from(ENTRIES) * u64::from(CS),
        chunk_size: CS,
        nonce,
        label: None,
        source: None,
    };
    let id = s
        .vault
        .begin(&mut s.ic, s.attacker, req)
        .expect("begin")
        .snapshot_id;
    let zero: Hash256 = zero_hash(CS);
    for start in (0..ENTRIES).step_by(10_000) {
        let batch = (start..(start + 10_000).min(ENTRIES))
            .map(|index| ChunkPut {
                index,
                hash: zero,
                len: CS,
                body: ChunkBody::Zero,
            })
            .collect();
        s.vault
            .put(&mut s.ic, s.attacker, id, batch)
            .expect("zero entries");
    }
    id
}

fn listed(s: &mut Setup) -> Vec<SnapshotId> {
    s.vault
        .list(&mut s.ic, s.owner, None)
        .iter()
        .map(|i| i.id)
        .collect()
}

/// Ticks until the vault has executed nothing for a few rounds (a step over one DTS
/// slice makes it sit out the next round): the table-work chain has stopped. Only the
/// hourly housekeeping interval stays armed, so the harness is never "idle" with a
/// vault installed. Then checks the chain does not start again on its own: a chain that
/// re-arms itself forever would drain cycles.
fn settle(s: &mut Setup, max_rounds: u32) {
    const QUIET: u32 = 5;
    let executions = |s: &Setup| s.ic.metrics(s.vault.id).executions;
    let mut quiet = 0;
    for _ in 0..max_rounds {
        let before = executions(s);
        s.ic.tick();
        quiet = if executions(s) == before {
            quiet + 1
        } else {
            0
        };
        if quiet == QUIET {
            let settled = executions(s);
            for _ in 0..20 {
                s.ic.tick();
            }
            assert_eq!(
                executions(s),
                settled,
                "the table-work chain re-armed itself"
            );
            return;
        }
    }
    panic!("table work still running after {max_rounds} rounds");
}

#[test]
fn should_not_let_one_huge_table_wedge_retention_or_deletion() {
    let mut s = setup();
    let old = s
        .vault
        .backup(&mut s.ic, s.writer, &noise_image(3, CS, 1), CS, 1);
    let huge = huge_zero_snapshot(&mut s, 1);
    let aborted: Result<(), VaultError> = s.vault.call(
        &mut s.ic,
        s.attacker,
        "abort_snapshot",
        (huge, "gone".to_string()),
    );
    aborted.expect("abort");
    let new = s
        .vault
        .backup(&mut s.ic, s.writer, &noise_image(3, CS, 2), CS, 2);
    s.ic.advance_time(Duration::from_secs(2 * 86_400));

    // Retention must delete the writer's old snapshot and the failed huge one.
    let pass =
        s.ic.update_candid::<_, (Result<Vec<SnapshotId>, VaultError>,)>(
            s.vault.id,
            s.owner,
            "apply_retention",
            (),
        );
    let deleted = pass
        .unwrap_or_else(|e| panic!("a retention pass trapped on one huge table: {e:?}"))
        .0
        .expect("apply_retention");
    assert_eq!(deleted, vec![old.id, huge]);
    assert_eq!(listed(&mut s), vec![new.id]);

    // The table is released by budgeted steps in later messages, none over the limit.
    settle(&mut s, 1_000);
    let status = s.vault.status(&mut s.ic, s.owner);
    // noise_image's chunk 0 is all zeros (stored as `Zero`): 2 stored chunks each.
    assert_eq!(status.chunks, 2, "only the newest snapshot's chunks remain");
    assert!(s.ic.metrics(s.vault.id).max_instructions_per_execution < LIMIT);

    // A second huge table, deleted directly, goes the same way.
    let huge2 = huge_zero_snapshot(&mut s, 2);
    let r = s.ic.update_candid::<_, (Result<(), VaultError>,)>(
        s.vault.id,
        s.owner,
        "delete_snapshot",
        (huge2,),
    );
    r.unwrap_or_else(|e| panic!("delete_snapshot trapped: {e:?}"))
        .0
        .expect("delete");
    settle(&mut s, 1_000);
    assert_eq!(listed(&mut s), vec![new.id]);
    let restored = s.vault.download(&mut s.ic, s.owner, new.id, 0);
    assert_eq!(restored, noise_image(3, CS, 2));
}

#[test]
fn should_copy_and_commit_a_huge_incremental_table_over_several_messages() {
    let mut s = setup();
    let parent = huge_zero_snapshot(&mut s, 1);
    let image_size = u64::from(ENTRIES) * u64::from(CS);
    let root = canvault_protocol::merkle::image_root(
        image_size,
        CS,
        vec![zero_hash(CS); ENTRIES as usize],
    );
    let commit = |s: &mut Setup, id| loop {
        match s.vault.commit(&mut s.ic, s.attacker, id, root) {
            Err(VaultError::InUse(_)) => s.ic.tick(),
            other => break other,
        }
    };
    commit(&mut s, parent).expect("commit over several calls");
    let req = BeginSnapshotRequest {
        parent: Some(parent),
        image_size,
        chunk_size: CS,
        nonce: 2,
        label: None,
        source: None,
    };
    let child = s.vault.begin(&mut s.ic, s.attacker, req).expect("begin");
    assert_eq!(child.parent, Some(parent));
    let info = commit(&mut s, child.snapshot_id).expect("the copy and the walk complete");
    assert_eq!(info.root, Some(root));
    assert!(s.ic.metrics(s.vault.id).max_instructions_per_execution < LIMIT);
}
