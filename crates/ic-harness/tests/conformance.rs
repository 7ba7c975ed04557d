//! Conformance tests: each test runs the real-ic-cdk canister in
//! `test-canisters/conformance` and checks one Internet Computer rule precisely (codes,
//! state on both sides, rounds), so that it fails if the harness broke the rule.
//!
//! Build the canister first: `scripts/build-wasm.sh`.

use std::sync::OnceLock;
use std::time::Duration;

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{Decode, Encode, Principal};
use ic_harness::{
    CanisterId, Harness, HarnessBuilder, InstructionLimits, Reject, RejectCode, load_canister_wasm,
};
use ic_management_canister_types::{CanisterIdRecord, CanisterStatusType};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------
// Shared setup
// ---------------------------------------------------------------------------------------

const CANISTER: &str = "harness_conformance_canister";
/// The harness's default cross-subnet latency, in rounds, each way.
const LATENCY_ROUNDS: u64 = 2;
/// Trap texts of the canister (see its `RAW_REPLY_TRAP` and `TRAP_AFTER_AWAIT`).
const RAW_REPLY_TRAP: &str = "raw reply callback traps on purpose";
const TRAP_AFTER_AWAIT: &str = "trap_after_await traps after its await on purpose";

/// What `call_and_reply` / `call_with_timeout` answer: reply bytes, or (reject code, message).
type CallResult = Result<Vec<u8>, (u32, String)>;

/// The canister module, read once per test binary.
fn wasm() -> Vec<u8> {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| load_canister_wasm(CANISTER)).clone()
}

fn no_args() -> Vec<u8> {
    Encode!().expect("encode ()")
}

/// A harness with `subnets` application subnets, a controller and a (non-controller) user.
struct Setup {
    ic: Harness,
    controller: Principal,
    user: Principal,
}

impl Setup {
    fn new(subnets: usize) -> Self {
        Self::with_builder(HarnessBuilder::new(), subnets)
    }

    fn with_builder(mut builder: HarnessBuilder, subnets: usize) -> Self {
        for _ in 0..subnets {
            builder = builder.with_application_subnet();
        }
        Self {
            ic: builder.build(),
            controller: Principal::self_authenticating(b"conformance controller"),
            user: Principal::self_authenticating(b"conformance user"),
        }
    }

    /// Creates a canister on the `subnet`-th application subnet and installs the test canister.
    fn install_on(&mut self, subnet: usize) -> CanisterId {
        let subnet_id = self.ic.topology().app_subnets[subnet];
        let id = self
            .ic
            .create_canister_on_subnet(Some(self.controller), None, subnet_id);
        self.ic
            .install_canister(id, wasm(), no_args(), Some(self.controller));
        assert_eq!(self.ic.get_subnet(id), Some(subnet_id));
        id
    }

    /// An ingress update from the user that must succeed.
    fn update<A: ArgumentEncoder, R: for<'de> ArgumentDecoder<'de>>(
        &mut self,
        canister: CanisterId,
        method: &str,
        args: A,
    ) -> R {
        self.ic
            .update_candid(canister, self.user, method, args)
            .unwrap_or_else(|e| panic!("update {method} on {canister} failed: {e:?}"))
    }

    /// An ingress update from the user that must be rejected.
    fn update_reject<A: ArgumentEncoder>(
        &mut self,
        canister: CanisterId,
        method: &str,
        args: A,
    ) -> Reject {
        let arg = candid::encode_args(args).expect("encode args");
        match self.ic.update_call(canister, self.user, method, arg) {
            Ok(reply) => panic!("update {method} on {canister} must be rejected, got {reply:?}"),
            Err(reject) => reject,
        }
    }

    /// An ingress query from the user that must succeed.
    fn query<A: ArgumentEncoder, R: for<'de> ArgumentDecoder<'de>>(
        &mut self,
        canister: CanisterId,
        method: &str,
        args: A,
    ) -> R {
        self.ic
            .query_candid(canister, self.user, method, args)
            .unwrap_or_else(|e| panic!("query {method} on {canister} failed: {e:?}"))
    }

    fn heap(&mut self, canister: CanisterId) -> u64 {
        self.query::<_, (u64,)>(canister, "get_heap", ()).0
    }

    fn stable(&mut self, canister: CanisterId) -> u64 {
        self.query::<_, (u64,)>(canister, "get_stable", ()).0
    }

    /// `caller.call_and_reply(target, method, arg)`, unwrapped to the canister's `CallResult`.
    fn relay(
        &mut self,
        caller: CanisterId,
        target: CanisterId,
        method: &str,
        arg: Vec<u8>,
    ) -> CallResult {
        self.update::<_, (CallResult,)>(caller, "call_and_reply", (target, method.to_string(), arg))
            .0
    }

    fn status(&mut self, canister: CanisterId) -> CanisterStatusType {
        self.ic
            .canister_status(canister, Some(self.controller))
            .expect("canister_status as controller")
            .status
    }
}

fn decode_u64(bytes: &[u8]) -> u64 {
    Decode!(bytes, u64).expect("reply is a candid nat64")
}

fn assert_reject(reject: &Reject, code: RejectCode, needle: &str) {
    assert_eq!(reject.code, code, "unexpected reject: {reject:?}");
    assert!(
        reject.message.contains(needle),
        "reject message should mention {needle:?}: {reject:?}"
    );
}

/// The canister's `burn` hash, computed on the host.
fn burn_on_host(iterations: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for i in 0..iterations {
        hash = (hash ^ i)
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(5);
    }
    hash
}

// ---------------------------------------------------------------------------------------
// Calls and replies
// ---------------------------------------------------------------------------------------

/// A method that awaits a call to another subnet replies to its own caller from the
/// callback, with the callee's reply; the request and the response each take the
/// cross-subnet latency, while a same-subnet call does not.
#[test]
fn reply_after_await_crosses_subnets() {
    let mut s = Setup::new(3);
    let a = s.install_on(0);
    let b = s.install_on(1);
    let c = s.install_on(2);
    let near = s.install_on(0);
    assert_ne!(s.ic.get_subnet(a), s.ic.get_subnet(b));

    let before = s.ic.rounds();
    let reply = s.relay(a, b, "inc_heap", no_args()).expect("b replies");
    let cross_rounds = s.ic.rounds() - before;
    assert_eq!(decode_u64(&reply), 1, "a relays b's reply");
    assert_eq!(s.heap(b), 1, "b's update committed");
    assert_eq!(s.heap(a), 0, "a only relayed");
    assert!(
        cross_rounds >= 2 * LATENCY_ROUNDS,
        "a cross-subnet round trip takes at least {} rounds, took {cross_rounds}",
        2 * LATENCY_ROUNDS
    );

    let before = s.ic.rounds();
    let reply = s
        .relay(a, near, "inc_heap", no_args())
        .expect("near replies");
    let same_rounds = s.ic.rounds() - before;
    assert_eq!(decode_u64(&reply), 1);
    assert!(
        same_rounds < cross_rounds,
        "a same-subnet call ({same_rounds} rounds) has no cross-subnet latency ({cross_rounds})"
    );

    // Two awaits deep, over three subnets: a -> b -> c, each replying from its callback.
    let inner_arg = Encode!(&c, &"inc_heap".to_string(), &no_args()).expect("encode");
    let outer = s
        .relay(a, b, "call_and_reply", inner_arg)
        .expect("b replies");
    let inner = Decode!(&outer, CallResult).expect("b's reply is a CallResult");
    assert_eq!(decode_u64(&inner.expect("c replies")), 1);
    assert_eq!(s.heap(c), 1);
    assert_eq!(s.heap(b), 1, "b's heap is unchanged by relaying");
}

/// Reject codes seen by a calling canister: `msg_reject` gives 4, a missing method or an
/// empty canister 5, a deleted canister 3.
#[test]
fn inter_canister_rejects_carry_ic_codes() {
    let mut s = Setup::new(2);
    let a = s.install_on(0);
    let b = s.install_on(1);

    let refused = s.relay(
        a,
        b,
        "reject_me",
        Encode!(&"no thanks".to_string()).unwrap(),
    );
    assert_eq!(refused, Err((4, "no thanks".to_string())));

    let (code, message) = s
        .relay(a, b, "no_such_method", no_args())
        .expect_err("missing method");
    assert_eq!(code, 5, "missing method: {message}");

    let empty =
        s.ic.create_canister_on_subnet(Some(s.controller), None, s.ic.topology().app_subnets[1]);
    let (code, message) = s
        .relay(a, empty, "inc_heap", no_args())
        .expect_err("empty canister");
    assert_eq!(code, 5, "canister without wasm: {message}");

    s.ic.stop_canister(empty, Some(s.controller))
        .expect("stop empty");
    s.ic.delete_canister(empty, Some(s.controller))
        .expect("delete empty");
    assert!(!s.ic.canister_exists(empty));
    let (code, message) = s
        .relay(a, empty, "inc_heap", no_args())
        .expect_err("deleted canister");
    assert_eq!(code, 3, "deleted canister: {message}");

    // A principal that was never a canister is no valid destination either.
    let nowhere = Principal::from_slice(&[0xAB; 10]);
    let (code, message) = s
        .relay(a, nowhere, "inc_heap", no_args())
        .expect_err("unknown canister");
    assert_eq!(code, 3, "unknown canister: {message}");

    // None of this disturbed the caller.
    assert_eq!(s.update::<_, (u64,)>(a, "inc_heap", ()).0, 1);
}

// ---------------------------------------------------------------------------------------
// Traps in callbacks
// ---------------------------------------------------------------------------------------

/// ic-cdk path: state committed before an await persists; the continuation that traps is
/// rolled back; the caller gets CANISTER_ERROR; the canister (and ic-cdk's executor, which
/// needs the rollback and the cleanup) keeps working.
#[test]
fn trap_after_await_keeps_state_committed_before_the_await() {
    let mut s = Setup::new(2);
    let a = s.install_on(0);
    let b = s.install_on(1);

    let reject = s.update_reject(a, "trap_after_await", (b,));
    assert_reject(&reject, RejectCode::CanisterError, TRAP_AFTER_AWAIT);
    assert!(
        reject.message.contains("callee answered: reply"),
        "the continuation ran after b's reply: {reject:?}"
    );
    assert_eq!(
        s.stable(a),
        1,
        "only the increment before the await persists"
    );
    assert_eq!(s.heap(b), 1, "the callee's execution committed");

    // The canister keeps working, including another await.
    assert_eq!(s.update::<_, (u64,)>(a, "inc_stable", ()).0, 2);
    let reply = s.relay(a, b, "inc_heap", no_args()).expect("b replies");
    assert_eq!(decode_u64(&reply), 2);
    let reject = s.update_reject(a, "trap_after_await", (b,));
    assert_reject(&reject, RejectCode::CanisterError, TRAP_AFTER_AWAIT);
    assert_eq!(s.stable(a), 3);
    assert_eq!(s.heap(b), 3);
}

/// Raw ic0 callbacks: a reply callback that traps is rolled back (its stable and heap writes
/// vanish), then the cleanup callback runs on the pre-callback state and commits; the
/// ingress caller gets CANISTER_ERROR with the callback's trap message. A callback that
/// does not trap runs no cleanup.
#[test]
fn trap_in_callback_runs_cleanup_and_rolls_back() {
    let mut s = Setup::new(2);
    let a = s.install_on(0);
    let b = s.install_on(1);

    let reject = s.update_reject(a, "raw_call_with_cleanup", (b, "inc_heap".to_string()));
    assert_reject(&reject, RejectCode::CanisterError, RAW_REPLY_TRAP);

    let markers = |s: &mut Setup| s.query::<_, (Vec<(String, u64)>,)>(a, "markers", ()).0;
    let expected = |reply: u64, cleanup: u64| {
        vec![
            ("reply".to_string(), reply),
            ("cleanup".to_string(), cleanup),
            ("cleanup_saw_reply".to_string(), 0),
            ("cleanup_saw_heap".to_string(), 0),
        ]
    };
    assert_eq!(
        markers(&mut s),
        expected(0, 1),
        "reply marker rolled back; cleanup ran once and saw no trace of the callback"
    );
    assert_eq!(s.heap(a), 0, "the callback's heap write was rolled back");
    assert_eq!(s.heap(b), 1, "the callee committed");
    assert_eq!(s.update::<_, (u64,)>(a, "inc_heap", ()).0, 1);

    // The reject callback does not trap: it answers with msg_reject and no cleanup runs.
    let reject = s.update_reject(
        a,
        "raw_call_with_cleanup",
        (b, "no_such_method".to_string()),
    );
    assert_reject(
        &reject,
        RejectCode::CanisterReject,
        "raw call rejected with code 5",
    );
    assert_eq!(
        markers(&mut s),
        expected(0, 1),
        "no cleanup after a clean callback"
    );
}

// ---------------------------------------------------------------------------------------
// Bounded-wait timeouts
// ---------------------------------------------------------------------------------------

/// A bounded-wait call whose deadline passes before the response can arrive completes with
/// SYS_UNKNOWN (6). With a 3 s timeout the request reaches the callee (2 rounds) before its
/// deadline, so the callee executes it; its reply (2 more rounds) is late and dropped, and
/// the caller keeps working. (A request still queued at its deadline is never executed:
/// `tests/system_faults.rs`; so the timeout here must outlast the one-way trip.)
#[test]
fn bounded_wait_call_times_out_with_sys_unknown() {
    /// Longer than the one-way trip (2 rounds of 1 s), shorter than the round trip.
    const TIMEOUT_SECONDS: u32 = 3;
    let mut s = Setup::new(2);
    let a = s.install_on(0);
    let b = s.install_on(1);

    let before = s.ic.rounds();
    let (outcome,): (CallResult,) = s.update(
        a,
        "call_with_timeout",
        (b, "inc_heap".to_string(), no_args(), TIMEOUT_SECONDS),
    );
    let rounds = s.ic.rounds() - before;
    let (code, message) = outcome.expect_err("a 3 s timeout cannot cover a 4 s round trip");
    assert_eq!(
        code,
        RejectCode::SysUnknown as u32,
        "timeout reject: {message}"
    );
    // The ingress takes a round to reach a; the reply would reach a a round trip later.
    assert!(
        rounds < 1 + 2 * LATENCY_ROUNDS,
        "the timeout answered after {rounds} rounds, before any reply could arrive"
    );

    s.ic.run_until_idle(100).expect("the late reply drains");
    assert_eq!(s.heap(b), 1, "the request was delivered and executed");
    let logs = s.ic.canister_logs(a);
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("Panicked") || l.contains("trap")),
        "the dropped late reply must not reach a callback: {logs:?}"
    );

    // A late reply must be dropped even while the caller's call context is still open (here
    // it awaits two more calls): no callback runs for it. The caller executes exactly once
    // for the ingress, once for the SYS_UNKNOWN reject and once per later reply.
    const HOPS: u32 = 2;
    let executions = s.ic.metrics(a).executions;
    let (first, last): (CallResult, u64) =
        s.update(a, "timeout_then_await", (b, TIMEOUT_SECONDS, HOPS));
    assert_eq!(
        first.expect_err("timed out").0,
        RejectCode::SysUnknown as u32
    );
    assert_eq!(
        last,
        2 + u64::from(HOPS),
        "the timed-out request reached b before the later ones"
    );
    assert_eq!(
        s.ic.metrics(a).executions - executions,
        2 + u64::from(HOPS),
        "the late reply ran no callback"
    );

    // The caller keeps working; with a long enough timeout the same call succeeds.
    let (outcome,): (CallResult,) = s.update(
        a,
        "call_with_timeout",
        (b, "inc_heap".to_string(), no_args(), 60u32),
    );
    assert_eq!(decode_u64(&outcome.expect("60 s is enough")), 5);
    assert_eq!(s.update::<_, (u64,)>(a, "inc_heap", ()).0, 1);
}

// ---------------------------------------------------------------------------------------
// Timers
// ---------------------------------------------------------------------------------------

/// An ic-cdk timer fires once, in the first rounds after its time is reached, and not before.
#[test]
fn timer_fires_after_advance_time() {
    let mut s = Setup::new(1);
    let a = s.install_on(0);

    let start = s.ic.time_nanos();
    s.update::<_, ()>(a, "set_timer_inc", (60u64,));
    // ic-cdk re-checks the time itself, so an early `canister_global_timer` would only show
    // as an execution: none may happen before the timer's time.
    let executions = s.ic.metrics(a).executions;
    for _ in 0..3 {
        s.ic.tick();
    }
    assert!(s.ic.time_nanos() - start < Duration::from_secs(60).as_nanos() as u64);
    assert_eq!(
        s.ic.metrics(a).executions,
        executions,
        "canister_global_timer must not run before the timer's time"
    );
    assert_eq!(s.stable(a), 0, "the timer must not fire early");

    s.ic.advance_time(Duration::from_secs(60));
    let mut rounds = 0;
    while s.stable(a) == 0 {
        assert!(
            rounds < 5,
            "the timer did not fire within 5 rounds of its time"
        );
        s.ic.tick();
        rounds += 1;
    }
    assert_eq!(s.stable(a), 1);

    // One-shot: nothing more, ever; and nothing left armed.
    s.ic.advance_time(Duration::from_secs(600));
    for _ in 0..5 {
        s.ic.tick();
    }
    assert_eq!(s.stable(a), 1, "a one-shot timer fires once");
    s.ic.run_until_idle(10).expect("no timer left armed");
}

// ---------------------------------------------------------------------------------------
// Upgrades
// ---------------------------------------------------------------------------------------

/// An upgrade runs post_upgrade (not init) on a fresh heap, and keeps stable memory byte for
/// byte. Only a controller may upgrade.
#[test]
fn upgrade_keeps_stable_memory_and_drops_heap() {
    let mut s = Setup::new(1);
    let a = s.install_on(0);
    for _ in 0..3 {
        s.update::<_, (u64,)>(a, "inc_heap", ());
    }
    for _ in 0..2 {
        s.update::<_, (u64,)>(a, "inc_stable", ());
    }
    assert_eq!(s.query::<_, (String,)>(a, "lifecycle", ()).0, "init");
    let stable_before = s.ic.get_stable_memory(a);
    assert!(!stable_before.is_empty());

    let denied =
        s.ic.upgrade_canister(a, wasm(), no_args(), Some(s.user))
            .expect_err("a non-controller cannot upgrade");
    assert_eq!(denied.code, RejectCode::CanisterError, "{denied:?}");
    assert_eq!(s.heap(a), 3, "a refused upgrade changes nothing");

    s.ic.upgrade_canister(a, wasm(), no_args(), Some(s.controller))
        .expect("controller upgrades");
    assert_eq!(s.heap(a), 0, "the heap starts fresh");
    assert_eq!(s.stable(a), 2, "the stable counter survives");
    assert_eq!(
        s.query::<_, (String,)>(a, "lifecycle", ()).0,
        "post_upgrade"
    );
    assert!(
        s.ic.get_stable_memory(a) == stable_before,
        "stable memory is kept byte for byte"
    );
    assert_eq!(s.update::<_, (u64,)>(a, "inc_stable", ()).0, 3);
    assert_eq!(s.update::<_, (u64,)>(a, "inc_heap", ()).0, 1);
}

// ---------------------------------------------------------------------------------------
// Stopping
// ---------------------------------------------------------------------------------------

/// `stop_canister` makes the canister `stopping` at once (new calls are rejected with 5) but
/// replies only after its open call contexts have finished; the awaited responses are still
/// processed, and the open call completes normally.
#[test]
fn stop_waits_for_open_calls() {
    const HOPS: u32 = 3;
    let mut s = Setup::new(2);
    let a = s.install_on(0);
    let b = s.install_on(1);

    let long =
        s.ic.submit_call(a, s.user, "long_await", Encode!(&b, &HOPS).unwrap())
            .expect("submit long_await");
    s.ic.tick();
    s.ic.tick();
    assert!(
        s.ic.ingress_status(long).is_none(),
        "long_await is awaiting b"
    );

    let stop =
        s.ic.submit_call(
            Principal::management_canister(),
            s.controller,
            "stop_canister",
            Encode!(&CanisterIdRecord { canister_id: a }).unwrap(),
        )
        .expect("submit stop_canister");
    s.ic.tick();
    assert_eq!(s.status(a), CanisterStatusType::Stopping);

    let refused = s.update_reject(a, "inc_heap", ());
    assert_eq!(
        refused.code,
        RejectCode::CanisterError,
        "a stopping canister rejects new calls: {refused:?}"
    );

    let mut rounds = 0;
    while s.ic.ingress_status(long).is_none() {
        assert!(
            s.ic.ingress_status(stop).is_none(),
            "stop_canister replied while a call context was open"
        );
        assert_eq!(s.status(a), CanisterStatusType::Stopping);
        assert!(rounds < 200, "long_await never finished");
        s.ic.tick();
        rounds += 1;
    }
    let long_reply = s.ic.await_call(long).expect("long_await completes");
    assert_eq!(decode_u64(&long_reply), 1, "long_await ran to its end");
    assert_eq!(s.heap(b), u64::from(HOPS), "every hop reached b");

    s.ic.await_call(stop).expect("stop_canister replies");
    assert_eq!(s.status(a), CanisterStatusType::Stopped);

    s.ic.start_canister(a, Some(s.controller)).expect("start");
    assert_eq!(s.status(a), CanisterStatusType::Running);
    assert_eq!(s.stable(a), 1);
}

// ---------------------------------------------------------------------------------------
// Management canister from a canister
// ---------------------------------------------------------------------------------------

/// A canister creates another on its own subnet (paying with attached cycles), becomes its
/// only controller, and installs code in it; the child then works.
#[test]
fn canister_creates_and_installs_another() {
    const CYCLES: u128 = 2_000_000_000_000;
    let mut s = Setup::new(2);
    let factory = s.install_on(1);
    let balance_before = s.ic.cycle_balance(factory);

    let wasm = wasm();
    let (child,): (Principal,) = s.update(factory, "create_and_install", (wasm.clone(), CYCLES));
    assert_ne!(child, factory);
    assert!(s.ic.canister_exists(child));
    assert_eq!(
        s.ic.get_subnet(child),
        s.ic.get_subnet(factory),
        "created on the caller's subnet"
    );

    let child_balance = s.ic.cycle_balance(child);
    assert!(
        child_balance > 0 && child_balance <= CYCLES,
        "the child is funded by the attached cycles, less fees: {child_balance}"
    );
    assert!(
        s.ic.cycle_balance(factory) <= balance_before - CYCLES,
        "the factory paid the attached cycles"
    );

    let status =
        s.ic.canister_status(child, Some(factory))
            .expect("the factory controls the child");
    assert_eq!(status.settings.controllers, vec![factory]);
    assert_eq!(status.status, CanisterStatusType::Running);
    assert_eq!(
        status.module_hash,
        Some(Sha256::digest(&wasm).to_vec()),
        "the factory's wasm is installed"
    );
    let denied =
        s.ic.canister_status(child, Some(s.controller))
            .expect_err("the factory's controller does not control the child");
    assert_eq!(denied.code, RejectCode::CanisterError, "{denied:?}");

    assert_eq!(s.query::<_, (String,)>(child, "lifecycle", ()).0, "init");
    assert_eq!(s.update::<_, (u64,)>(child, "inc_heap", ()).0, 1);
}

// ---------------------------------------------------------------------------------------
// Instruction limit
// ---------------------------------------------------------------------------------------

/// An execution over the instruction limit traps: CANISTER_ERROR with a message about the
/// limit, nothing committed, and the canister keeps working.
#[test]
fn instruction_limit_gives_canister_error() {
    const LIMIT: u64 = 50_000_000;
    let builder = HarnessBuilder::new().with_instruction_limits(InstructionLimits {
        update: LIMIT,
        query: LIMIT,
        ..InstructionLimits::default()
    });
    let mut s = Setup::with_builder(builder, 1);
    let a = s.install_on(0);

    assert_eq!(
        s.update::<_, (u64,)>(a, "burn", (1_000u64,)).0,
        burn_on_host(1_000),
        "a small burn fits"
    );
    assert_eq!(s.update::<_, (u64,)>(a, "inc_stable", ()).0, 1);

    let reject = s.update_reject(a, "burn", (1_000_000_000u64,));
    assert_eq!(reject.code, RejectCode::CanisterError, "{reject:?}");
    let message = reject.message.to_lowercase();
    assert!(
        message.contains("instruction") && message.contains("limit") && message.contains("exceed"),
        "the message must say the instruction limit was exceeded: {reject:?}"
    );
    assert!(
        s.ic.metrics(a).max_instructions_per_execution <= LIMIT,
        "no execution ran past the limit: {:?}",
        s.ic.metrics(a)
    );

    assert_eq!(s.stable(a), 1);
    assert_eq!(
        s.update::<_, (u64,)>(a, "inc_stable", ()).0,
        2,
        "still works"
    );
}

// ---------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------

/// Queries never persist state (ingress query, query called as an update, query called by a
/// canister) and cannot make calls (`ic0.call_new` traps in both query modes).
#[test]
fn queries_cannot_persist_state_or_make_calls() {
    let mut s = Setup::new(2);
    let a = s.install_on(0);
    let b = s.install_on(1);

    assert_eq!(s.query::<_, (u64,)>(a, "query_mutates", ()).0, 1);
    assert_eq!(s.query::<_, (u64,)>(a, "query_mutates", ()).0, 1);
    assert_eq!(s.heap(a), 0, "ingress query state is discarded");

    assert_eq!(s.update::<_, (u64,)>(a, "query_mutates", ()).0, 1);
    assert_eq!(s.heap(a), 0, "a query run as an update persists nothing");

    let reply = s
        .relay(b, a, "query_mutates", no_args())
        .expect("b may call a's query");
    assert_eq!(decode_u64(&reply), 1);
    assert_eq!(
        s.heap(a),
        0,
        "a query called by a canister persists nothing"
    );

    let arg = Encode!(&b).unwrap();
    let reject =
        s.ic.query_call(a, s.user, "query_tries_to_call", arg.clone())
            .expect_err("an ingress query cannot call");
    assert_reject(&reject, RejectCode::CanisterError, "call_new");
    let reject =
        s.ic.update_call(a, s.user, "query_tries_to_call", arg)
            .expect_err("a replicated query cannot call");
    assert_reject(&reject, RejectCode::CanisterError, "call_new");

    s.ic.run_until_idle(50).expect("nothing in flight");
    assert_eq!(s.heap(b), 0, "no call ever reached b");
    assert_eq!(
        s.update::<_, (u64,)>(a, "inc_heap", ()).0,
        1,
        "a still works"
    );
}

// ---------------------------------------------------------------------------------------
// Candid
// ---------------------------------------------------------------------------------------

/// An argument that does not decode as the method's candid type traps (ic-cdk unwraps the
/// decode), so the caller gets CANISTER_ERROR; the canister keeps working.
#[test]
fn candid_decode_failure_traps() {
    let mut s = Setup::new(1);
    let a = s.install_on(0);

    let bad_args: [(&str, Vec<u8>); 3] = [
        ("not candid at all", b"definitely not candid".to_vec()),
        ("text for nat64", Encode!(&"ten".to_string()).unwrap()),
        ("missing argument", no_args()),
    ];
    for (what, arg) in bad_args {
        let reject = s.ic.update_call(a, s.user, "burn", arg).expect_err(what);
        assert_reject(&reject, RejectCode::CanisterError, "unwrap");
    }

    // Also through a canister: the calling canister sees code 5.
    let b = s.install_on(0);
    let (code, message) = s
        .relay(b, a, "burn", b"DIDL garbage".to_vec())
        .expect_err("bad candid from a canister");
    assert_eq!(code, 5, "{message}");

    assert_eq!(
        s.update::<_, (u64,)>(a, "burn", (7u64,)).0,
        burn_on_host(7),
        "the canister still decodes good arguments"
    );
}
