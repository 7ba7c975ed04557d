//! Table work at a 500 GiB image's chunk count (issue #13): the vault's table
//! operations on real wasm, each message measured, none may come near the 40B update
//! limit. The tables are built through the real protocol with `Zero` entries (no bytes
//! stored, so the harness holds 8,192,000 entries per table), then the production
//! paths run on them: `put_chunks`, the commit walk, `begin_snapshot` with a parent and
//! the parent-table copy, `get_manifest`, `delete_snapshot` and the release chain.
//!
//! Slow (about half an hour at 8,192,000 entries), so ignored by default:
//! `CANVAULT_TABLE_ENTRIES=8192000 cargo test -p canvault-scenarios --test table_work -- --ignored --nocapture`
//! (the entry count defaults to 8,192,000). Build the wasm first: `scripts/build-wasm.sh`.

use std::time::Instant;

use canvault_protocol::chunk::zero_hash;
use canvault_protocol::vault_api::{
    BeginSnapshotRequest, ChunkBody, ChunkPut, SnapshotId, VaultError, VaultInit,
};
use canvault_scenarios::principal;
use canvault_scenarios::vault::VaultClient;
use ic_harness::{Harness, HarnessBuilder};

const CS: u32 = 64 * 1024;
/// The IC's update-message limit.
const LIMIT: u64 = 40_000_000_000;
/// Entries per `put_chunks` (the vault's `MAX_BATCH_ENTRIES`).
const PUT: u32 = 10_000;

/// Instructions of one operation's steps (one call, or one round of the vault's
/// timers). A step of one execution measures that message exactly; a step of several
/// (a call and a timer in the same round) bounds each of them by its sum.
#[derive(Default)]
struct Meter {
    /// Largest step of exactly one execution.
    max_single: u64,
    /// Largest step of several executions (their sum).
    max_multi: u64,
    steps: u64,
    executions: u64,
    total: u64,
}

impl Meter {
    fn step<R>(
        &mut self,
        ic: &mut Harness,
        vault: &VaultClient,
        f: impl FnOnce(&mut Harness) -> R,
    ) -> R {
        let before = ic.metrics(vault.id);
        let r = f(ic);
        let after = ic.metrics(vault.id);
        let used = after.instructions - before.instructions;
        let executions = after.executions - before.executions;
        if executions == 1 {
            self.max_single = self.max_single.max(used);
        } else {
            self.max_multi = self.max_multi.max(used);
        }
        self.steps += 1;
        self.executions += executions;
        self.total += used;
        r
    }

    fn report(&self, what: &str, started: Instant) -> String {
        assert!(
            self.max_single.max(self.max_multi) < LIMIT,
            "{what}: a step over the limit"
        );
        format!(
            "{what:<44} max/message {:>15}  max/round {:>15}  messages {:>6}  steps {:>6}  total {:>18}  ({:.0} s)",
            group(self.max_single),
            group(self.max_multi),
            self.executions,
            self.steps,
            group(self.total),
            started.elapsed().as_secs_f64()
        )
    }
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn entries() -> u32 {
    std::env::var("CANVAULT_TABLE_ENTRIES")
        .ok()
        .map_or(8_192_000, |v| v.parse().expect("a chunk count"))
}

fn zero_puts(from: u32, to: u32) -> Vec<ChunkPut> {
    (from..to)
        .map(|index| ChunkPut {
            index,
            hash: zero_hash(CS),
            len: CS,
            body: ChunkBody::Zero,
        })
        .collect()
}

#[test]
#[ignore = "about half an hour: see the module doc"]
fn every_vault_table_operation_at_a_500_gib_chunk_count_stays_under_the_message_limit() {
    let n = entries();
    let image_size = u64::from(n) * u64::from(CS);
    let mut ic = HarnessBuilder::new()
        .with_application_subnet()
        .with_application_subnet()
        .build();
    let (owner, writer) = (principal("owner"), principal("writer"));
    let init = VaultInit {
        owners: vec![owner],
        writers: vec![writer],
        readers: vec![],
        retention: None,
    };
    let vault = VaultClient::install(&mut ic, 1, &init, owner);
    let root =
        canvault_protocol::merkle::image_root(image_size, CS, vec![zero_hash(CS); n as usize]);
    let begin = |parent: Option<SnapshotId>, nonce: u64| BeginSnapshotRequest {
        parent,
        image_size,
        chunk_size: CS,
        nonce,
        label: None,
        source: None,
    };
    let mut lines = vec![format!(
        "{n} entries per table ({} GiB at 64 KiB chunks); per-message limit {}",
        image_size >> 30,
        group(LIMIT)
    )];

    // A full snapshot: every index put, then committed.
    let t = Instant::now();
    let mut m = Meter::default();
    let parent = m
        .step(&mut ic, &vault, |ic| {
            vault.begin(ic, writer, begin(None, 1))
        })
        .expect("begin")
        .snapshot_id;
    for from in (0..n).step_by(PUT as usize) {
        let puts = zero_puts(from, (from + PUT).min(n));
        m.step(&mut ic, &vault, |ic| vault.put(ic, writer, parent, puts))
            .expect("put");
    }
    lines.push(m.report("begin + put_chunks (10,000 entries a call)", t));

    let t = Instant::now();
    let mut m = Meter::default();
    commit(&mut ic, &vault, &mut m, writer, parent, root);
    lines.push(m.report("commit (walk over calls and timer rounds)", t));

    // An incremental snapshot: the parent's table is copied, a few indices put.
    let t = Instant::now();
    let mut m = Meter::default();
    let child = m
        .step(&mut ic, &vault, |ic| {
            vault.begin(ic, writer, begin(Some(parent), 2))
        })
        .expect("begin with a parent");
    assert_eq!(child.parent, Some(parent));
    let child = child.snapshot_id;
    lines.push(m.report("begin_snapshot with a parent", t));
    let t = Instant::now();
    let mut m = Meter::default();
    for from in [0, n / 2, n - 3] {
        m.step(&mut ic, &vault, |ic| {
            vault.put(ic, writer, child, zero_puts(from, from + 3))
        })
        .expect("put into the child");
    }
    commit(&mut ic, &vault, &mut m, writer, child, root);
    lines.push(m.report("parent-table copy + commit of the child", t));

    // Reading a table page from the middle (a query: free, but bounded too).
    let page = vault
        .manifest(&mut ic, owner, child, n / 2, 0)
        .expect("manifest");
    assert_eq!(page.entries[0].index, n / 2);
    lines.push(format!(
        "{:<44} max/query {:>14}",
        "get_manifest (a page from the middle)",
        group(ic.metrics(vault.id).max_instructions_per_query)
    ));

    // Deleting both: the calls return at once, the release chain runs on timers.
    let t = Instant::now();
    let mut m = Meter::default();
    for id in [child, parent] {
        let r = m.step(&mut ic, &vault, |ic| {
            ic.update_candid::<_, (Result<(), VaultError>,)>(
                vault.id,
                owner,
                "delete_snapshot",
                (id,),
            )
        });
        r.expect("delete_snapshot answered").0.expect("deleted");
    }
    let mut quiet = 0;
    while quiet < 5 {
        let executions = ic.metrics(vault.id).executions;
        m.step(&mut ic, &vault, Harness::tick);
        quiet = if ic.metrics(vault.id).executions == executions {
            quiet + 1
        } else {
            0
        };
    }
    assert_eq!(vault.status(&mut ic, owner).snapshots, (0, 0, 0));
    lines.push(m.report("delete_snapshot x2 + release chain", t));

    let overall = ic.metrics(vault.id).max_instructions_per_execution;
    lines.push(format!(
        "{:<44} {:>24}",
        "largest single vault execution",
        group(overall)
    ));
    assert!(overall < LIMIT);
    println!("{}", lines.join("\n"));
}

/// Commits until the vault stops answering `InUse`, a round of its timers between calls.
fn commit(
    ic: &mut Harness,
    vault: &VaultClient,
    m: &mut Meter,
    writer: candid::Principal,
    id: SnapshotId,
    root: canvault_protocol::Hash256,
) {
    loop {
        match m.step(ic, vault, |ic| vault.commit(ic, writer, id, root)) {
            Err(VaultError::InUse(_)) => m.step(ic, vault, Harness::tick),
            other => {
                other.expect("commit");
                return;
            }
        }
    }
}
