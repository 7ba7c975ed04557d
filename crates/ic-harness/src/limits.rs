//! IC limits the harness enforces (application subnet values, see docs/harness.md).

/// Largest request payload to a canister on another subnet (and for ingress).
pub const MAX_CROSS_SUBNET_REQUEST_BYTES: usize = 2 * 1024 * 1024;
/// Largest request payload to a canister on the same subnet.
pub const MAX_SAME_SUBNET_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// Largest response of a replicated execution.
pub const MAX_REPLICATED_RESPONSE_BYTES: usize = 2 * 1024 * 1024;
/// Largest response of a non-replicated (ingress) query.
pub const MAX_QUERY_RESPONSE_BYTES: usize = 3 * 1024 * 1024;
/// Longest bounded-wait timeout (`MAX_CALL_TIMEOUT`).
pub const MAX_CALL_TIMEOUT_SECONDS: u32 = 300;
/// Outstanding requests allowed per (caller, callee) pair before `call_perform` fails.
pub const MAX_QUEUE_PER_PAIR: usize = 500;
/// Most controllers a canister may have.
pub const MAX_CONTROLLERS: usize = 10;
/// Largest principal, in bytes.
pub const MAX_PRINCIPAL_BYTES: usize = 29;
/// Most bytes one `read_canister_snapshot_data` returns (the replica's `MAX_SLICE_SIZE_BYTES`).
pub const MAX_SLICE_BYTES: u64 = 2_000_000;
/// Most native snapshots a canister may hold.
pub const MAX_SNAPSHOTS: usize = 10;
/// Largest chunk `upload_chunk` (and a snapshot's chunk store) accepts: 1 MiB.
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024;
/// Capacity of a canister's wasm chunk store, in bytes (100 chunks of 1 MiB).
pub const MAX_CHUNK_STORE_BYTES: usize = 100 * MAX_CHUNK_BYTES;

// System-initiated faults: the replica's constants, from `rs/config/src/execution_environment.rs`
// in dfinity/ic. Each rule is always on; the harness lets a test lower the capacities.

/// `SUBNET_BEST_EFFORT_MESSAGE_MEMORY_CAPACITY`: the bytes of best-effort messages a subnet
/// may hold at the end of a round (5 GiB); above it the largest are shed.
pub const SUBNET_BEST_EFFORT_MESSAGE_MEMORY_CAPACITY: u64 = 5 * 1024 * 1024 * 1024;
/// `SUBNET_CALLBACK_SOFT_LIMIT`: outstanding callbacks a subnet shares among its canisters
/// before each canister is held to its own quota.
pub const SUBNET_CALLBACK_SOFT_LIMIT: usize = 1_000_000;
/// `CANISTER_GUARANTEED_CALLBACK_QUOTA`: outstanding callbacks (of any kind, best-effort
/// included) every canister may hold even when the subnet's shared pool is exhausted.
pub const CANISTER_GUARANTEED_CALLBACK_QUOTA: usize = 50;
/// `STOP_CANISTER_TIMEOUT_DURATION`: a `stop_canister` call still waiting after 5 minutes
/// is rejected (SYS_TRANSIENT, IC0206); the canister stays Stopping.
pub const STOP_CANISTER_TIMEOUT_SECONDS: u64 = 5 * 60;

// Wasm heap (main memory) limits, from dfinity/ic `ic_types` (`rs/types/types/src/lib.rs`),
// applied by the replica's `Hypervisor::validate_wasm_memory`
// (`rs/execution_environment/src/hypervisor.rs`) and by its instrumentation, which caps the
// module's memory maximum at the limit for its execution mode.

/// `MAX_WASM_MEMORY_IN_BYTES`: the largest heap of a wasm32 canister (4 GiB, all a 32-bit
/// address space can reach).
pub const MAX_WASM32_HEAP_BYTES: u64 = 4 << 30;
/// `MAX_WASM64_MEMORY_IN_BYTES`: the largest heap of a memory64 canister. 18 GiB today:
/// the replica's wasm64 large-heap test (`touching_full_wasm64_heap_over_three_messages_succeeds`
/// in `rs/execution_environment`) asserts it equals three per-message heap-access limits of
/// 6 GiB; it was 6 GiB when wasm64 shipped. A canister's `wasm_memory_limit` setting
/// (default 3 GiB) is not modelled: the harness lets a heap grow to this hard limit.
pub const MAX_WASM64_HEAP_BYTES: u64 = 18 << 30;

// Scheduling and bandwidth: an application subnet's values in dfinity/ic.

/// `NUMBER_OF_EXECUTION_THREADS` (`rs/config/src/subnet_config.rs`, `scheduler_cores`):
/// canisters a subnet executes in parallel in a round.
pub const SCHEDULER_CORES: usize = 4;
/// `MAX_INSTRUCTIONS_PER_ROUND` (`rs/config/src/subnet_config.rs`): instructions one
/// execution thread may run in a round (7B); a canister whose thread has used them waits.
pub const MAX_INSTRUCTIONS_PER_ROUND: u64 = 7_000_000_000;
/// `heap_delta_rate_limit` of `SchedulerConfig::application_subnet()`
/// (`rs/config/src/subnet_config.rs`): heap delta (dirty heap and stable pages) a canister
/// may produce per round. Its debit grows by what it dirties and shrinks by this much each
/// round; while the debit is at least this much, the scheduler skips it
/// (`RoundSchedule::filter_canisters`).
pub const HEAP_DELTA_RATE_LIMIT_BYTES: u64 = 75 * 1024 * 1024;
/// `MAX_HEAP_DELTA_PER_ITERATION` (`rs/config/src/subnet_config.rs`): once a subnet's
/// executions have produced this much heap delta in a round, no further execution starts
/// in that round.
pub const MAX_HEAP_DELTA_PER_ROUND_BYTES: u64 = 200_000_000;
/// Page size of heap-delta accounting (the replica's 4 KiB OS page, `PAGE_SIZE`).
pub const HEAP_DELTA_PAGE_BYTES: usize = 4096;
/// `max_block_payload_size` of an application subnet's registry record: the combined
/// bytes of ingress and incoming stream slices one block (one round) carries, 4 MiB.
/// A stream slice is at most this large too.
pub const MAX_BLOCK_PAYLOAD_BYTES: u64 = 4 * 1024 * 1024;
/// `TARGET_STREAM_SIZE_BYTES` (`rs/messaging/src/routing/stream_builder.rs`, now
/// `rs/config/src/message_routing.rs`): messages are routed from output queues into a
/// stream only while the stream holds fewer bytes than this; the rest wait in order.
pub const TARGET_STREAM_SIZE_BYTES: u64 = 10 * 1024 * 1024;

// Per-execution stable-memory limits, from dfinity/ic `rs/config/src/embedders.rs`
// (`STABLE_MEMORY_ACCESSED_PAGE_LIMIT_*`, `STABLE_MEMORY_DIRTY_PAGE_LIMIT_*`, counted in 4 KiB
// OS pages), chosen per execution by `SystemApiImpl::get_page_limit`. An execution whose
// `stable64_read`/`stable64_write` would exceed one traps with IC0524
// (`CanisterMemoryAccessLimitExceeded`) before touching memory; see `stable_pages.rs`.

/// Stable memory an update, callback, timer or start function may access (read or write).
pub const STABLE_ACCESSED_LIMIT_MESSAGE_BYTES: u64 = 2 << 30;
/// Stable memory `canister_init`, `canister_pre_upgrade` or `canister_post_upgrade` may access.
pub const STABLE_ACCESSED_LIMIT_UPGRADE_BYTES: u64 = 8 << 30;
/// Stable memory a query or `canister_inspect_message` may access.
pub const STABLE_ACCESSED_LIMIT_QUERY_BYTES: u64 = 1 << 30;
/// Stable memory an update, callback, timer or start function may dirty (write).
pub const STABLE_DIRTY_LIMIT_MESSAGE_BYTES: u64 = 2 << 30;
/// Stable memory `canister_init`, `canister_pre_upgrade` or `canister_post_upgrade` may dirty.
pub const STABLE_DIRTY_LIMIT_UPGRADE_BYTES: u64 = 8 << 30;
/// Stable memory a query or `canister_inspect_message` may dirty (its writes are discarded).
pub const STABLE_DIRTY_LIMIT_QUERY_BYTES: u64 = 1 << 30;
