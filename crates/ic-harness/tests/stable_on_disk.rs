//! Stable memory kept on disk (`HarnessBuilder::with_stable_memory_on_disk`) behaves exactly
//! as in RAM, on the real conformance canister: one scenario (writes, reads, grow, trap
//! rollback of writes and of a grow, snapshot take and load, upgrade, uninstall, deletion)
//! runs under both storages; each step checks its expected value, and the two transcripts,
//! instruction counts and cycle balances included, must be identical. In disk mode the test
//! also counts the memory files the process holds open in its directory: one per stable
//! memory alive, none after deletion.

mod conformance_support;

use conformance_support::Setup;
use ic_harness::{CanisterId, HarnessBuilder, InstructionLimits, RejectCode};
use sha2::{Digest, Sha256};

const SEED: u64 = 7;
const OTHER_SEED: u64 = 8;

/// Files under `dir` this process holds open (unlinked ones show as `... (deleted)`).
fn open_files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

/// Records every observation of the scenario.
struct Run {
    s: Setup,
    transcript: Vec<String>,
    /// Disk mode: the directory of the memory files.
    dir: Option<std::path::PathBuf>,
}

impl Run {
    fn note(&mut self, what: &str, value: impl std::fmt::Debug) {
        self.transcript.push(format!("{what}: {value:?}"));
    }

    /// The stable memory's size and SHA-256 as the harness sees it.
    fn stable_digest(&mut self, id: CanisterId) -> (usize, String) {
        let bytes = self.s.ic.get_stable_memory(id);
        (bytes.len(), hex::encode(Sha256::digest(&bytes)))
    }

    fn checksum(&mut self, id: CanisterId, offset_mib: u64, mib: u64) -> u64 {
        self.s
            .update::<_, (u64,)>(id, "stable_checksum", (offset_mib, mib))
            .0
    }

    fn fill(&mut self, id: CanisterId, offset_mib: u64, mib: u64, seed: u64) -> u64 {
        self.s
            .update::<_, (u64,)>(id, "stable_fill", (offset_mib, mib, seed))
            .0
    }

    fn expect_files(&self, n: usize, when: &str) {
        if let Some(dir) = &self.dir {
            assert_eq!(open_files_in(dir), n, "memory files open {when}");
        }
    }
}

fn scenario(builder: HarnessBuilder, dir: Option<std::path::PathBuf>) -> Vec<String> {
    let mut r = Run {
        s: Setup::new(builder, 1),
        transcript: Vec::new(),
        dir,
    };
    let id = r.s.install_on(0);
    r.expect_files(1, "after install");

    // Writes and reads through ic-stable-structures (grows the memory as it goes).
    for expected in 1..=3 {
        let (n,): (u64,) = r.s.update(id, "inc_stable", ());
        assert_eq!(n, expected);
    }
    let pages = r.fill(id, 0, 3, SEED);
    let sum = r.checksum(id, 0, 3);
    r.note("fill 3 MiB: pages, checksum", (pages, sum));
    let baseline = r.stable_digest(id);
    r.note("stable memory", &baseline);

    // A trap rolls back overwritten blocks and a grow: the update runs out of instructions
    // while rewriting the first MiBs and growing the memory to 40 MiB.
    let limits = r.s.ic.instruction_limits();
    r.s.ic.set_instruction_limits(InstructionLimits {
        update: 120_000_000,
        ..limits
    });
    let reject =
        r.s.update_reject(id, "stable_fill", (0u64, 40u64, OTHER_SEED));
    assert_eq!(reject.code, RejectCode::CanisterError);
    assert!(reject.message.contains("IC0522"), "{}", reject.message);
    r.s.ic.set_instruction_limits(limits);
    assert_eq!(
        r.stable_digest(id),
        baseline,
        "the trap rolled everything back"
    );
    assert_eq!(r.checksum(id, 0, 3), sum);
    let (n,): (u64,) = r.s.query(id, "get_stable", ());
    assert_eq!(n, 3);
    // Growing again into the space the trapped update had grown and written: zeros, but
    // for the 1 MiB this update writes.
    let old_len = baseline.0;
    r.fill(id, 8, 1, SEED);
    let grown = r.s.ic.get_stable_memory(id);
    assert!(grown.len() > old_len);
    let nonzero = grown[old_len..].iter().filter(|b| **b != 0).count();
    assert!(
        nonzero <= 1 << 20,
        "regrown memory holds {nonzero} non-zero bytes"
    );
    let baseline = r.stable_digest(id);
    r.note("regrown", &baseline);

    // Snapshot: take, change, load back.
    let ctl = Some(r.s.controller);
    let snap = r.s.ic.take_canister_snapshot(id, ctl, None).expect("take");
    r.expect_files(2, "with one snapshot");
    let changed = r.fill(id, 1, 2, OTHER_SEED);
    let refilled = r.checksum(id, 0, 3);
    r.note("refill after the snapshot", (changed, refilled));
    assert_ne!(r.stable_digest(id), baseline);
    r.s.ic
        .load_canister_snapshot(id, ctl, snap.id.clone())
        .expect("load");
    assert_eq!(
        r.stable_digest(id),
        baseline,
        "the snapshot's stable memory"
    );
    r.expect_files(2, "after loading the snapshot");

    // An upgrade keeps stable memory; the counter goes on from 3.
    r.s.ic
        .upgrade_canister(id, conformance_support::wasm(), Vec::new(), ctl)
        .expect("upgrade");
    assert_eq!(r.stable_digest(id), baseline, "kept across the upgrade");
    let (n,): (u64,) = r.s.update(id, "inc_stable", ());
    assert_eq!(n, 4);
    let upgraded = (r.checksum(id, 0, 3), r.stable_digest(id));
    r.note("after the upgrade", upgraded);

    // set_stable_memory replaces the memory in the same storage.
    r.s.ic.set_stable_memory(id, vec![9; 70_000]);
    let replaced = r.stable_digest(id);
    assert_eq!(replaced.0, 131_072);
    r.note("set_stable_memory", replaced);
    r.expect_files(2, "after set_stable_memory");

    r.s.ic
        .delete_canister_snapshot(id, ctl, snap.id)
        .expect("delete snapshot");
    r.expect_files(1, "after deleting the snapshot");
    let m = r.s.ic.metrics(id);
    r.note("instructions, executions", (m.instructions, m.executions));
    let cycles = r.s.ic.cycle_balance(id);
    r.note("cycles", cycles);
    r.s.ic.stop_canister(id, ctl).expect("stop");
    r.s.ic.delete_canister(id, ctl).expect("delete");
    r.expect_files(0, "after deleting the canister");
    r.transcript
}

#[test]
fn disk_storage_behaves_as_ram_storage_on_real_wasm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ram = scenario(HarnessBuilder::new().with_stable_memory_in_ram(), None);
    let disk = scenario(
        HarnessBuilder::new().with_stable_memory_on_disk(dir.path()),
        Some(dir.path().to_path_buf()),
    );
    assert_eq!(ram, disk);
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "no file left behind"
    );
}
