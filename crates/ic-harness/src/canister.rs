//! A canister's system state: code, stable memory, cycles, status, call contexts and
//! callbacks.
//!
//! Invariants:
//! - a call context is deleted once it has responded (or needs no response) and has no
//!   outstanding callbacks;
//! - every callback belongs to a live call context; `outstanding` counts them.

use std::collections::BTreeMap;

use candid::Principal;

use crate::execution::InstalledCode;
use crate::harness::snapshots::CanisterSnapshot;
use crate::stable_memory::StableMemory;
use crate::types::{CanisterId, MessageId, SubnetId};

/// Running, stopping or stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    Running,
    /// Stopping; the stop requests to answer once no call context is open.
    Stopping(Vec<StopRequest>),
    Stopped,
}

impl Status {
    /// `ic0.canister_status` value.
    pub(crate) fn code(&self) -> u32 {
        match self {
            Self::Running => 1,
            Self::Stopping(_) => 2,
            Self::Stopped => 3,
        }
    }
}

/// A pending `stop_canister` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StopRequest {
    /// Who waits for the answer.
    pub origin: Origin,
    /// When it times out (`STOP_CANISTER_TIMEOUT_SECONDS` after it arrived), in nanoseconds.
    pub expires_at: u64,
}

/// Who is waiting for the answer of a call context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// An ingress message.
    Ingress(MessageId),
    /// A canister (or the management canister on behalf of one) awaiting `callback`.
    Canister {
        caller: Principal,
        callback: u64,
        /// Deadline of a bounded-wait call (0 for unbounded).
        deadline: u64,
    },
    /// The system (global timer, heartbeat): no answer is needed.
    System,
}

/// A call context: one incoming message and everything it awaits.
#[derive(Debug, Clone)]
pub(crate) struct CallContext {
    pub origin: Origin,
    pub caller: Principal,
    pub responded: bool,
    pub outstanding: u32,
    /// Cycles attached to the call and not accepted yet.
    pub cycles_available: u128,
    /// Deleted by uninstall: later callbacks are not run.
    pub deleted: bool,
    /// Instructions spent by its executions so far (`performance_counter(1)`).
    pub instructions: u64,
    /// `msg_deadline` of the call.
    pub deadline: u64,
}

impl CallContext {
    /// True if the context still owes its origin an answer.
    pub(crate) fn needs_response(&self) -> bool {
        !self.responded && self.origin != Origin::System
    }
}

/// A registered callback of an outgoing call.
#[derive(Debug, Clone)]
pub(crate) struct Callback {
    pub context: u64,
    pub callee: Principal,
    pub on_reply: (u64, u64),
    pub on_reject: (u64, u64),
    pub on_cleanup: Option<(u64, u64)>,
    /// Deadline of a bounded-wait call (0 for unbounded).
    pub deadline: u64,
    /// The deadline passed and a SYS_UNKNOWN reject is queued: a real response is dropped.
    pub timed_out: bool,
}

/// Cycles a canister paid, by what it paid for. Every fee the harness charges lands in
/// exactly one field, so the balance falls by [`CyclesBurned::total`] plus whatever the
/// canister sent away as attached cycles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CyclesBurned {
    /// Base fee of each replicated execution (`update_message_execution`).
    pub execution: u128,
    /// Instructions executed (`ten_update_instructions` per 10).
    pub instructions: u128,
    /// Per-call fee of the calls it made (`xnet_call`).
    pub calls: u128,
    /// Request and response bytes of the calls it made (`xnet_byte_transmission`).
    pub bytes: u128,
    /// Ingress messages it received (`ingress_message_reception` + per byte).
    pub ingress: u128,
    /// Memory held over simulated time (`gib_storage_per_second`).
    pub storage: u128,
    /// Creation fees of canisters it created (`canister_creation`).
    pub creation: u128,
    /// Explicit `ic0.cycles_burn128`.
    pub burned: u128,
    /// Cycles it attached to calls whose response was dropped or timed out (SYS_UNKNOWN).
    pub lost: u128,
}

impl CyclesBurned {
    /// Every category added up.
    #[must_use]
    pub fn total(&self) -> u128 {
        self.execution
            + self.instructions
            + self.calls
            + self.bytes
            + self.ingress
            + self.storage
            + self.creation
            + self.burned
            + self.lost
    }
}

/// Counters for benchmarks and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CanisterMetrics {
    /// Replicated executions (committed or trapped): the ones that pay and that DTS slices.
    pub executions: u64,
    /// Instructions of the replicated executions.
    pub instructions: u64,
    /// The largest single replicated execution, in instructions.
    pub max_instructions_per_execution: u64,
    /// Non-replicated (ingress and composite) query executions: free, not sliced.
    pub query_executions: u64,
    /// Instructions of those queries.
    pub query_instructions: u64,
    /// The largest single query, in instructions (the query limit is 5B).
    pub max_instructions_per_query: u64,
    /// Payload bytes of requests and responses this canister sent.
    pub bytes_sent: u64,
    /// Payload bytes of requests and responses this canister received.
    pub bytes_received: u64,
    /// The largest stable memory size seen, in bytes.
    pub peak_stable_memory_bytes: u64,
    /// Cycles paid, by category.
    pub cycles_burned: CyclesBurned,
}

/// One canister.
pub(crate) struct Canister {
    pub id: CanisterId,
    pub subnet: SubnetId,
    pub controllers: Vec<Principal>,
    pub status: Status,
    pub cycles: u128,
    pub version: u64,
    /// Global timer; 0 is inactive.
    pub timer: u64,
    pub freezing_threshold: u64,
    /// Who besides the controllers may read the snapshots.
    pub snapshot_visibility: crate::harness::visibility::SnapshotVisibility,
    pub code: Option<InstalledCode>,
    pub stable: StableMemory,
    pub certified_data: Vec<u8>,
    pub contexts: BTreeMap<u64, CallContext>,
    pub callbacks: BTreeMap<u64, Callback>,
    pub next_id: u64,
    pub logs: Vec<String>,
    pub metrics: CanisterMetrics,
    /// Heap delta produced and not yet paid off by the per-round rate limit.
    pub heap_delta_debit: u64,
    /// The module as installed (raw or gzipped), for snapshots; empty without code.
    pub wasm_module: Vec<u8>,
    /// The wasm chunk store of `upload_chunk`: SHA-256 → chunk.
    pub chunk_store: BTreeMap<[u8; 32], Vec<u8>>,
    /// Native snapshots by local id.
    pub snapshots: BTreeMap<u64, CanisterSnapshot>,
    /// The next snapshot's local id (ids are never reused).
    pub next_snapshot: u64,
    /// Frozen by fault injection, whatever its balance.
    pub frozen_by_fault: bool,
    /// Fault injection: this many next replicated executions trap.
    pub trap_next: u32,
    /// Fault injection: this many next message executions (updates, replicated
    /// queries, callbacks; not system tasks) trap.
    pub trap_next_message: u32,
    /// Storage fee carried between charges (see [`crate::fees::FeeSchedule::storage`]).
    pub storage_carry: u128,
    /// Simulated time up to which storage has been charged.
    pub storage_since: u64,
}

impl Canister {
    pub(crate) fn new(
        id: CanisterId,
        subnet: SubnetId,
        controllers: Vec<Principal>,
        cycles: u128,
    ) -> Self {
        Self {
            id,
            subnet,
            controllers,
            status: Status::Running,
            cycles,
            version: 0,
            timer: 0,
            freezing_threshold: 2_592_000,
            snapshot_visibility: Default::default(),
            code: None,
            stable: StableMemory::new(),
            certified_data: Vec::new(),
            contexts: BTreeMap::new(),
            callbacks: BTreeMap::new(),
            next_id: 1,
            logs: Vec::new(),
            metrics: CanisterMetrics::default(),
            heap_delta_debit: 0,
            wasm_module: Vec::new(),
            chunk_store: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            next_snapshot: 0,
            frozen_by_fault: false,
            trap_next: 0,
            trap_next_message: 0,
            storage_carry: 0,
            storage_since: 0,
        }
    }

    pub(crate) fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Opens a call context and returns its id.
    pub(crate) fn open_context(
        &mut self,
        origin: Origin,
        caller: Principal,
        cycles: u128,
        deadline: u64,
    ) -> u64 {
        let id = self.fresh_id();
        self.contexts.insert(
            id,
            CallContext {
                origin,
                caller,
                responded: false,
                outstanding: 0,
                cycles_available: cycles,
                deleted: false,
                instructions: 0,
                deadline,
            },
        );
        id
    }

    /// Drops a context that is answered (or needs no answer) and awaits nothing.
    pub(crate) fn gc_context(&mut self, id: u64) {
        if let Some(ctx) = self.contexts.get(&id)
            && !ctx.needs_response()
            && ctx.outstanding == 0
        {
            self.contexts.remove(&id);
        }
    }

    pub(crate) fn is_controller(&self, p: &Principal) -> bool {
        self.controllers.contains(p)
    }

    /// Total memory in bytes: heap, stable memory, module, chunk store and snapshots.
    /// This is what storage is billed on and what the freezing reserve is computed from.
    pub(crate) fn memory_bytes(&self) -> u64 {
        let (heap, module) = self.code.as_ref().map_or((0, 0), |c| {
            (c.heap_bytes(), c.compiled.prepared.wasm.len() as u64)
        });
        heap + self.stable.size_bytes() + module + self.chunk_store_bytes() + self.snapshots_bytes()
    }

    /// Bytes held by the wasm chunk store.
    pub(crate) fn chunk_store_bytes(&self) -> u64 {
        self.chunk_store.values().map(|c| c.len() as u64).sum()
    }

    /// Bytes held by the canister's snapshots.
    pub(crate) fn snapshots_bytes(&self) -> u64 {
        self.snapshots
            .values()
            .map(CanisterSnapshot::total_size)
            .sum()
    }

    /// Drops everything that lives in the canister's memory: code, heap, stable memory,
    /// chunk store and snapshots (what running out of cycles destroys).
    pub(crate) fn wipe_memory(&mut self) {
        self.code = None;
        self.wasm_module = Vec::new();
        self.stable = self.stable.empty_like();
        self.chunk_store.clear();
        self.snapshots.clear();
        self.timer = 0;
    }

    /// Counts one execution: replicated ones and non-replicated queries separately, so a
    /// verification query never shows as a message the replica would slice or charge.
    pub(crate) fn record_execution(
        &mut self,
        instructions: u64,
        logs: Vec<String>,
        replicated: bool,
    ) {
        let m = &mut self.metrics;
        if replicated {
            m.executions += 1;
            m.instructions += instructions;
            m.max_instructions_per_execution = m.max_instructions_per_execution.max(instructions);
        } else {
            m.query_executions += 1;
            m.query_instructions += instructions;
            m.max_instructions_per_query = m.max_instructions_per_query.max(instructions);
        }
        self.metrics.peak_stable_memory_bytes = self
            .metrics
            .peak_stable_memory_bytes
            .max(self.stable.size_bytes());
        self.logs.extend(logs);
    }
}
