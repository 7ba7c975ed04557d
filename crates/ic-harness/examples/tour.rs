//! A tour of the in-process IC on real canister wasm: two subnets, a cross-subnet call
//! awaited across rounds, a timer, an upgrade that keeps stable memory, a trap that
//! rolls back, and stop/delete. Prints what happens and the figures the harness measured.
//!
//! Run: `scripts/demo.sh` (builds the wasm first), or
//! `cargo run --release -p ic-harness --example tour` after `scripts/build-wasm.sh`.

use std::time::{Duration, Instant};

use candid::{Encode, Principal};
use ic_harness::{HarnessBuilder, load_canister_wasm};

type CallResult = Result<Vec<u8>, (u32, String)>;

fn main() {
    let started = Instant::now();
    let wasm = load_canister_wasm("harness_conformance_canister");
    let mut ic = HarnessBuilder::new()
        .with_application_subnet()
        .with_application_subnet()
        .build();
    let subnets = ic.topology().app_subnets;
    let admin = Principal::self_authenticating("tour admin");
    let user = Principal::self_authenticating("tour user");

    let a = ic.create_canister_on_subnet(Some(admin), None, subnets[0]);
    let b = ic.create_canister_on_subnet(Some(admin), None, subnets[1]);
    for c in [a, b] {
        ic.install_canister(c, wasm.clone(), Encode!().unwrap(), Some(admin));
    }
    println!(
        "installed harness_conformance_canister ({} KiB wasm) on two subnets:",
        wasm.len() / 1024
    );
    println!("  A = {a} on {}", subnets[0]);
    println!("  B = {b} on {}", subnets[1]);

    // 1. A cross-subnet call: A awaits B, then replies to the user.
    let rounds_before = ic.rounds();
    let (reply,): (CallResult,) = ic
        .update_candid(
            a,
            user,
            "call_and_reply",
            (b, "inc_heap".to_string(), Encode!().unwrap()),
        )
        .expect("call_and_reply");
    let counter: u64 = candid::decode_one(&reply.expect("B replied")).unwrap();
    println!(
        "\n1. A called B across subnets and replied after the await: B's counter = {counter}, {} rounds",
        ic.rounds() - rounds_before
    );

    // 2. A timer set for 30 s fires only once simulated time has passed.
    let () = ic
        .update_candid(a, user, "set_timer_inc", (30u64,))
        .expect("set_timer_inc");
    let (before,): (u64,) = ic.query_candid(a, user, "get_stable", ()).unwrap();
    ic.advance_time(Duration::from_secs(30));
    ic.run_until_idle(100).expect("timer settles");
    let (after,): (u64,) = ic.query_candid(a, user, "get_stable", ()).unwrap();
    println!("2. timer: stable counter {before} before advance_time(30 s), {after} after");

    // 3. Upgrade keeps stable memory and drops the heap.
    let (heap,): (u64,) = ic.update_candid(a, user, "inc_heap", ()).unwrap();
    ic.upgrade_canister(a, wasm.clone(), Encode!().unwrap(), Some(admin))
        .expect("upgrade");
    let (heap_after,): (u64,) = ic.query_candid(a, user, "get_heap", ()).unwrap();
    let (stable_after,): (u64,) = ic.query_candid(a, user, "get_stable", ()).unwrap();
    println!(
        "3. upgrade: heap counter {heap} -> {heap_after}, stable counter kept at {stable_after}"
    );

    // 4. A trap after an await rolls back the callback but keeps what came before.
    let err = ic
        .update_call(a, user, "trap_after_await", Encode!(&b).unwrap())
        .expect_err("the method traps");
    let (stable_now,): (u64,) = ic.query_candid(a, user, "get_stable", ()).unwrap();
    println!(
        "4. trap after await: reject code {} ({:?}); stable counter {stable_after} -> {stable_now} (only the pre-await write kept)",
        err.code as u32, err.code
    );

    // 5. Stop, delete, and a call to the deleted canister.
    ic.stop_canister(b, Some(admin)).expect("stop");
    ic.delete_canister(b, Some(admin)).expect("delete");
    let (gone,): (CallResult,) = ic
        .update_candid(
            a,
            user,
            "call_and_reply",
            (b, "inc_heap".to_string(), Encode!().unwrap()),
        )
        .unwrap();
    let (code, message) = gone.expect_err("B is gone");
    println!("5. after deleting B, A's call gets code {code}: {message}");

    let m = ic.metrics(a);
    println!("\nfigures for A (harness-measured):");
    println!("  executions: {}", m.executions);
    println!(
        "  instructions: {} (largest execution {})",
        m.instructions, m.max_instructions_per_execution
    );
    println!(
        "  bytes sent/received: {}/{}",
        m.bytes_sent, m.bytes_received
    );
    println!("  cycles left: {}", ic.cycle_balance(a));
    println!(
        "  rounds: {}, wall time: {:.2?}",
        ic.rounds(),
        started.elapsed()
    );
}
