//! Conformance of 64-bit (memory64) canisters and of upgrades with
//! `wasm_memory_persistence = keep`, on small hand-written modules (no build step).
//!
//! Sources: the interface spec's System API import table (`I ∈ {i32, i64}` follows the
//! width of the declared memory) and its upgrade rules; the replica's
//! `determine_main_memory_handling` (dfinity/ic `execution/upgrade.rs`) and
//! `Hypervisor::validate_wasm_memory` for the heap limits.

use candid::Principal;
use ic_harness::limits::MAX_WASM64_HEAP_BYTES;
use ic_harness::{CanisterId, Harness, HarnessBuilder, RejectCode};
use ic_management_canister_types::{
    ReadCanisterSnapshotDataArgs, ReadCanisterSnapshotDataResult, ReadCanisterSnapshotMetadataArgs,
    ReadCanisterSnapshotMetadataResult, SnapshotDataKind, SnapshotDataOffset, UpgradeFlags,
    UploadCanisterSnapshotDataArgs, UploadCanisterSnapshotMetadataArgs,
    UploadCanisterSnapshotMetadataResult, WasmMemoryPersistence,
};

const WASM_PAGE: u64 = 65_536;

/// A memory64 canister: echo, memory.grow, a self-call whose callback gets a 64-bit
/// environment, a heap counter, and a write above 4 GiB that then traps.
const WASM64: &str = r#"
(module
  (import "ic0" "msg_arg_data_size" (func $arg_size (result i64)))
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i64 i64 i64)))
  (import "ic0" "msg_reply_data_append" (func $append (param i64 i64)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "canister_self_size" (func $self_size (result i64)))
  (import "ic0" "canister_self_copy" (func $self_copy (param i64 i64 i64)))
  (import "ic0" "call_new" (func $call_new (param i64 i64 i64 i64 i64 i64 i64 i64)))
  (import "ic0" "call_perform" (func $call_perform (result i32)))
  (import "ic0" "trap" (func $trap (param i64 i64)))
  (memory i64 2)
  (table 1 funcref)
  (elem (i32.const 0) $on_reply)
  (data (i64.const 0x100) "pong")
  (data (i64.const 0x120) "wrote above 4 GiB")
  (func (export "canister_update echo")
    (local $n i64)
    (local.set $n (call $arg_size))
    (call $arg_copy (i64.const 0x10000) (i64.const 0) (local.get $n))
    (call $append (i64.const 0x10000) (local.get $n))
    (call $reply))
  (func (export "canister_update grow")
    (call $arg_copy (i64.const 0) (i64.const 0) (i64.const 8))
    (i64.store (i64.const 8) (memory.grow (i64.load (i64.const 0))))
    (call $append (i64.const 8) (i64.const 8))
    (call $reply))
  (func (export "canister_update above_4gib")
    (if (i64.eq (memory.grow (i64.const 65536)) (i64.const -1)) (then unreachable))
    (i32.store8 (i64.const 0x100000008) (i32.const 7))
    (if (i32.eq (i32.load8_u (i64.const 0x100000008)) (i32.const 7))
      (then (call $trap (i64.const 0x120) (i64.const 17))))
    (call $reply))
  (func (export "canister_update call_self")
    (local $n i64)
    (local.set $n (call $self_size))
    (call $self_copy (i64.const 0x200) (i64.const 0) (local.get $n))
    (call $call_new (i64.const 0x200) (local.get $n) (i64.const 0x100) (i64.const 4)
      (i64.const 0) (i64.const 0x100000005) (i64.const 0) (i64.const 0x100000005))
    (drop (call $call_perform)))
  (func (export "canister_update pong") (call $reply))
  (func $on_reply (param $env i64)
    (i64.store (i64.const 0x300) (local.get $env))
    (call $append (i64.const 0x300) (i64.const 8))
    (call $reply))
  (func (export "canister_update inc")
    (i64.store (i64.const 0x400) (i64.add (i64.load (i64.const 0x400)) (i64.const 1)))
    (call $append (i64.const 0x400) (i64.const 8))
    (call $reply))
  (func (export "canister_query get")
    (call $append (i64.const 0x400) (i64.const 8))
    (call $reply))
)
"#;

/// A module with enhanced orthogonal persistence (when `eop`): a heap counter at 0, a
/// pre_upgrade counter at 8, a mutable global starting at `global_init`, and a data
/// segment `tag` at 32. `get` answers counter, pre_upgrade counter, global and tag.
fn persistent_module(eop: bool, global_init: i64, tag: &str) -> Vec<u8> {
    let section = if eop {
        r#"(@custom "icp:private enhanced-orthogonal-persistence" "")"#
    } else {
        ""
    };
    wat(&format!(
        r#"
(module
  (import "ic0" "msg_reply_data_append" (func $append (param i64 i64)))
  (import "ic0" "msg_reply" (func $reply))
  (memory i64 1)
  (global $g (mut i64) (i64.const {global_init}))
  (data (i64.const 32) "{tag}")
  (func (export "canister_update inc")
    (i64.store (i64.const 0) (i64.add (i64.load (i64.const 0)) (i64.const 1)))
    (global.set $g (i64.add (global.get $g) (i64.const 1)))
    (call $reply))
  (func (export "canister_query get")
    (i64.store (i64.const 16) (global.get $g))
    (call $append (i64.const 0) (i64.const 34))
    (call $reply))
  (func (export "canister_pre_upgrade")
    (i64.store (i64.const 8) (i64.add (i64.load (i64.const 8)) (i64.const 1))))
  {section}
)
"#
    ))
}

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid wat")
}

fn u64_le(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

struct Setup {
    ic: Harness,
    controller: Principal,
}

impl Setup {
    fn new(subnets: usize) -> Self {
        let mut builder = HarnessBuilder::new();
        for _ in 0..subnets {
            builder = builder.with_application_subnet();
        }
        Self {
            ic: builder.build(),
            controller: Principal::self_authenticating(b"wasm64 controller"),
        }
    }

    fn create(&mut self, subnet: usize) -> CanisterId {
        let subnet = self.ic.topology().app_subnets[subnet];
        self.ic
            .create_canister_on_subnet(Some(self.controller), None, subnet)
    }

    fn install(&mut self, subnet: usize, wasm: Vec<u8>) -> CanisterId {
        let id = self.create(subnet);
        self.ic
            .install_canister(id, wasm, Vec::new(), Some(self.controller));
        id
    }

    fn update(&mut self, id: CanisterId, method: &str, arg: Vec<u8>) -> Vec<u8> {
        self.ic
            .update_call(id, self.controller, method, arg)
            .unwrap_or_else(|r| panic!("{method}: {r}"))
    }

    fn query(&mut self, id: CanisterId, method: &str) -> Vec<u8> {
        self.ic
            .query_call(id, self.controller, method, Vec::new())
            .unwrap_or_else(|r| panic!("{method}: {r}"))
    }

    fn upgrade(
        &mut self,
        id: CanisterId,
        wasm: Vec<u8>,
        persistence: Option<WasmMemoryPersistence>,
    ) -> Result<(), ic_harness::Reject> {
        let flags = UpgradeFlags {
            skip_pre_upgrade: None,
            wasm_memory_persistence: persistence,
        };
        self.ic
            .upgrade_canister_with_flags(id, wasm, Vec::new(), Some(self.controller), flags)
    }
}

// ---------------------------------------------------------------------------------------
// memory64: the i64 System API
// ---------------------------------------------------------------------------------------

#[test]
fn memory64_module_runs_with_i64_system_api() {
    let mut s = Setup::new(1);
    let id = s.install(0, wat(WASM64));
    let payload = b"sixty-four bit addresses".to_vec();
    assert_eq!(s.update(id, "echo", payload.clone()), payload);
    assert_eq!(u64_le(&s.update(id, "inc", Vec::new())), 1);
    assert_eq!(u64_le(&s.query(id, "get")), 1);
}

#[test]
fn memory64_callback_receives_a_64_bit_environment() {
    let mut s = Setup::new(1);
    let id = s.install(0, wat(WASM64));
    // The environment passed to call_new is above u32::MAX: truncating it to 32 bits
    // (as a wasm32 callback would) would answer 5.
    assert_eq!(
        u64_le(&s.update(id, "call_self", Vec::new())),
        0x1_0000_0005
    );
}

#[test]
fn memory64_heap_grows_past_4_gib_and_stops_at_the_replica_limit() {
    let mut s = Setup::new(1);
    let id = s.install(0, wat(WASM64));
    // One more page than the limit allows: memory.grow answers -1, the heap is unchanged.
    let too_many = MAX_WASM64_HEAP_BYTES / WASM_PAGE - 2 + 1;
    let grown = s.update(id, "grow", too_many.to_le_bytes().to_vec());
    assert_eq!(
        u64_le(&grown),
        u64::MAX,
        "grow past the wasm64 limit must fail"
    );
    let grown = s.update(id, "grow", 1u64.to_le_bytes().to_vec());
    assert_eq!(
        u64_le(&grown),
        2,
        "a small grow answers the old size in pages"
    );
    // A heap above 4 GiB is addressable (the method writes at 4 GiB + 8 and traps to say
    // so, which also drops the 4 GiB growth).
    let err =
        s.ic.update_call(id, s.controller, "above_4gib", Vec::new())
            .expect_err("the method traps after the write");
    assert_eq!(err.code, RejectCode::CanisterError);
    assert!(err.message.contains("wrote above 4 GiB"), "{err}");
    assert_eq!(u64_le(&s.query(id, "get")), 0);
}

#[test]
fn wrong_width_imports_are_refused() {
    let mut s = Setup::new(1);
    // A memory64 module importing the wasm32 signature of msg_arg_data_size.
    let bad64 = wat(r#"(module
        (import "ic0" "msg_arg_data_size" (func (result i32)))
        (memory i64 1))"#);
    // A wasm32 module importing the wasm64 signature of msg_reply_data_append.
    let bad32 = wat(r#"(module
        (import "ic0" "msg_reply_data_append" (func (param i64 i64)))
        (memory 1))"#);
    for (module, name) in [
        (bad64, "msg_arg_data_size"),
        (bad32, "msg_reply_data_append"),
    ] {
        let id = s.create(0);
        let err =
            s.ic.try_install_canister(id, module, Vec::new(), Some(s.controller))
                .expect_err("a wrong-width import is refused");
        assert_eq!(err.code, RejectCode::CanisterError);
        assert!(
            err.message.contains("incorrect signature") && err.message.contains(name),
            "{err}"
        );
    }
    // The 32-bit stable memory API exists only for 32-bit memories.
    let stable32 = wat(r#"(module
        (import "ic0" "stable_size" (func (result i32)))
        (memory i64 1))"#);
    let id = s.create(0);
    let err =
        s.ic.try_install_canister(id, stable32, Vec::new(), Some(s.controller))
            .expect_err("no ic0.stable_size for a memory64 module");
    assert!(
        err.message.contains("stable_size") && err.message.contains("not exported"),
        "{err}"
    );
    // ... while a wasm32 module may still import it (it traps if called: not modelled).
    let id = s.create(0);
    let stable32 = wat(r#"(module
        (import "ic0" "stable_size" (func (result i32)))
        (memory 1))"#);
    s.ic.try_install_canister(id, stable32, Vec::new(), Some(s.controller))
        .expect("a wasm32 module may import stable_size");
}

#[test]
fn memory64_initial_heap_above_the_limit_is_refused() {
    let mut s = Setup::new(1);
    let pages = MAX_WASM64_HEAP_BYTES / WASM_PAGE + 1;
    let module = wat(&format!("(module (memory i64 {pages}))"));
    let id = s.create(0);
    let err =
        s.ic.try_install_canister(id, module, Vec::new(), Some(s.controller))
            .expect_err("an initial heap above the limit cannot be instantiated");
    assert_eq!(err.code, RejectCode::CanisterError);
}

// ---------------------------------------------------------------------------------------
// Snapshots of a memory64 canister
// ---------------------------------------------------------------------------------------

#[test]
fn memory64_snapshot_restores_and_copies_the_64_bit_heap_across_subnets() {
    let mut s = Setup::new(2);
    let id = s.install(0, wat(WASM64));
    for _ in 0..3 {
        s.update(id, "inc", Vec::new());
    }
    let snap =
        s.ic.take_canister_snapshot(id, Some(s.controller), None)
            .expect("take");
    s.update(id, "inc", Vec::new());
    assert_eq!(u64_le(&s.query(id, "get")), 4);
    s.ic.load_canister_snapshot(id, Some(s.controller), snap.id.clone())
        .expect("load");
    assert_eq!(u64_le(&s.query(id, "get")), 3);
    // The callback table and the i64 imports work in the restored instance.
    assert_eq!(
        u64_le(&s.update(id, "call_self", Vec::new())),
        0x1_0000_0005
    );

    // Download from subnet 0, upload into a canister of subnet 1, load there.
    let target = s.create(1);
    let ctl = Some(s.controller);
    let (meta,): (ReadCanisterSnapshotMetadataResult,) =
        s.ic.management_update(
            ctl,
            "read_canister_snapshot_metadata",
            &ReadCanisterSnapshotMetadataArgs {
                canister_id: id,
                snapshot_id: snap.id.clone(),
            },
        )
        .expect("metadata");
    assert_eq!(meta.wasm_memory_size, 2 * WASM_PAGE);
    let (uploaded,): (UploadCanisterSnapshotMetadataResult,) =
        s.ic.management_update(
            ctl,
            "upload_canister_snapshot_metadata",
            &UploadCanisterSnapshotMetadataArgs {
                canister_id: target,
                replace_snapshot: None,
                wasm_module_size: meta.wasm_module_size,
                globals: meta.globals.iter().flatten().cloned().collect(),
                wasm_memory_size: meta.wasm_memory_size,
                stable_memory_size: meta.stable_memory_size,
                certified_data: meta.certified_data.clone(),
                global_timer: meta.global_timer.clone(),
                on_low_wasm_memory_hook_status: None,
            },
        )
        .expect("upload metadata");
    for (size, read, write) in [
        (
            meta.wasm_module_size,
            (|o, n| SnapshotDataKind::WasmModule { offset: o, size: n })
                as fn(u64, u64) -> SnapshotDataKind,
            (|o| SnapshotDataOffset::WasmModule { offset: o }) as fn(u64) -> SnapshotDataOffset,
        ),
        (
            meta.wasm_memory_size,
            |o, n| SnapshotDataKind::WasmMemory { offset: o, size: n },
            |o| SnapshotDataOffset::WasmMemory { offset: o },
        ),
    ] {
        let mut offset = 0;
        while offset < size {
            let n = (size - offset).min(1_000_000);
            let (piece,): (ReadCanisterSnapshotDataResult,) =
                s.ic.management_update(
                    ctl,
                    "read_canister_snapshot_data",
                    &ReadCanisterSnapshotDataArgs {
                        canister_id: id,
                        snapshot_id: snap.id.clone(),
                        kind: read(offset, n),
                    },
                )
                .expect("read");
            let () =
                s.ic.management_update(
                    ctl,
                    "upload_canister_snapshot_data",
                    &UploadCanisterSnapshotDataArgs {
                        canister_id: target,
                        snapshot_id: uploaded.snapshot_id.clone(),
                        kind: write(offset),
                        chunk: piece.chunk,
                    },
                )
                .expect("upload");
            offset += n;
        }
    }
    s.ic.load_canister_snapshot(target, ctl, uploaded.snapshot_id)
        .expect("load the copy");
    assert_eq!(u64_le(&s.query(target, "get")), 3);
    assert_eq!(
        u64_le(&s.update(target, "call_self", Vec::new())),
        0x1_0000_0005
    );
}

// ---------------------------------------------------------------------------------------
// Upgrades: wasm_memory_persistence
// ---------------------------------------------------------------------------------------

/// (heap counter, pre_upgrade counter, global, data tag) of a `persistent_module`.
fn state(s: &mut Setup, id: CanisterId) -> (u64, u64, u64, String) {
    let r = s.query(id, "get");
    (
        u64_le(&r[0..]),
        u64_le(&r[8..]),
        u64_le(&r[16..]),
        String::from_utf8_lossy(&r[32..34]).into_owned(),
    )
}

fn installed_eop(s: &mut Setup) -> CanisterId {
    let id = s.install(0, persistent_module(true, 100, "v1"));
    for _ in 0..3 {
        s.update(id, "inc", Vec::new());
    }
    assert_eq!(state(s, id), (3, 0, 103, "v1".into()));
    id
}

#[test]
fn keep_carries_the_heap_as_pre_upgrade_left_it_and_resets_globals() {
    let mut s = Setup::new(1);
    let id = installed_eop(&mut s);
    s.upgrade(
        id,
        persistent_module(true, 200, "v2"),
        Some(WasmMemoryPersistence::Keep),
    )
    .expect("keep upgrade");
    // Heap: the counter, pre_upgrade's write, and the OLD data segment (the new module's
    // data segments are not applied over a kept heap). Globals: the new module's initial.
    assert_eq!(state(&mut s, id), (3, 1, 200, "v1".into()));
    s.update(id, "inc", Vec::new());
    assert_eq!(state(&mut s, id), (4, 1, 201, "v1".into()));
}

#[test]
fn replace_and_classical_upgrades_start_from_the_new_module_memory() {
    let mut s = Setup::new(1);
    let id = installed_eop(&mut s);
    s.upgrade(
        id,
        persistent_module(true, 200, "v2"),
        Some(WasmMemoryPersistence::Replace),
    )
    .expect("replace upgrade");
    assert_eq!(state(&mut s, id), (0, 0, 200, "v2".into()));
    // A module without the section: no option needed, the heap is replaced.
    let classical = s.install(0, persistent_module(false, 100, "v1"));
    s.update(classical, "inc", Vec::new());
    s.upgrade(classical, persistent_module(false, 300, "v3"), None)
        .expect("classical upgrade");
    assert_eq!(state(&mut s, classical), (0, 0, 300, "v3".into()));
}

#[test]
fn eop_upgrade_without_the_option_is_refused_and_changes_nothing() {
    let mut s = Setup::new(1);
    let id = installed_eop(&mut s);
    let err = s
        .upgrade(id, persistent_module(true, 200, "v2"), None)
        .expect_err("the option is required");
    assert_eq!(err.code, RejectCode::CanisterError);
    assert!(
        err.message.contains("Missing upgrade option")
            && err.message.contains("wasm_memory_persistence")
            && err.message.contains("IC0504"),
        "{err}"
    );
    // pre_upgrade ran (the replica checks after it) but its write was rolled back.
    assert_eq!(state(&mut s, id), (3, 0, 103, "v1".into()));
}

#[test]
fn keep_onto_a_module_without_eop_is_refused_and_changes_nothing() {
    let mut s = Setup::new(1);
    let id = installed_eop(&mut s);
    let err = s
        .upgrade(
            id,
            persistent_module(false, 200, "v2"),
            Some(WasmMemoryPersistence::Keep),
        )
        .expect_err("keep needs an EOP module");
    assert_eq!(err.code, RejectCode::CanisterError);
    assert!(
        err.message.contains("Invalid upgrade option")
            && err.message.contains("enhanced orthogonal persistence")
            && err.message.contains("IC0504"),
        "{err}"
    );
    // pre_upgrade ran persisted (keep) and was undone: heap and globals as before.
    assert_eq!(state(&mut s, id), (3, 0, 103, "v1".into()));
    s.update(id, "inc", Vec::new());
    assert_eq!(state(&mut s, id), (4, 0, 104, "v1".into()));
}
