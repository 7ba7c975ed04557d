//! The `ic0` System API as seen by one message execution.
//!
//! [`ExecState`] is the sandbox of a single execution: its inputs (caller, argument, time,
//! balance...) are copied in before the execution starts, and its effects (reply, calls,
//! timer, cycles) are buffered and handed back to the scheduler only if the execution
//! commits. A trap discards the whole `ExecState`, which is how buffered effects roll back.
//!
//! Every import checks the execution context against the spec's table ([`ApiContext`])
//! and traps with a message naming the import and the context when it is not allowed.

mod imports;

use std::collections::BTreeMap;
use std::sync::Arc;

use candid::Principal;

use crate::stable_memory::StableMemory;
use crate::types::{RejectCode, SubnetId};

pub(crate) use imports::register;

/// The spec's `I`: the type of heap addresses, lengths, callback table indices and callback
/// environments in `ic0` signatures. `u32` (wasm `i32`) for a module whose memory is 32-bit,
/// `u64` (wasm `i64`) for a memory64 module.
pub trait Ptr: wasmtime::WasmTy + Copy + Send + Sync + std::fmt::Display + 'static {
    /// The value, widened.
    fn get(self) -> u64;
    /// A length as this width. Lengths the harness hands out (arguments, principals,
    /// reject messages) are far below 4 GiB, so the wasm32 conversion never truncates.
    fn of_len(len: usize) -> Self;
}

impl Ptr for u32 {
    fn get(self) -> u64 {
        u64::from(self)
    }
    fn of_len(len: usize) -> Self {
        u32::try_from(len).unwrap_or(u32::MAX)
    }
}

impl Ptr for u64 {
    fn get(self) -> u64 {
        self
    }
    fn of_len(len: usize) -> Self {
        len as u64
    }
}

/// Where the System API is being called from (the spec's context letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiContext {
    /// `I`: canister_init or canister_post_upgrade.
    Init,
    /// `G`: canister_pre_upgrade.
    PreUpgrade,
    /// `U`: an update method.
    Update,
    /// `RQ`: a query in replicated mode (called by a canister).
    ReplicatedQuery,
    /// `NRQ`: a query in non-replicated mode (ingress query).
    NonReplicatedQuery,
    /// `CQ`: a composite query.
    CompositeQuery,
    /// `Ry`: a reply callback.
    ReplyCallback,
    /// `Rt`: a reject callback.
    RejectCallback,
    /// `C`: a cleanup callback.
    Cleanup,
    /// `F`: canister_inspect_message.
    InspectMessage,
    /// `T`: a system task (global timer, heartbeat).
    SystemTask,
    /// `s`: the wasm start function.
    Start,
}

impl ApiContext {
    /// The spec's letter for the context, used in trap messages.
    #[must_use]
    pub fn letter(self) -> &'static str {
        match self {
            Self::Init => "I (init/post_upgrade)",
            Self::PreUpgrade => "G (pre_upgrade)",
            Self::Update => "U (update)",
            Self::ReplicatedQuery => "RQ (replicated query)",
            Self::NonReplicatedQuery => "NRQ (non-replicated query)",
            Self::CompositeQuery => "CQ (composite query)",
            Self::ReplyCallback => "Ry (reply callback)",
            Self::RejectCallback => "Rt (reject callback)",
            Self::Cleanup => "C (cleanup callback)",
            Self::InspectMessage => "F (inspect_message)",
            Self::SystemTask => "T (system task)",
            Self::Start => "s (start)",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// True for query-like contexts whose state is always discarded.
    #[must_use]
    pub fn is_query(self) -> bool {
        matches!(
            self,
            Self::ReplicatedQuery | Self::NonReplicatedQuery | Self::CompositeQuery
        )
    }
}

/// A set of contexts in which an import is allowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Allowed(u16);

impl Allowed {
    pub(crate) const fn of(contexts: &[ApiContext]) -> Self {
        let mut bits = 0u16;
        let mut i = 0;
        while i < contexts.len() {
            bits |= 1 << (contexts[i] as u16);
            i += 1;
        }
        Self(bits)
    }

    /// `*`: every context except the start function.
    pub(crate) const STAR: Self = Self(0x0FFF & !(1 << (ApiContext::Start as u16)));
    /// `* s`: every context.
    pub(crate) const ANY: Self = Self(0x0FFF);

    fn contains(self, ctx: ApiContext) -> bool {
        self.0 & ctx.bit() != 0
    }
}

/// Why an execution stopped abnormally. Host functions return this (wrapped in a
/// `wasmtime::Error`) to trap; the execution layer turns it into a reject message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostTrap {
    /// The canister called `ic0.trap` (IC0503).
    #[error("Canister called `ic0.trap` with message: '{0}'")]
    Explicit(String),
    /// The canister broke a System API rule (IC0504).
    #[error("{0}")]
    ContractViolation(String),
    /// The instruction budget ran out inside a System API call (IC0522).
    #[error("exceeded the instruction limit for single message execution")]
    OutOfInstructions,
    /// A stable-memory access would exceed the execution's accessed or dirtied page limit
    /// (IC0524, `CanisterMemoryAccessLimitExceeded`).
    #[error("Canister exceeded memory access limits: {0}")]
    MemoryAccessLimitExceeded(String),
}

/// A call under construction (`call_new` .. `call_perform`).
#[derive(Debug, Clone)]
pub struct PendingCall {
    /// The callee.
    pub callee: Principal,
    /// The method name.
    pub method: String,
    /// Reply callback: (table index, env), as wide as the module's addresses.
    pub on_reply: (u64, u64),
    /// Reject callback: (table index, env).
    pub on_reject: (u64, u64),
    /// Cleanup callback, if registered.
    pub on_cleanup: Option<(u64, u64)>,
    /// The payload built so far.
    pub payload: Vec<u8>,
    /// Cycles attached (already taken from the balance).
    pub cycles: u128,
    /// Bounded-wait timeout in seconds, if `call_with_best_effort_response` was called.
    pub timeout_seconds: Option<u32>,
}

/// How a call context was answered by this execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `msg_reply` with the appended data.
    Reply(Vec<u8>),
    /// `msg_reject` with its message.
    Reject(String),
}

/// Inputs and buffered effects of one message execution.
#[derive(Debug)]
pub struct ExecState {
    // ---- inputs ----
    /// The execution context.
    pub context: ApiContext,
    /// The executing canister.
    pub self_id: Principal,
    /// The executing canister's subnet.
    pub subnet_id: SubnetId,
    /// `msg_caller`.
    pub caller: Principal,
    /// `msg_arg_data` (argument, or reply data in a reply callback).
    pub arg: Vec<u8>,
    /// The method name (inspect_message).
    pub method_name: String,
    /// Reject code and message, in a reject callback.
    pub reject: Option<(RejectCode, String)>,
    /// `time`, constant during the execution.
    pub time: u64,
    /// The canister's controllers.
    pub controllers: Vec<Principal>,
    /// 1 running, 2 stopping, 3 stopped.
    pub status: u32,
    /// `canister_version`.
    pub version: u64,
    /// Cycles that must stay on the balance (freezing threshold); liquid = balance - this.
    pub reserved_cycles: u128,
    /// Calls of this canister awaiting a response, by callee (for the per-pair queue limit).
    pub outstanding_calls: BTreeMap<Principal, usize>,
    /// Calls this execution may still perform (the replica's `available_callbacks`): the
    /// larger of the subnet's shared callback pool and the canister's own quota left.
    pub available_callbacks: usize,
    /// `msg_cycles_available`: cycles attached to the call, not yet accepted.
    pub cycles_available: u128,
    /// `msg_cycles_refunded`: cycles returned with the response.
    pub cycles_refunded: u128,
    /// `msg_deadline` (0 for unbounded-wait calls).
    pub deadline: u64,
    /// True if this execution may answer its call context.
    pub can_respond: bool,
    /// Fuel given to this execution.
    pub instruction_limit: u64,
    /// Instructions the call context spent in earlier executions (`performance_counter(1)`).
    pub context_instructions_before: u64,
    /// The global timer at the start of the execution.
    pub timer_at_start: u64,
    /// Where each canister lives, to apply the same- or cross-subnet payload limit.
    pub routing: Arc<BTreeMap<Principal, SubnetId>>,
    /// The call cost model (`ic0.cost_call`).
    pub fees: Arc<crate::fees::FeeSchedule>,

    // ---- mutable state and buffered effects ----
    /// The canister's balance, updated by this execution. It starts with the execution's
    /// prepayment withdrawn, as on the replica; the unused part returns after the run.
    pub balance: u128,
    /// Cycles withdrawn before the run for its execution at the instruction limit
    /// (`prepay_execution_cycles`); 0 for queries and callbacks (a call's reservation
    /// prepaid those).
    pub prepaid: u128,
    /// Data appended by `msg_reply_data_append`.
    pub reply_data: Vec<u8>,
    /// The answer to the call context, if this execution gave one.
    pub response: Option<Response>,
    /// The call being built.
    pub pending_call: Option<PendingCall>,
    /// Calls performed (sent only if the execution commits).
    pub calls: Vec<PendingCall>,
    /// The timer value set by this execution (`Some(0)` deactivates).
    pub new_timer: Option<u64>,
    /// Cycles accepted from the call.
    pub accepted: u128,
    /// Cycles burned.
    pub burned: u128,
    /// `accept_message` was called (inspect_message).
    pub message_accepted: bool,
    /// New certified data.
    pub certified_data: Option<Vec<u8>>,
}

/// Per-store data of an installed module: the stable memory and, during an execution,
/// its [`ExecState`]. Debug output is collected in `logs` even for executions that trap.
#[derive(Debug, Default)]
pub struct CanisterState {
    /// The canister's stable memory (moved in and out around executions).
    pub stable: StableMemory,
    /// The current execution's state; `None` between executions.
    pub exec: Option<ExecState>,
    /// The module's exported linear memory.
    pub memory: Option<wasmtime::Memory>,
    /// `debug_print` output of the current execution (kept even on trap).
    pub logs: Vec<String>,
    /// Caps the wasm heap at the replica's maximum for the module's memory width.
    pub heap_limit: HeapLimit,
    /// Stable-memory pages the current execution accessed and dirtied, under its limits.
    pub(crate) pages: crate::stable_pages::ExecPages,
}

/// A wasmtime resource limiter that refuses to grow the heap past `max_bytes`
/// (`memory.grow` then returns -1, as on the replica; an initial memory above it fails
/// instantiation). Tables are not limited here (the module validation bounds them).
///
/// It also counts what the fuel table cannot charge: `memory.grow` and `table.grow` weigh
/// 300 on the replica, more than wasmtime's `u8` operator cost holds, so each growth attempt
/// (wasmtime consults the limiter for every non-zero one) adds
/// [`GROW_SURCHARGE`](crate::weights::GROW_SURCHARGE) to `grow_surcharge`, which the next
/// System API call and the end of the execution take into the instruction count.
#[derive(Debug, Clone, Copy)]
pub struct HeapLimit {
    /// Largest heap in bytes.
    pub max_bytes: u64,
    /// Instructions owed for growth attempts not yet taken from the budget.
    pub grow_surcharge: u64,
}

impl Default for HeapLimit {
    fn default() -> Self {
        Self {
            max_bytes: crate::limits::MAX_WASM32_HEAP_BYTES,
            grow_surcharge: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for HeapLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow_surcharge += crate::weights::GROW_SURCHARGE;
        Ok(desired as u64 <= self.max_bytes)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow_surcharge += crate::weights::GROW_SURCHARGE;
        Ok(true)
    }
}

impl ExecState {
    /// Checks that `import` may be called in the current context.
    pub(crate) fn check(&self, import: &str, allowed: Allowed) -> Result<(), HostTrap> {
        if allowed.contains(self.context) {
            Ok(())
        } else {
            Err(HostTrap::ContractViolation(format!(
                "\"ic0.{import}\" cannot be executed in context {}",
                self.context.letter()
            )))
        }
    }

    /// Liquid cycles: the balance above the reserved (freezing) amount.
    #[must_use]
    pub fn liquid_balance(&self) -> u128 {
        self.balance.saturating_sub(self.reserved_cycles)
    }

    /// The payload limit of a call to `callee` from this canister.
    #[must_use]
    pub fn max_request_bytes(&self, callee: &Principal) -> usize {
        let same_subnet = callee == &Principal::management_canister()
            || self.routing.get(callee) == Some(&self.subnet_id);
        if same_subnet {
            crate::limits::MAX_SAME_SUBNET_REQUEST_BYTES
        } else {
            crate::limits::MAX_CROSS_SUBNET_REQUEST_BYTES
        }
    }

    /// The largest response this execution may build.
    #[must_use]
    pub fn max_response_bytes(&self) -> usize {
        if self.context == ApiContext::NonReplicatedQuery {
            crate::limits::MAX_QUERY_RESPONSE_BYTES
        } else {
            crate::limits::MAX_REPLICATED_RESPONSE_BYTES
        }
    }
}
