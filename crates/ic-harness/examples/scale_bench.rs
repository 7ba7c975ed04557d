//! Resident memory per GiB of canister memory (a benchmark program: it checks results,
//! never timings).
//!
//! ```text
//! scripts/build-wasm.sh
//! cargo run --release -p ic-harness --example scale_bench -- [GIB] [DIR]
//! ```
//!
//! Runs each case in a child process of its own, so that every peak (`VmHWM`) is the case's:
//! - `ram`: fills `GIB` GiB (default 4) of one canister's stable memory with incompressible
//!   data (`stable_fill`, 64 MiB per update call) with stable memory in RAM, printing `VmRSS`
//!   and `VmHWM` from `/proc/self/status` after each GiB, then checks two 64 MiB slices;
//! - `disk`: the same with `with_stable_memory_on_disk(DIR)` (default: the temp directory);
//! - `heap`: a hand-written canister with a 1 GiB heap filled with data, then 100 updates
//!   that each change one heap page and 20 that change one and trap (rolled back): wall time
//!   per update and peak RSS.
//!
//! The `ram` and `disk` cases must execute the same instructions and burn the same cycles;
//! the parent checks it from their `RESULT` lines.

use std::process::Command;
use std::time::Instant;

use candid::{Encode, Principal};
use ic_harness::{CanisterId, Harness, HarnessBuilder, load_canister_wasm};

const CANISTER: &str = "harness_conformance_canister";
const CALL_MIB: u64 = 64;
const SEED: u64 = 0x5ca1_ab1e;
mod support;

use support::host_checksum;

const MIB: u64 = 1024 * 1024;
const HEAP_PAGES: u64 = 16_384;
const HEAP_TOUCHES: u32 = 100;
const HEAP_TRAPS: u32 = 20;

/// One-GiB-heap canister: `fill` writes 0x5a over the whole heap, `touch` writes one word into
/// heap page `arg` (a little-endian u32), `touch_and_trap` does the same and traps.
const HEAP_WAT: &str = r#"
(module
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i32 i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (memory 16384)
  (func $touch
    (call $arg_copy (i32.const 0) (i32.const 0) (i32.const 4))
    (i64.store
      (i32.add (i32.mul (i32.load (i32.const 0)) (i32.const 4096)) (i32.const 8))
      (i64.const 0x1234)))
  (func (export "canister_update fill")
    (memory.fill (i32.const 0) (i32.const 0x5a) (i32.const 0x40000000))
    (call $reply))
  (func (export "canister_update touch") (call $touch) (call $reply))
  (func (export "canister_update touch_and_trap") (call $touch) unreachable))
"#;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--case") {
        let gib = args
            .get(2)
            .map_or(4, |g| g.parse().expect("GIB is a number"));
        match args[1].as_str() {
            "ram" => stable_case(HarnessBuilder::new().with_stable_memory_in_ram(), gib),
            "disk" => stable_case(
                HarnessBuilder::new().with_stable_memory_on_disk(&args[3]),
                gib,
            ),
            "heap" => heap_case(),
            other => panic!("unknown case {other}"),
        }
        return;
    }
    let gib: u64 = args
        .first()
        .map_or(4, |g| g.parse().expect("GIB is a number"));
    let dir = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| std::env::temp_dir().display().to_string());
    println!(
        "scale_bench: {gib} GiB of stable memory per stable case, disk files in {dir}; {} MiB RAM, {} CPUs",
        meminfo_kib("MemTotal") / 1024,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut results = Vec::new();
    for case in ["ram", "disk", "heap"] {
        println!("\n== case {case} (own process) ==");
        let out = Command::new(std::env::current_exe().expect("own path"))
            .args(["--case", case, &gib.to_string(), &dir])
            .output()
            .expect("child runs");
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        assert!(
            out.status.success(),
            "case {case} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        results.push(
            text.lines()
                .find(|l| l.starts_with("RESULT"))
                .map(str::to_string),
        );
    }
    assert!(results[0].is_some(), "the ram case reports its result");
    assert_eq!(
        results[0], results[1],
        "RAM and disk storage executed differently"
    );
    println!("\nram and disk: identical instructions, cycles and checksums");
}

fn stable_case(builder: HarnessBuilder, gib: u64) {
    let mut ic = builder.with_application_subnet().build();
    let wasm = load_canister_wasm(CANISTER);
    let user = Principal::anonymous();
    let id = install(&mut ic, wasm);
    let base_rss = status_kib("VmRSS");
    println!(
        "after install: VmRSS {} MiB, VmHWM {} MiB",
        base_rss / 1024,
        status_kib("VmHWM") / 1024
    );
    println!(
        "{:>4} {:>8} {:>10} {:>10} {:>16} {:>14}",
        "GiB", "wall s", "VmRSS MiB", "VmHWM MiB", "RSS-base /GiB", "canister MiB"
    );
    let start = Instant::now();
    let calls_per_gib = 1024 / CALL_MIB;
    for g in 1..=gib {
        for i in 0..calls_per_gib {
            let offset = ((g - 1) * calls_per_gib + i) * CALL_MIB;
            let (_pages,): (u64,) = ic
                .update_candid(id, user, "stable_fill", (offset, CALL_MIB, SEED))
                .expect("stable_fill");
        }
        let rss = status_kib("VmRSS");
        println!(
            "{g:>4} {:>8.1} {:>10} {:>10} {:>16} {:>14}",
            start.elapsed().as_secs_f64(),
            rss / 1024,
            status_kib("VmHWM") / 1024,
            (rss.saturating_sub(base_rss) / 1024) / g,
            ic.memory_bytes(id) / MIB
        );
    }
    let last = gib * 1024 - CALL_MIB;
    let mut checksums = Vec::new();
    for offset in [0, last] {
        let (sum,): (u64,) = ic
            .update_candid(id, user, "stable_checksum", (offset, CALL_MIB))
            .expect("stable_checksum");
        assert_eq!(
            sum,
            host_checksum(offset, CALL_MIB, SEED),
            "slice at {offset} MiB"
        );
        checksums.push(sum);
    }
    println!(
        "checked 64 MiB at 0 and at {last} MiB; VmHWM at the end {} MiB",
        status_kib("VmHWM") / 1024
    );
    let m = ic.metrics(id);
    println!(
        "RESULT instructions={} executions={} cycles_burned={} checksums={checksums:x?}",
        m.instructions,
        m.executions,
        m.cycles_burned.total()
    );
}

fn heap_case() {
    let mut ic = HarnessBuilder::new().with_application_subnet().build();
    let wasm = wat::parse_str(HEAP_WAT).expect("heap canister wat parses");
    let user = Principal::anonymous();
    let id = install(&mut ic, wasm);
    ic.update_call(id, user, "fill", Vec::new()).expect("fill");
    println!(
        "{} MiB heap filled: VmRSS {} MiB, VmHWM {} MiB",
        HEAP_PAGES * 65_536 / MIB,
        status_kib("VmRSS") / 1024,
        status_kib("VmHWM") / 1024
    );
    let start = Instant::now();
    for i in 0..HEAP_TOUCHES {
        ic.update_call(id, user, "touch", (i * 97 % 262_144).to_le_bytes().to_vec())
            .expect("touch");
    }
    let touch = start.elapsed().as_secs_f64() / f64::from(HEAP_TOUCHES);
    let start = Instant::now();
    for i in 0..HEAP_TRAPS {
        let err = ic
            .update_call(id, user, "touch_and_trap", (i * 89).to_le_bytes().to_vec())
            .expect_err("traps");
        assert!(err.message.contains("unreachable"), "{}", err.message);
    }
    let trap = start.elapsed().as_secs_f64() / f64::from(HEAP_TRAPS);
    println!(
        "{HEAP_TOUCHES} one-page updates: {:.2} ms each; {HEAP_TRAPS} one-page updates that trap: {:.2} ms each",
        touch * 1e3,
        trap * 1e3
    );
    println!(
        "VmRSS {} MiB, VmHWM {} MiB; instructions {}",
        status_kib("VmRSS") / 1024,
        status_kib("VmHWM") / 1024,
        ic.metrics(id).instructions
    );
}

fn install(ic: &mut Harness, wasm: Vec<u8>) -> CanisterId {
    let subnet = ic.topology().app_subnets[0];
    let id = ic.create_canister_on_subnet(None, None, subnet);
    ic.install_canister(id, wasm, Encode!().expect("encode ()"), None);
    id
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    kib_field("/proc/self/status", field)
}

fn meminfo_kib(field: &str) -> u64 {
    kib_field("/proc/meminfo", field)
}

fn kib_field(path: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
