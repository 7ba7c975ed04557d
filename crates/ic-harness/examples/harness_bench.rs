//! Harness figures (a benchmark program, not a timed test: it asserts results, never timings).
//!
//! ```text
//! scripts/build-wasm.sh
//! cargo run --release -p ic-harness --example harness_bench
//! ```
//!
//! Prints:
//! (a) 10,000 small update calls (`inc_heap`): wall time, calls/s, executed instructions and
//!     instructions/s;
//! (b) writing then reading 1 GiB of stable memory through ic-stable-structures
//!     (`stable_fill` / `stable_checksum` in 64 MiB calls): wall time, MiB/s, instructions,
//!     rounds;
//! (c) memory used by this process: peak RSS (`VmHWM`) after each phase.

use std::time::{Duration, Instant};

use candid::{Encode, Principal};
use ic_harness::{CanisterId, Harness, HarnessBuilder, InstructionLimits, load_canister_wasm};

const CANISTER: &str = "harness_conformance_canister";
const SMALL_CALLS: u64 = 10_000;
const STABLE_TOTAL_MIB: u64 = 1024;
const STABLE_CALL_MIB: u64 = 64;
const SEED: u64 = 0x5eed_0fc0_ffee;
mod support;

use support::host_checksum;

const MIB: u64 = 1024 * 1024;

fn main() {
    let wasm = load_canister_wasm(CANISTER);
    let limits = InstructionLimits::default();
    let mut ic = HarnessBuilder::new()
        .with_application_subnet()
        .with_instruction_limits(limits)
        .build();
    let user = Principal::anonymous();

    print_config(&wasm, &limits);
    let rss_start = proc_status_kib("VmHWM");

    // (a) Small update calls.
    let a = install(&mut ic, &wasm);
    let small = run_small_calls(&mut ic, a, user);
    let rss_after_small = proc_status_kib("VmHWM");

    // (b) 1 GiB through ic-stable-structures.
    let b = install(&mut ic, &wasm);
    let (write, read) = run_stable_gib(&mut ic, b, user);
    let rss_after_stable = proc_status_kib("VmHWM");

    println!();
    println!(
        "{:<44} {:>10} {:>12} {:>16} {:>14} {:>8}",
        "workload", "wall", "rate", "instructions", "instr/s", "rounds"
    );
    println!("{}", "-".repeat(109));
    small.print(
        &format!("(a) {SMALL_CALLS} update calls (inc_heap)"),
        "calls/s",
    );
    write.print(
        &format!("(b) write {STABLE_TOTAL_MIB} MiB (stable_fill x{STABLE_CALL_MIB} MiB)"),
        "MiB/s",
    );
    read.print(
        &format!("(b) read {STABLE_TOTAL_MIB} MiB (stable_checksum)"),
        "MiB/s",
    );
    println!();
    println!(
        "(a) per call: {:.1} µs wall, {} instructions, {} executions in total",
        small.wall.as_secs_f64() * 1e6 / small.units,
        small.instructions / SMALL_CALLS,
        small.executions,
    );
    println!(
        "(b) per {STABLE_CALL_MIB} MiB call: write {:.0} M instructions, read {:.0} M instructions; \
         peak stable memory {} MiB",
        write.instructions as f64 / write.executions.max(1) as f64 / 1e6,
        read.instructions as f64 / read.executions.max(1) as f64 / 1e6,
        ic.metrics(b).peak_stable_memory_bytes / MIB,
    );
    println!();
    println!("(c) process memory (peak RSS, VmHWM):");
    println!("    at start              {:>8} MiB", kib_to_mib(rss_start));
    println!(
        "    after (a)             {:>8} MiB",
        kib_to_mib(rss_after_small)
    );
    println!(
        "    after (b)             {:>8} MiB",
        kib_to_mib(rss_after_stable)
    );
    println!(
        "    current RSS (VmRSS)   {:>8} MiB",
        kib_to_mib(proc_status_kib("VmRSS"))
    );
}

/// One measured workload.
struct Figures {
    wall: Duration,
    /// Calls or MiB, for the rate column.
    units: f64,
    instructions: u64,
    executions: u64,
    rounds: u64,
}

impl Figures {
    fn print(&self, label: &str, unit: &str) {
        let secs = self.wall.as_secs_f64();
        println!(
            "{:<44} {:>8.3} s {:>8.0} {:<6} {:>13} {:>12.3e} {:>8}",
            label,
            secs,
            self.units / secs,
            unit,
            self.instructions,
            self.instructions as f64 / secs,
            self.rounds
        );
    }
}

/// Measures `work` on canister `id`: wall time, and the canister's instruction, execution
/// and the harness's round counters.
fn measure(
    ic: &mut Harness,
    id: CanisterId,
    units: f64,
    work: impl FnOnce(&mut Harness),
) -> Figures {
    let before = ic.metrics(id);
    let rounds = ic.rounds();
    let start = Instant::now();
    work(ic);
    let wall = start.elapsed();
    let after = ic.metrics(id);
    Figures {
        wall,
        units,
        instructions: after.instructions - before.instructions,
        executions: after.executions - before.executions,
        rounds: ic.rounds() - rounds,
    }
}

fn install(ic: &mut Harness, wasm: &[u8]) -> CanisterId {
    let subnet = ic.topology().app_subnets[0];
    let id = ic.create_canister_on_subnet(None, None, subnet);
    ic.install_canister(id, wasm.to_vec(), Encode!().expect("encode ()"), None);
    id
}

fn run_small_calls(ic: &mut Harness, id: CanisterId, user: Principal) -> Figures {
    let arg = Encode!().expect("encode ()");
    let figures = measure(ic, id, SMALL_CALLS as f64, |ic| {
        for _ in 0..SMALL_CALLS {
            ic.update_call(id, user, "inc_heap", arg.clone())
                .expect("inc_heap");
        }
    });
    let (count,): (u64,) = ic.query_candid(id, user, "get_heap", ()).expect("get_heap");
    assert_eq!(count, SMALL_CALLS, "every call committed");
    figures
}

fn run_stable_gib(ic: &mut Harness, id: CanisterId, user: Principal) -> (Figures, Figures) {
    let calls = STABLE_TOTAL_MIB / STABLE_CALL_MIB;
    let write = measure(ic, id, STABLE_TOTAL_MIB as f64, |ic| {
        for i in 0..calls {
            let (_pages,): (u64,) = ic
                .update_candid(
                    id,
                    user,
                    "stable_fill",
                    (i * STABLE_CALL_MIB, STABLE_CALL_MIB, SEED),
                )
                .expect("stable_fill");
        }
    });
    let mut checksums = Vec::new();
    let read = measure(ic, id, STABLE_TOTAL_MIB as f64, |ic| {
        for i in 0..calls {
            let (sum,): (u64,) = ic
                .update_candid(
                    id,
                    user,
                    "stable_checksum",
                    (i * STABLE_CALL_MIB, STABLE_CALL_MIB),
                )
                .expect("stable_checksum");
            checksums.push(sum);
        }
    });
    // Outside the timings: the data read back is the data written.
    for (i, sum) in checksums.iter().enumerate() {
        let expected = host_checksum(i as u64 * STABLE_CALL_MIB, STABLE_CALL_MIB, SEED);
        assert_eq!(*sum, expected, "checksum of chunk {i}");
    }
    (write, read)
}

fn print_config(wasm: &[u8], limits: &InstructionLimits) {
    let rustc =
        std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map_or_else(|| "unknown".to_string(), |s| s.trim().to_string());
    let profile = if cfg!(debug_assertions) {
        "debug (use --release for meaningful figures)"
    } else {
        "release"
    };
    println!("ic-harness benchmark");
    println!(
        "  rustc            {rustc} (crate rust-version {})",
        env!("CARGO_PKG_RUST_VERSION")
    );
    println!("  build profile    {profile}");
    println!(
        "  wasmtime         {}",
        locked_version("wasmtime").unwrap_or_else(|| "?".into())
    );
    println!(
        "  canister         {CANISTER}.wasm, {} bytes (profile canister)",
        wasm.len()
    );
    println!("  topology         1 application subnet, default round duration and latency");
    println!(
        "  limits           update {}, query {}, install {}, per round per canister {}",
        limits.update, limits.query, limits.install, limits.round_per_canister
    );
    println!(
        "  workloads        (a) {SMALL_CALLS} x inc_heap; (b) {STABLE_TOTAL_MIB} MiB in {STABLE_CALL_MIB} MiB calls"
    );
}

/// A package's version from the workspace Cargo.lock, if it is there.
fn locked_version(package: &str) -> Option<String> {
    let lock =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock")).ok()?;
    let needle = format!("name = \"{package}\"\nversion = \"");
    let start = lock.find(&needle)? + needle.len();
    let end = start + lock[start..].find('"')?;
    Some(lock[start..end].to_string())
}

/// A `kB` field of /proc/self/status (Linux), or 0 elsewhere.
fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix(field)?.strip_prefix(':')?;
                rest.trim().trim_end_matches("kB").trim().parse().ok()
            })
        })
        .unwrap_or(0)
}

fn kib_to_mib(kib: u64) -> u64 {
    kib / 1024
}
