//! The replica's instruction weights: what one wasm operator, one System API call and one
//! newly dirtied stable-memory page add to the instruction counter.
//!
//! Sources (dfinity/ic):
//! - operators: `instruction_to_cost(op, mem_type)` in
//!   `rs/embedders/src/wasm_utils/instrumentation.rs` (the `wirm` version, with
//!   `WasmMemoryType`), and its `injections`/`inject_metering` (a function body starts at 1,
//!   bulk memory and table operations are charged their size operand before they run);
//! - System API: `overhead` in `rs/embedders/src/wasmtime_embedder/system_api_complexity.rs`,
//!   charged by `charge_for_cpu`/`charge_for_cpu_and_mem` in
//!   `rs/embedders/src/wasmtime_embedder/linker.rs` (dfinity/ic 6b857d45) plus 1 per byte on
//!   application subnets (`get_num_instructions_from_bytes`), 50 per byte for data sent out
//!   (`BYTE_TRANSMISSION_COST_FACTOR`);
//! - stable memory: the wasm-native replacements in
//!   `rs/embedders/src/wasm_utils/system_api_replacements.rs` (`overhead_native`, and
//!   `dirty_page_overhead` per newly dirtied 4 KiB page, `DEFAULT_DIRTY_PAGE_OVERHEAD` in
//!   `rs/config/src/subnet_config.rs` for application subnets).
//!
//! Invariant: the harness charges an operator its replica weight through wasmtime's
//! per-operator fuel table ([`operator_cost`]); every `ic0` host function charges
//! [`Syscall::overhead`] (+ bytes) through [`syscall_cost`]. The two differences from the
//! replica's basic-block metering are documented in docs/harness.md ("Instruction counting").

use wasmtime::OperatorCost;

/// `BYTE_TRANSMISSION_COST_FACTOR`: instructions per byte of a payload the canister sends
/// out (`msg_reply_data_append`, `msg_reject`, `call_data_append`).
pub const BYTE_TRANSMISSION_COST_FACTOR: u64 = 50;

/// `DEFAULT_DIRTY_PAGE_OVERHEAD`: instructions per 4 KiB stable-memory page first written in
/// an execution, on application subnets (system subnets: 0).
pub const DIRTY_PAGE_OVERHEAD: u64 = 1_000;

/// Size of the OS page the replica tracks stable-memory accesses in.
pub const OS_PAGE_BYTES: u64 = 4096;

/// Canister log capacity the debug-print charge assumes (`logging_charge_bytes`:
/// `2 * min(len, capacity) + 50 * min(len, remaining)`); the harness keeps no canister log
/// and charges as if the log were empty (`remaining = capacity`), the upper bound.
pub const LOG_CAPACITY_BYTES: u64 = 4096;

/// wasmtime stores an operator's cost in a `u8`: the replica's 300 (memory.grow, table.grow,
/// data.drop, elem.drop) is charged as this, 45 less.
const U8_MAX_COST: u8 = u8::MAX;

/// The rest of `memory.grow`'s and `table.grow`'s 300, charged per growth attempt through
/// the store's resource limiter (`HeapLimit`); `data.drop` and `elem.drop` stay 45 short.
pub const GROW_SURCHARGE: u64 = 300 - U8_MAX_COST as u64;

/// The per-operator fuel table for a module whose main memory is 64-bit (`memory64`) or not.
/// Loads and stores cost 2 under memory64 (bounds checks), 1 otherwise.
#[must_use]
pub fn operator_cost(memory64: bool) -> OperatorCost {
    let mut c = OperatorCost::new();
    let mem: u8 = if memory64 { 2 } else { 1 };

    // Block markers are free; the other control operators are not.
    c.Block = 0;
    c.Loop = 0;
    c.Else = 0;
    c.End = 0;
    c.Nop = 1;
    c.Drop = 1;
    c.Unreachable = 1;
    c.Return = 1;
    c.If = 2;
    c.Br = 2;
    c.BrIf = 2;
    c.BrTable = 2;
    c.Select = 1;
    c.TypedSelect = 1;

    // Integer division and remainder.
    c.I32DivS = 10;
    c.I32DivU = 10;
    c.I32RemS = 10;
    c.I32RemU = 10;
    c.I64DivS = 10;
    c.I64DivU = 10;
    c.I64RemS = 10;
    c.I64RemU = 10;

    // Floats.
    for op in [
        &mut c.F32Add,
        &mut c.F32Sub,
        &mut c.F32Mul,
        &mut c.F32Ceil,
        &mut c.F32Floor,
        &mut c.F32Trunc,
        &mut c.F32Nearest,
        &mut c.F64Add,
        &mut c.F64Sub,
        &mut c.F64Mul,
        &mut c.F64Ceil,
        &mut c.F64Floor,
        &mut c.F64Trunc,
        &mut c.F64Nearest,
        &mut c.F32Copysign,
    ] {
        *op = 2;
    }
    c.F32Div = 3;
    c.F64Div = 5;
    c.F32Min = 18;
    c.F32Max = 18;
    c.F64Min = 18;
    c.F64Max = 18;
    c.F64Copysign = 3;
    c.F32Sqrt = 5;
    c.F64Sqrt = 8;
    for op in [
        &mut c.F32Eq,
        &mut c.F32Ne,
        &mut c.F32Lt,
        &mut c.F32Gt,
        &mut c.F32Le,
        &mut c.F32Ge,
        &mut c.F64Eq,
        &mut c.F64Ne,
        &mut c.F64Lt,
        &mut c.F64Gt,
        &mut c.F64Le,
        &mut c.F64Ge,
        &mut c.F32ConvertI32S,
        &mut c.F64ConvertI64S,
        &mut c.F32ConvertI64S,
        &mut c.F64ConvertI32S,
    ] {
        *op = 3;
    }
    c.F64ConvertI32U = 16;
    c.F32ConvertI64U = 16;
    c.F32ConvertI32U = 16;
    c.F64ConvertI64U = 16;
    for op in [
        &mut c.I64TruncSatF32S,
        &mut c.I64TruncSatF32U,
        &mut c.I64TruncSatF64S,
        &mut c.I64TruncSatF64U,
        &mut c.I32TruncSatF32S,
        &mut c.I32TruncSatF32U,
        &mut c.I32TruncSatF64S,
        &mut c.I32TruncSatF64U,
        &mut c.I32TruncF32S,
        &mut c.I32TruncF32U,
        &mut c.I32TruncF64S,
        &mut c.I32TruncF64U,
        &mut c.I64TruncF32S,
        &mut c.I64TruncF32U,
        &mut c.I64TruncF64S,
        &mut c.I64TruncF64U,
    ] {
        *op = 20;
    }

    // Memory accesses: 1 in wasm32, 2 in wasm64 (scalar and SIMD).
    for op in [
        &mut c.I32Load,
        &mut c.I64Load,
        &mut c.F32Load,
        &mut c.F64Load,
        &mut c.I32Load8S,
        &mut c.I32Load8U,
        &mut c.I32Load16S,
        &mut c.I32Load16U,
        &mut c.I64Load8S,
        &mut c.I64Load8U,
        &mut c.I64Load16S,
        &mut c.I64Load16U,
        &mut c.I64Load32S,
        &mut c.I64Load32U,
        &mut c.I32Store,
        &mut c.I64Store,
        &mut c.F32Store,
        &mut c.F64Store,
        &mut c.I32Store8,
        &mut c.I32Store16,
        &mut c.I64Store8,
        &mut c.I64Store16,
        &mut c.I64Store32,
        &mut c.V128Load,
        &mut c.V128Load8x8S,
        &mut c.V128Load8x8U,
        &mut c.V128Load16x4S,
        &mut c.V128Load16x4U,
        &mut c.V128Load32x2S,
        &mut c.V128Load32x2U,
        &mut c.V128Load8Splat,
        &mut c.V128Load16Splat,
        &mut c.V128Load32Splat,
        &mut c.V128Load64Splat,
        &mut c.V128Load32Zero,
        &mut c.V128Load64Zero,
        &mut c.V128Store,
        &mut c.V128Load8Lane,
        &mut c.V128Load16Lane,
        &mut c.V128Load32Lane,
        &mut c.V128Load64Lane,
        &mut c.V128Store8Lane,
        &mut c.V128Store16Lane,
        &mut c.V128Store32Lane,
        &mut c.V128Store64Lane,
    ] {
        *op = mem;
    }

    // Globals, tables, references.
    c.GlobalGet = 2;
    c.GlobalSet = 2;
    c.TableGet = 5;
    c.TableSet = 5;
    c.TableGrow = U8_MAX_COST;
    c.MemoryGrow = U8_MAX_COST;
    c.MemorySize = 20;
    c.TableSize = 100;
    c.MemoryFill = 100;
    c.MemoryCopy = 100;
    c.TableFill = 100;
    c.TableCopy = 100;
    c.MemoryInit = 100;
    c.TableInit = 100;
    c.DataDrop = U8_MAX_COST;
    c.ElemDrop = U8_MAX_COST;
    c.RefNull = 1;
    c.RefIsNull = 5;
    c.RefFunc = 130;

    // Calls. The callee's function-entry cost of 1 (`injections` starts every function body
    // at 1) needs no entry here: wasmtime itself charges 1 fuel per wasm function invocation
    // (see `wasmtime_charges_one_per_function_entry`), and host functions have no body.
    c.Call = 5;
    c.CallIndirect = 10;
    c.ReturnCall = 3;
    c.ReturnCallIndirect = 60;

    // SIMD operators whose weight is not 1.
    c.I8x16Shuffle = 3;
    c.I8x16LtU = 2;
    c.I8x16GtU = 2;
    c.I16x8LtU = 2;
    c.I16x8GtU = 2;
    c.I32x4LtU = 2;
    c.I32x4GtU = 2;
    c.I8x16Popcnt = 3;
    c.I8x16Shl = 3;
    c.I8x16ShrS = 3;
    c.I8x16ShrU = 2;
    c.I16x8ExtAddPairwiseI8x16U = 2;
    c.I16x8Shl = 2;
    c.I16x8ShrS = 2;
    c.I16x8ShrU = 2;
    c.I16x8ExtMulHighI8x16S = 2;
    c.I16x8ExtMulHighI8x16U = 2;
    c.I32x4ExtAddPairwiseI16x8U = 3;
    c.I32x4Shl = 2;
    c.I32x4ShrS = 2;
    c.I32x4ShrU = 2;
    c.I32x4Mul = 2;
    c.I32x4ExtMulLowI16x8S = 2;
    c.I32x4ExtMulHighI16x8S = 2;
    c.I32x4ExtMulLowI16x8U = 2;
    c.I32x4ExtMulHighI16x8U = 2;
    c.I64x2Shl = 2;
    c.I64x2ShrS = 3;
    c.I64x2ShrU = 2;
    c.I64x2Mul = 4;
    for op in [
        &mut c.F32x4Ceil,
        &mut c.F32x4Floor,
        &mut c.F32x4Trunc,
        &mut c.F32x4Nearest,
        &mut c.F32x4Abs,
        &mut c.F32x4Neg,
        &mut c.F32x4Add,
        &mut c.F32x4Sub,
        &mut c.F32x4Mul,
        &mut c.F64x2Ceil,
        &mut c.F64x2Floor,
        &mut c.F64x2Trunc,
        &mut c.F64x2Nearest,
        &mut c.F64x2Abs,
        &mut c.F64x2Neg,
        &mut c.F64x2Add,
        &mut c.F64x2Sub,
        &mut c.F64x2Mul,
        &mut c.I32x4TruncSatF32x4S,
        &mut c.I32x4TruncSatF64x2SZero,
    ] {
        *op = 2;
    }
    c.F32x4Sqrt = 5;
    c.F32x4Div = 10;
    c.F32x4Min = 4;
    c.F32x4Max = 4;
    c.F64x2Sqrt = 14;
    c.F64x2Div = 12;
    c.F64x2Min = 4;
    c.F64x2Max = 5;
    c.I32x4TruncSatF32x4U = 4;
    c.F32x4ConvertI32x4U = 4;
    c.I32x4TruncSatF64x2UZero = 3;

    // Dynamic costs, charged before the operator runs: 1 per byte or element of bulk memory
    // and table operations; `memory.grow` and `table.grow` have none.
    let v = &mut c.variable;
    v.memory_copy_per_byte = 1;
    v.memory_fill_per_byte = 1;
    v.memory_init_per_byte = 1;
    v.memory_grow_per_page = 0;
    v.table_copy_per_element = 1;
    v.table_fill_per_element = 1;
    v.table_init_per_element = 1;
    v.table_grow_per_element = 0;
    c
}

/// The fixed overhead of each `ic0` function (`system_api_complexity::overhead`; the stable
/// functions are the wasm-native ones, `overhead_native`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syscall {
    /// 500: most calls (`msg_caller_size`, `time`, `msg_reply`, `canister_self_copy`...).
    Standard,
    /// 100: `debug_print`.
    DebugPrint,
    /// 200: `performance_counter`.
    PerformanceCounter,
    /// 1,000: `is_controller`.
    IsController,
    /// 1,500: `call_new`.
    CallNew,
    /// 5,000: `call_perform`.
    CallPerform,
    /// 20: `stable64_read` / `stable64_write` (wasm-native).
    StableAccess,
    /// 100: `stable64_grow` (`overhead_native::STABLE_GROW`, charged in `try_grow_stable_memory`).
    StableGrow,
    /// 0: `stable64_size` (on the replica a wasm-native `memory.size`, unmetered).
    Free,
}

impl Syscall {
    /// The fixed instructions of the call.
    #[must_use]
    pub const fn overhead(self) -> u64 {
        match self {
            Self::Standard => 500,
            Self::DebugPrint => 100,
            Self::PerformanceCounter => 200,
            Self::IsController => 1_000,
            Self::CallNew => 1_500,
            Self::CallPerform => 5_000,
            Self::StableAccess => 20,
            Self::StableGrow => 100,
            Self::Free => 0,
        }
    }
}

/// What a System API call adds to the counter on top of the `call` operator: its overhead
/// plus `bytes` (already multiplied by the per-byte factor).
#[must_use]
pub const fn syscall_cost(call: Syscall, bytes: u64) -> u64 {
    call.overhead().saturating_add(bytes)
}

/// The byte charge of `debug_print` / `trap` for a message of `len` bytes
/// (`logging_charge_bytes`, the log taken as empty; debug printing itself is off on
/// application subnets, so the printed bytes are not charged again).
#[must_use]
pub const fn logging_bytes(len: u64) -> u64 {
    let kept = if len < LOG_CAPACITY_BYTES {
        len
    } else {
        LOG_CAPACITY_BYTES
    };
    2 * kept + BYTE_TRANSMISSION_COST_FACTOR * kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmparser::Operator;

    #[test]
    fn table_matches_the_replica_for_sampled_operators() {
        let c = operator_cost(false);
        let w = operator_cost(true);
        assert_eq!(c.cost(&Operator::I32Add), 1);
        assert_eq!(c.cost(&Operator::I64DivU), 10);
        assert_eq!(c.cost(&Operator::GlobalGet { global_index: 0 }), 2);
        assert_eq!(c.cost(&Operator::Br { relative_depth: 0 }), 2);
        assert_eq!(c.cost(&Operator::End), 0);
        assert_eq!(c.cost(&Operator::Drop), 1);
        assert_eq!(c.cost(&Operator::Call { function_index: 0 }), 5);
        let load = Operator::I32Load {
            memarg: wasmparser::MemArg {
                align: 2,
                max_align: 2,
                offset: 0,
                memory: 0,
            },
        };
        assert_eq!(c.cost(&load), 1);
        assert_eq!(w.cost(&load), 2);
        assert_eq!(c.cost(&Operator::MemoryGrow { mem: 0 }), 255);
        assert_eq!(c.variable.memory_copy_per_byte, 1);
        assert_eq!(c.variable.memory_grow_per_page, 0);
    }

    /// The replica charges 1 on entering any function body; the harness relies on wasmtime
    /// doing the same with the table above (it charges 1 fuel per wasm function invocation).
    #[test]
    fn wasmtime_charges_one_per_function_entry() {
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        config.operator_cost(operator_cost(false));
        let engine = wasmtime::Engine::new(&config).expect("valid config");
        for (text, replica) in [
            ("(module (func (export \"f\")))", 1),
            (
                "(module (func $n) (func (export \"f\") call $n))",
                1 + 5 + 1,
            ),
            ("(module (func (export \"f\") (block nop)))", 1 + 1),
        ] {
            let module = wasmtime::Module::new(&engine, text).expect("valid wat");
            let mut store = wasmtime::Store::new(&engine, ());
            store.set_fuel(1_000).expect("fuel enabled");
            let instance = wasmtime::Instance::new(&mut store, &module, &[]).expect("instantiates");
            let f = instance
                .get_typed_func::<(), ()>(&mut store, "f")
                .expect("exported");
            f.call(&mut store, ()).expect("runs");
            let used = 1_000 - store.get_fuel().expect("fuel enabled");
            assert_eq!(used, replica, "{text}");
        }
    }

    #[test]
    fn syscall_and_logging_costs() {
        assert_eq!(syscall_cost(Syscall::CallPerform, 0), 5_000);
        assert_eq!(syscall_cost(Syscall::Free, 0), 0);
        assert_eq!(logging_bytes(10), 520);
        assert_eq!(logging_bytes(1 << 20), 52 * 4096);
    }
}
