//! The in-process Internet Computer: subnets, canisters, message routing and the
//! PocketIC-shaped test API.

mod api;
pub use api::DEFAULT_CANISTER_CYCLES;
mod dispatch;
mod management;
mod scheduler;

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

/// Configuration of a harness.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub latency_rounds: u64,
    pub round_nanos: u64,
    pub limits: InstructionLimits,
    pub seed: u64,
}

/// Builds a [`Harness`] with a chosen topology.
#[derive(Debug, Clone)]
pub struct HarnessBuilder {
    subnets: usize,
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
            subnets: 0,
            config: Config {
                latency_rounds: 2,
                round_nanos: 1_000_000_000,
                limits: InstructionLimits::default(),
                seed: 0,
            },
        }
    }

    /// Adds one application subnet.
    #[must_use]
    pub fn with_application_subnet(mut self) -> Self {
        self.subnets += 1;
        self
    }

    /// Rounds a message takes between subnets (default 2).
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

    /// Seed of every pseudo-random choice (`raw_rand`).
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Builds the harness; with no subnet requested, it has one.
    #[must_use]
    pub fn build(self) -> Harness {
        let count = self.subnets.max(1);
        let subnets = (0..count as u64).map(subnet_id_from_index).collect();
        Harness {
            subnets,
            canisters: BTreeMap::new(),
            routing: Arc::new(BTreeMap::new()),
            next_canister_index: 0,
            rng_state: self.config.seed ^ 0x9E37_79B9_7F4A_7C15,
            config: self.config,
            time: 1_700_000_000_000_000_000,
            round: 0,
            in_transit: Vec::new(),
            inputs: BTreeMap::new(),
            ingress: BTreeMap::new(),
            next_message: 0,
            fees: Arc::new(FeeSchedule::default()),
            current_sender: Principal::management_canister(),
        }
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
    canisters: BTreeMap<CanisterId, Canister>,
    /// Canister → subnet; shared with executions for payload limits.
    routing: Arc<BTreeMap<Principal, SubnetId>>,
    next_canister_index: u64,
    rng_state: u64,
    config: Config,
    /// Simulated time in nanoseconds since the epoch.
    time: u64,
    round: u64,
    /// Messages between subnets: (delivery round, message), in send order.
    in_transit: Vec<(u64, Message)>,
    /// Input queues by receiver (the management canister included).
    inputs: BTreeMap<Principal, VecDeque<Message>>,
    /// Ingress messages: `None` while pending.
    ingress: BTreeMap<MessageId, Option<Result<Vec<u8>, Reject>>>,
    next_message: u64,
    fees: Arc<FeeSchedule>,
    /// The canister whose execution is producing messages now (for routing latency).
    current_sender: Principal,
}

impl Harness {
    /// Queues `msg`: at once on the same subnet, after the configured latency across subnets.
    pub(crate) fn route(&mut self, from: Principal, msg: Message) {
        let to = match &msg {
            Message::Request(r) if r.receiver == Principal::management_canister() => {
                management::effective_canister(&r.method, &r.arg).unwrap_or(from)
            }
            other => other.queue_key(),
        };
        let from_subnet = self.routing.get(&from);
        let same_subnet = from_subnet.is_some() && from_subnet == self.routing.get(&to);
        let key = msg.queue_key();
        if same_subnet {
            self.inputs.entry(key).or_default().push_back(msg);
        } else {
            self.in_transit
                .push((self.round + self.config.latency_rounds, msg));
        }
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64: deterministic, seeded, good enough for raw_rand in tests.
        self.rng_state = self.rng_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
