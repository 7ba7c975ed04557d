//! The in-process Internet Computer: subnets, canisters, message routing and the
//! PocketIC-shaped test API.

mod api;
mod api_platform;
pub use api::DEFAULT_CANISTER_CYCLES;
mod chunks;
mod cmc;
mod cycles;
mod dispatch;
mod faults;
mod management;
mod scheduler;
pub(crate) mod snapshots;
mod status;
mod system_faults;
mod threads;
mod upgrade;
pub(crate) mod visibility;
mod xnet;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use candid::Principal;

use crate::canister::{Canister, Origin};
use crate::fees::FeeSchedule;
use crate::types::{
    CanisterId, InstructionLimits, MessageId, Reject, SubnetId, subnet_id_from_index,
};

/// A request on its way to a canister or to the management canister.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub sender: Principal,
    pub receiver: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    pub cycles: u128,
    pub origin: Origin,
}

/// A response on its way back to the caller canister.
#[derive(Debug, Clone)]
pub(crate) struct ResponseMsg {
    pub receiver: CanisterId,
    pub callback: u64,
    pub result: Result<Vec<u8>, Reject>,
    pub refund: u128,
    /// Made by the system (deadline expiry): the only response a timed-out callback takes.
    pub synthetic: bool,
}

/// A message between canisters (or from a user).
#[derive(Debug, Clone)]
pub(crate) enum Message {
    Request(Request),
    Response(ResponseMsg),
}

impl Message {
    /// The input queue the message goes to (the management canister has its own).
    fn queue_key(&self) -> Principal {
        match self {
            Self::Request(r) => r.receiver,
            Self::Response(r) => r.receiver,
        }
    }
}

/// A message between subnets: waiting in its sender's output queue (not yet in the
/// stream), or in the stream until its delivery round and room in a block.
#[derive(Debug, Clone)]
pub(crate) struct InTransit {
    /// The round from which it may be delivered (meaningful once `in_stream`).
    pub at: u64,
    /// Routed into its stream (ingress and the CMC's messages always are).
    pub in_stream: bool,
    /// The sender's subnet (`None` for users and the CMC).
    pub from_subnet: Option<SubnetId>,
    pub msg: Message,
}

/// Configuration of a harness.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub latency_rounds: u64,
    pub round_nanos: u64,
    pub limits: InstructionLimits,
    pub seed: u64,
    pub fees: FeeSchedule,
    pub shuffle_seed: Option<u64>,
    /// Best-effort message bytes a subnet may hold at the end of a round.
    pub best_effort_capacity: u64,
    /// Outstanding callbacks a subnet shares before canisters are held to their quota.
    pub subnet_callback_soft_limit: usize,
    /// Outstanding callbacks each canister may always hold.
    pub canister_callback_quota: usize,
    /// Execution threads per subnet.
    pub scheduler_cores: usize,
    /// Instructions each thread may execute per round.
    pub round_instructions: u64,
    /// Heap delta a canister may produce per round on average.
    pub heap_delta_rate_limit: u64,
    /// Bytes of ingress and incoming cross-subnet messages one block carries.
    pub block_payload_bytes: u64,
    /// Where new stable memories keep their blocks.
    pub stable_storage: crate::stable_memory::StableStorage,
}

/// An effect of an execution that others can observe, held back while the execution is
/// paused between DTS slices.
#[derive(Debug, Clone)]
pub(crate) enum Effect {
    /// A message routed by `from`.
    Route(Principal, Message),
    /// The result of an ingress message.
    Ingress(MessageId, Result<Vec<u8>, Reject>),
}

/// A long execution still going through its DTS slices: it has run, but what others see
/// of it is released only when its last slice has executed.
#[derive(Debug, Clone)]
pub(crate) struct Paused {
    /// Instructions of the slices still to execute.
    pub remaining: u64,
    /// Held-back effects, in order.
    pub effects: Vec<Effect>,
}

/// Builds a [`Harness`] with a chosen topology.
#[derive(Debug, Clone)]
pub struct HarnessBuilder {
    /// One entry per subnet: its CMC subnet type (`None`: a default application subnet).
    subnets: Vec<Option<String>>,
    /// Nodes of each subnet, in the order of `subnets` (prices scale with them).
    subnet_nodes: Vec<u128>,
    config: Config,
}

impl Default for HarnessBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl HarnessBuilder {
    /// No subnets yet; defaults: 2 rounds of cross-subnet latency, 1 s per round, IC limits.
    #[must_use]
    pub fn new() -> Self {
        Self {
            subnets: Vec::new(),
            subnet_nodes: Vec::new(),
            config: Config {
                latency_rounds: 2,
                round_nanos: 1_000_000_000,
                limits: InstructionLimits::default(),
                seed: 0,
                fees: FeeSchedule::default(),
                shuffle_seed: None,
                best_effort_capacity: crate::limits::SUBNET_BEST_EFFORT_MESSAGE_MEMORY_CAPACITY,
                subnet_callback_soft_limit: crate::limits::SUBNET_CALLBACK_SOFT_LIMIT,
                canister_callback_quota: crate::limits::CANISTER_GUARANTEED_CALLBACK_QUOTA,
                scheduler_cores: crate::limits::SCHEDULER_CORES,
                round_instructions: crate::limits::MAX_INSTRUCTIONS_PER_ROUND,
                heap_delta_rate_limit: crate::limits::HEAP_DELTA_RATE_LIMIT_BYTES,
                block_payload_bytes: crate::limits::MAX_BLOCK_PAYLOAD_BYTES,
                stable_storage: crate::stable_memory::StableStorage::from_env(),
            },
        }
    }

    /// Adds one application subnet, one of the CMC's default subnets.
    #[must_use]
    pub fn with_application_subnet(mut self) -> Self {
        self.subnets.push(None);
        self.subnet_nodes.push(crate::fees::REFERENCE_SUBNET_NODES);
        self
    }

    /// Adds one default application subnet of `nodes` nodes: its fees are the 13-node
    /// prices scaled by `nodes / 13`, as the replica's `scale_cost` does.
    #[must_use]
    pub fn with_application_subnet_of_nodes(mut self, nodes: u128) -> Self {
        self.subnets.push(None);
        self.subnet_nodes.push(nodes.max(1));
        self
    }

    /// Adds one application subnet of CMC subnet type `subnet_type` (e.g. `"fiduciary"`):
    /// listed by `get_subnet_types_to_subnets`, reachable through the CMC only by
    /// `Filter { subnet_type = opt "<type>" }` or by naming it, and not a default subnet.
    #[must_use]
    /// A `"fiduciary"` subnet has 34 nodes (and pays 34/13 of each fee); any other type 13.
    pub fn with_application_subnet_of_type(mut self, subnet_type: &str) -> Self {
        self.subnets.push(Some(subnet_type.to_string()));
        self.subnet_nodes.push(if subnet_type == "fiduciary" {
            crate::fees::FIDUCIARY_SUBNET_NODES
        } else {
            crate::fees::REFERENCE_SUBNET_NODES
        });
        self
    }

    /// The fee table (default: a 13-node application subnet's, see [`FeeSchedule`]).
    #[must_use]
    pub fn with_fee_schedule(mut self, fees: FeeSchedule) -> Self {
        self.config.fees = fees;
        self
    }

    /// Randomises, with `seed`, the order in which ready queues execute (see
    /// [`Harness::set_queue_shuffle`]); the default is FIFO order.
    #[must_use]
    pub fn with_queue_shuffle(mut self, seed: u64) -> Self {
        self.config.shuffle_seed = Some(seed);
        self
    }

    /// Rounds a message takes between subnets (default 2, so a cross-subnet call's round
    /// trip takes at least 4 rounds; mainnet measures about 5). One unit is one round
    /// between the end of the round that routes a message into its stream and the round
    /// that inducts it on the receiving subnet; waiting for room in the stream or in a
    /// block comes on top.
    #[must_use]
    pub fn with_cross_subnet_latency_rounds(mut self, rounds: u64) -> Self {
        self.config.latency_rounds = rounds;
        self
    }

    /// Simulated time per round (default 1 s).
    #[must_use]
    pub fn with_round_duration(mut self, d: Duration) -> Self {
        self.config.round_nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self
    }

    /// Instruction budgets (default: the IC's).
    #[must_use]
    pub fn with_instruction_limits(mut self, limits: InstructionLimits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Bytes of best-effort messages each subnet may hold at the end of a round (default:
    /// the replica's 5 GiB, `SUBNET_BEST_EFFORT_MESSAGE_MEMORY_CAPACITY`); above it the
    /// largest are shed. A test lowers it to provoke shedding with a few MiB.
    #[must_use]
    pub fn with_best_effort_message_memory_capacity(mut self, bytes: u64) -> Self {
        self.config.best_effort_capacity = bytes;
        self
    }

    /// The subnet-wide soft limit on outstanding callbacks (default: the replica's
    /// 1,000,000, `SUBNET_CALLBACK_SOFT_LIMIT`). Once a subnet's canisters hold that many,
    /// each canister may only make calls within its own quota
    /// ([`HarnessBuilder::with_canister_callback_quota`]); 0 applies the quota always.
    #[must_use]
    pub fn with_subnet_callback_soft_limit(mut self, callbacks: usize) -> Self {
        self.config.subnet_callback_soft_limit = callbacks;
        self
    }

    /// Outstanding callbacks every canister may hold whatever the subnet's load (default:
    /// the replica's 50, `CANISTER_GUARANTEED_CALLBACK_QUOTA`).
    #[must_use]
    pub fn with_canister_callback_quota(mut self, callbacks: usize) -> Self {
        self.config.canister_callback_quota = callbacks;
        self
    }

    /// Execution threads per subnet (default: the replica's 4, `SCHEDULER_CORES`) and the
    /// instructions each may run per round (default 7B, `MAX_INSTRUCTIONS_PER_ROUND`).
    #[must_use]
    pub fn with_scheduler_threads(mut self, threads: usize, instructions_per_round: u64) -> Self {
        self.config.scheduler_cores = threads.max(1);
        self.config.round_instructions = instructions_per_round;
        self
    }

    /// Heap delta a canister may produce per round before the scheduler skips it (default:
    /// the replica's 75 MiB, `HEAP_DELTA_RATE_LIMIT_BYTES`).
    #[must_use]
    pub fn with_heap_delta_rate_limit(mut self, bytes: u64) -> Self {
        self.config.heap_delta_rate_limit = bytes;
        self
    }

    /// Bytes of ingress and incoming cross-subnet messages a subnet inducts per round
    /// (default: 4 MiB, `MAX_BLOCK_PAYLOAD_BYTES`).
    #[must_use]
    pub fn with_block_payload_bytes(mut self, bytes: u64) -> Self {
        self.config.block_payload_bytes = bytes;
        self
    }

    /// Keeps every canister's stable memory (and its snapshots' copies) in a sparse
    /// temporary file in `dir`, one per memory, unlinked at creation and so deleted when
    /// dropped: resident memory then holds about 1 KiB of bookkeeping per MiB plus the open
    /// execution's journal. Behaviour, instruction counts and cycles are the same as in RAM.
    /// Default: RAM, unless the environment variable `IC_HARNESS_STABLE_MEMORY_DIR` names a
    /// directory ([`crate::stable_memory::STABLE_MEMORY_DIR_ENV`]).
    #[must_use]
    pub fn with_stable_memory_on_disk(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.config.stable_storage = crate::stable_memory::StableStorage::disk(dir);
        self
    }

    /// Keeps stable memory in RAM, whatever `IC_HARNESS_STABLE_MEMORY_DIR` says.
    #[must_use]
    pub fn with_stable_memory_in_ram(mut self) -> Self {
        self.config.stable_storage = crate::stable_memory::StableStorage::Ram;
        self
    }

    /// Seed of every pseudo-random choice (`raw_rand`).
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Builds the harness; with no subnet requested, it has one.
    #[must_use]
    pub fn build(self) -> Harness {
        let mut kinds = self.subnets;
        let mut nodes = self.subnet_nodes;
        if kinds.is_empty() {
            kinds.push(None);
            nodes.push(crate::fees::REFERENCE_SUBNET_NODES);
        }
        let subnets: Vec<SubnetId> = (0..kinds.len() as u64).map(subnet_id_from_index).collect();
        let subnet_nodes = subnets.iter().copied().zip(nodes).collect();
        let subnet_types = subnets
            .iter()
            .zip(kinds)
            .filter_map(|(s, t)| t.map(|t| (*s, t)))
            .collect();
        let fees = Arc::new(self.config.fees.clone());
        let mut harness = Harness {
            subnets,
            subnet_types,
            subnet_nodes,
            faults: faults::Faults::default(),
            events: faults::EventLog::default(),
            canisters: BTreeMap::new(),
            routing: Arc::new(BTreeMap::new()),
            next_canister_index: crate::types::FIRST_APP_CANISTER_INDEX,
            rng_state: self.config.seed ^ 0x9E37_79B9_7F4A_7C15,
            config: self.config,
            time: 1_700_000_000_000_000_000,
            round: 0,
            in_transit: Vec::new(),
            cmc_waiting: Vec::new(),
            paused: BTreeMap::new(),
            capture: None,
            last_scheduled: BTreeMap::new(),
            inputs: BTreeMap::new(),
            ingress: BTreeMap::new(),
            next_message: 0,
            fees,
            current_sender: Principal::management_canister(),
        };
        harness.set_queue_shuffle(harness.config.shuffle_seed);
        harness
    }
}

/// The subnets of a harness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Application subnets, in creation order.
    pub app_subnets: Vec<SubnetId>,
}

/// An in-process Internet Computer.
pub struct Harness {
    subnets: Vec<SubnetId>,
    /// CMC subnet types of the typed subnets (the others are default subnets).
    subnet_types: BTreeMap<SubnetId, String>,
    /// Nodes per subnet: fees scale with them.
    subnet_nodes: BTreeMap<SubnetId, u128>,
    faults: faults::Faults,
    events: faults::EventLog,
    canisters: BTreeMap<CanisterId, Canister>,
    /// Canister → subnet; shared with executions for payload limits.
    routing: Arc<BTreeMap<Principal, SubnetId>>,
    next_canister_index: u64,
    rng_state: u64,
    config: Config,
    /// Simulated time in nanoseconds since the epoch.
    time: u64,
    round: u64,
    /// Messages between subnets, in send order.
    in_transit: Vec<InTransit>,
    /// CMC `create_canister` requests waiting for the CMC's round trip to the target
    /// subnet: (round from which they complete, request).
    cmc_waiting: Vec<(u64, Request)>,
    /// Canisters in the middle of a long (DTS) execution.
    paused: BTreeMap<CanisterId, Paused>,
    /// While `Some`, effects are collected here instead of taking place.
    capture: Option<Vec<Effect>>,
    /// The round in which each canister last executed (its scheduling priority: the least
    /// recently executed go first).
    last_scheduled: BTreeMap<CanisterId, u64>,
    /// Input queues by receiver (the management canister included).
    inputs: BTreeMap<Principal, VecDeque<Message>>,
    /// Ingress messages: `None` while pending.
    ingress: BTreeMap<MessageId, Option<Result<Vec<u8>, Reject>>>,
    next_message: u64,
    fees: Arc<FeeSchedule>,
    /// The canister whose execution is producing messages now (for routing latency).
    current_sender: Principal,
}

/// The fee schedule `c` pays, from the reference table and the subnets' node counts (a
/// free function so that loops holding the canisters mutably can use it).
pub(crate) fn canister_fees(
    fees: &FeeSchedule,
    subnet_nodes: &BTreeMap<SubnetId, u128>,
    c: &Canister,
) -> FeeSchedule {
    let nodes = subnet_nodes
        .get(&c.subnet)
        .copied()
        .unwrap_or(crate::fees::REFERENCE_SUBNET_NODES);
    let wasm64 = c
        .code
        .as_ref()
        .is_some_and(|code| code.compiled.prepared.memory64);
    fees.for_subnet(nodes).for_wasm64(wasm64)
}

impl Harness {
    /// The fee schedule on `subnet`: the reference prices scaled to its nodes.
    pub(crate) fn fees_on(&self, subnet: SubnetId) -> FeeSchedule {
        let nodes = self
            .subnet_nodes
            .get(&subnet)
            .copied()
            .unwrap_or(crate::fees::REFERENCE_SUBNET_NODES);
        self.fees.for_subnet(nodes)
    }

    /// The fee schedule `c` pays: its subnet's, at the instruction price of its memory width.
    pub(crate) fn fees_of(&self, c: &Canister) -> FeeSchedule {
        canister_fees(&self.fees, &self.subnet_nodes, c)
    }

    /// Queues `msg`: at once on the same subnet, after the configured latency across subnets.
    /// Cross-subnet messages wait in an output queue until `build_streams` moves them
    /// into their stream. While an execution's effects are captured, the message is held.
    pub(crate) fn route(&mut self, from: Principal, msg: Message) {
        if let Some(effects) = self.capture.as_mut() {
            effects.push(Effect::Route(from, msg));
            return;
        }
        let to = match &msg {
            Message::Request(r) if r.receiver == Principal::management_canister() => {
                management::effective_canister(&r.method, &r.arg).unwrap_or(from)
            }
            other => other.queue_key(),
        };
        let from_subnet = self.routing.get(&from).copied();
        let same_subnet = from_subnet.is_some() && from_subnet.as_ref() == self.routing.get(&to);
        let key = msg.queue_key();
        if same_subnet {
            self.inputs.entry(key).or_default().push_back(msg);
        } else {
            self.in_transit.push(InTransit {
                at: u64::MAX,
                in_stream: false,
                from_subnet,
                msg,
            });
        }
    }

    /// The subnet a message is delivered to (`None`: the CMC, or a missing canister).
    pub(crate) fn destination_subnet(&self, msg: &Message) -> Option<SubnetId> {
        let to = match msg {
            Message::Request(r) if r.receiver == Principal::management_canister() => {
                management::effective_canister(&r.method, &r.arg)?
            }
            other => other.queue_key(),
        };
        self.routing.get(&to).copied()
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64: deterministic, seeded, good enough for raw_rand in tests.
        faults::splitmix(&mut self.rng_state)
    }
}
