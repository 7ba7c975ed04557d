//! The test-facing API, named after PocketIC's so scenarios port between the two.

use candid::Principal;
use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterInstallMode, CanisterSettings, CanisterStatusResult, InstallCodeArgs,
    UpgradeFlags,
};

use super::{Harness, Message, Request, Topology};
use crate::canister::{CanisterMetrics, Origin};
use crate::execution::Entry;
use crate::limits::MAX_CROSS_SUBNET_REQUEST_BYTES;
use crate::system_api::{ApiContext, Response};
use crate::types::{
    CallError, CanisterId, InstructionLimits, MessageId, Reject, RejectCode, SubnetId,
};

/// Cycles a canister created through the test API starts with (as in PocketIC).
pub const DEFAULT_CANISTER_CYCLES: u128 = 100_000_000_000_000;

/// Rounds `await_call` and the synchronous helpers tick before giving up.
const AWAIT_ROUND_LIMIT: u64 = 100_000;

impl Harness {
    /// The subnets.
    #[must_use]
    pub fn topology(&self) -> Topology {
        Topology {
            app_subnets: self.subnets.clone(),
        }
    }

    /// The subnet hosting `canister`.
    #[must_use]
    pub fn get_subnet(&self, canister: CanisterId) -> Option<SubnetId> {
        self.routing.get(&canister).copied()
    }

    /// Creates an empty canister on `subnet` with [`DEFAULT_CANISTER_CYCLES`].
    /// Controllers are `settings.controllers`, else `[sender]` (anonymous when `None`).
    ///
    /// # Panics
    /// If `subnet` is not one of the harness's subnets.
    pub fn create_canister_on_subnet(
        &mut self,
        sender: Option<Principal>,
        settings: Option<CanisterSettings>,
        subnet: SubnetId,
    ) -> CanisterId {
        assert!(self.subnets.contains(&subnet), "unknown subnet {subnet}");
        let creator = sender.unwrap_or_else(Principal::anonymous);
        let controllers = settings
            .as_ref()
            .and_then(|s| s.controllers.clone())
            .unwrap_or_else(|| vec![creator]);
        let id = self.new_canister(subnet, controllers, DEFAULT_CANISTER_CYCLES);
        if let Some(s) = settings {
            let c = self.canisters.get_mut(&id).expect("just created");
            if let Some(t) = s.freezing_threshold.and_then(|n| u64::try_from(&n.0).ok()) {
                c.freezing_threshold = t;
            }
        }
        id
    }

    /// Installs `wasm` on an empty canister.
    ///
    /// # Panics
    /// If the install is rejected (like PocketIC); see [`Harness::try_install_canister`].
    pub fn install_canister(
        &mut self,
        canister: CanisterId,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) {
        if let Err(r) = self.try_install_canister(canister, wasm, arg, sender) {
            panic!("install_canister({canister}) failed: {r}");
        }
    }

    /// Installs `wasm` on an empty canister.
    ///
    /// # Errors
    /// The management canister's reject (not a controller, invalid module, init trapped...).
    pub fn try_install_canister(
        &mut self,
        canister: CanisterId,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), Reject> {
        self.install_mode(canister, CanisterInstallMode::Install, wasm, arg, sender)
    }

    /// Upgrades: pre_upgrade on the old module, stable memory kept, post_upgrade on the new.
    ///
    /// # Errors
    /// The management canister's reject; the canister is then unchanged.
    pub fn upgrade_canister(
        &mut self,
        canister: CanisterId,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), Reject> {
        self.upgrade_canister_with_flags(canister, wasm, arg, sender, UpgradeFlags::default())
    }

    /// Upgrades with explicit flags: `skip_pre_upgrade`, and `wasm_memory_persistence`
    /// (`keep` carries the heap over, for modules with enhanced orthogonal persistence).
    ///
    /// # Errors
    /// The management canister's reject (including IC0504 for a missing or invalid
    /// `wasm_memory_persistence`); the canister is then unchanged.
    pub fn upgrade_canister_with_flags(
        &mut self,
        canister: CanisterId,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
        flags: UpgradeFlags,
    ) -> Result<(), Reject> {
        let mode = CanisterInstallMode::Upgrade(Some(flags));
        self.install_mode(canister, mode, wasm, arg, sender)
    }

    /// Reinstalls: heap and stable memory wiped, then init.
    ///
    /// # Errors
    /// The management canister's reject; the canister is then unchanged.
    pub fn reinstall_canister(
        &mut self,
        canister: CanisterId,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), Reject> {
        self.install_mode(canister, CanisterInstallMode::Reinstall, wasm, arg, sender)
    }

    fn install_mode(
        &mut self,
        canister: CanisterId,
        mode: CanisterInstallMode,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), Reject> {
        let args = InstallCodeArgs {
            mode,
            canister_id: canister,
            wasm_module: wasm,
            arg,
            sender_canister_version: None,
        };
        self.install_code(sender.unwrap_or_else(Principal::anonymous), args)
    }

    /// Submits an ingress update call; it executes from the next round on.
    /// The management canister is reachable too (routed by the argument's `canister_id`).
    ///
    /// # Errors
    /// The ingress is refused before execution: too large, or rejected by `canister_inspect_message`.
    pub fn submit_call(
        &mut self,
        canister: CanisterId,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<MessageId, Reject> {
        if arg.len() > MAX_CROSS_SUBNET_REQUEST_BYTES {
            return Err(Reject::new(
                RejectCode::CanisterReject,
                format!(
                    "ingress payload of {} bytes exceeds the {MAX_CROSS_SUBNET_REQUEST_BYTES}-byte limit",
                    arg.len()
                ),
            ));
        }
        if canister != Principal::management_canister() && canister != super::cmc::CMC {
            // As the replica's ingress filter: the paying canister's cycles first.
            if let Some(c) = self.canisters.get(&canister) {
                self.check_not_frozen(c)?;
            }
            self.inspect_message(canister, sender, method, &arg)?;
        }
        // The receiving canister (for management calls, the canister acted on) pays for
        // the ingress message, and must not be frozen.
        let payer = if canister == Principal::management_canister() {
            super::management::effective_canister(method, &arg)
        } else {
            Some(canister)
        };
        if let Some(payer) = payer {
            self.charge_ingress(payer, (method.len() + arg.len()) as u64)?;
        }
        let id = MessageId(self.next_message);
        self.next_message += 1;
        self.ingress.insert(id, None);
        let req = Request {
            sender,
            receiver: canister,
            method: method.to_string(),
            arg,
            cycles: 0,
            origin: Origin::Ingress(id),
        };
        self.in_transit.push(super::InTransit {
            at: self.round + 1,
            in_stream: true,
            from_subnet: None,
            msg: Message::Request(req),
        });
        Ok(id)
    }

    /// The replica's ingress filter (`should_accept_ingress_message`): an empty canister
    /// refuses the message (IC0537); otherwise `canister_inspect_message` runs, if
    /// exported, on a throw-away copy of the state with the 200M-instruction limit of
    /// `max_instructions_for_message_acceptance_calls`, free of charge. It must call
    /// `ic0.accept_message`: returning without it is IC0406 (CANISTER_REJECT), a trap or
    /// running out of instructions is the trap's error (CANISTER_ERROR). Inter-canister
    /// calls, ingress queries and management calls are never inspected.
    fn inspect_message(
        &mut self,
        canister: CanisterId,
        sender: Principal,
        method: &str,
        arg: &[u8],
    ) -> Result<(), Reject> {
        let Some(c) = self.canisters.get(&canister) else {
            return Ok(()); // rejected with DESTINATION_INVALID on delivery
        };
        let Some(code) = c.code.as_ref() else {
            return Err(Reject::new(
                RejectCode::CanisterError,
                format!(
                    "Error from Canister {canister}: Requested canister has no wasm module. (IC0537)"
                ),
            ));
        };
        if !code.compiled.prepared.has_inspect_message
            || c.status != crate::canister::Status::Running
        {
            return Ok(());
        }
        let mut state = self.exec_state(c, ApiContext::InspectMessage, sender, arg.to_vec(), None);
        state.method_name = method.to_string();
        let c = self.canisters.get_mut(&canister).expect("present");
        let outcome = Self::run(
            c,
            &Entry::Export("canister_inspect_message".into()),
            state,
            false,
            &mut self.events,
        );
        match outcome.result {
            Ok(s) if s.message_accepted => Ok(()),
            Ok(_) => Err(Reject::new(
                RejectCode::CanisterReject,
                format!(
                    "Error from Canister {canister}: Canister {canister} rejected the message. (IC0406)"
                ),
            )),
            Err(trap) => Err(Reject::new(
                RejectCode::CanisterError,
                trap.reject_message(&canister),
            )),
        }
    }

    /// The result of an ingress message, `None` while it is pending.
    #[must_use]
    pub fn ingress_status(&self, id: MessageId) -> Option<Result<Vec<u8>, Reject>> {
        self.ingress.get(&id).cloned().flatten()
    }

    /// Ticks until the ingress message `id` is answered.
    ///
    /// # Errors
    /// The call's reject.
    ///
    /// # Panics
    /// If `id` is unknown or still unanswered after a very large number of rounds.
    pub fn await_call(&mut self, id: MessageId) -> Result<Vec<u8>, Reject> {
        assert!(self.ingress.contains_key(&id), "unknown message {id:?}");
        for _ in 0..AWAIT_ROUND_LIMIT {
            if let Some(result) = self.ingress_status(id) {
                return result;
            }
            self.tick();
        }
        panic!(
            "message {id:?} unanswered after {AWAIT_ROUND_LIMIT} rounds: {}",
            self.busy_summary()
        );
    }

    /// An ingress update call: submit, then tick until answered.
    ///
    /// # Errors
    /// The call's reject.
    pub fn update_call(
        &mut self,
        canister: CanisterId,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, Reject> {
        let id = self.submit_call(canister, sender, method, arg)?;
        self.await_call(id)
    }

    /// An ingress (non-replicated) query: executes at once; its state changes are discarded.
    ///
    /// # Errors
    /// The call's reject.
    pub fn query_call(
        &mut self,
        canister: CanisterId,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, Reject> {
        if canister == super::cmc::CMC {
            return self.cmc_query(method).ok_or_else(|| {
                Reject::new(
                    RejectCode::CanisterError,
                    format!(
                        "Error from Canister {canister}: Canister has no query method '{method}'. (IC0536)"
                    ),
                )
            });
        }
        let c = self.canisters.get(&canister).ok_or_else(|| {
            Reject::new(
                RejectCode::DestinationInvalid,
                format!("Canister {canister} not found. (IC0301)"),
            )
        })?;
        self.check_accepts_calls(c)?;
        let kind = self.resolve_method(c, method)?;
        let (context, export) = match kind {
            super::dispatch::MethodKind::Query => (
                ApiContext::NonReplicatedQuery,
                format!("canister_query {method}"),
            ),
            super::dispatch::MethodKind::CompositeQuery => (
                ApiContext::CompositeQuery,
                format!("canister_composite_query {method}"),
            ),
            super::dispatch::MethodKind::Update => {
                return Err(Reject::new(
                    RejectCode::CanisterError,
                    format!(
                        "Error from Canister {canister}: Canister has no query method '{method}'. (IC0536)"
                    ),
                ));
            }
        };
        let mut state = self.exec_state(c, context, sender, arg, None);
        state.can_respond = true;
        let c = self.canisters.get_mut(&canister).expect("present");
        let outcome = Self::run(c, &Entry::Export(export), state, false, &mut self.events);
        match outcome.result {
            Ok(s) if !s.calls.is_empty() => Err(Reject::new(
                RejectCode::CanisterError,
                format!(
                    "Error from Canister {canister}: composite query calls are not supported by ic-harness."
                ),
            )),
            Ok(s) => match s.response {
                Some(Response::Reply(bytes)) => Ok(bytes),
                Some(Response::Reject(msg)) => Err(Reject::new(RejectCode::CanisterReject, msg)),
                None => Err(Reject::new(
                    RejectCode::CanisterError,
                    format!(
                        "Error from Canister {canister}: Canister did not reply to the call. (IC0506)"
                    ),
                )),
            },
            Err(trap) => Err(Reject::new(
                RejectCode::CanisterError,
                trap.reject_message(&canister),
            )),
        }
    }

    /// `update_call` with candid arguments and reply.
    ///
    /// # Errors
    /// The reject, or a candid encoding/decoding failure.
    pub fn update_candid<A, R>(
        &mut self,
        canister: CanisterId,
        sender: Principal,
        method: &str,
        args: A,
    ) -> Result<R, CallError>
    where
        A: ArgumentEncoder,
        R: for<'de> ArgumentDecoder<'de>,
    {
        let arg = candid::encode_args(args).map_err(|e| CallError::Candid(e.to_string()))?;
        let reply = self.update_call(canister, sender, method, arg)?;
        candid::decode_args(&reply).map_err(|e| CallError::Candid(e.to_string()))
    }

    /// `query_call` with candid arguments and reply.
    ///
    /// # Errors
    /// The reject, or a candid encoding/decoding failure.
    pub fn query_candid<A, R>(
        &mut self,
        canister: CanisterId,
        sender: Principal,
        method: &str,
        args: A,
    ) -> Result<R, CallError>
    where
        A: ArgumentEncoder,
        R: for<'de> ArgumentDecoder<'de>,
    {
        let arg = candid::encode_args(args).map_err(|e| CallError::Candid(e.to_string()))?;
        let reply = self.query_call(canister, sender, method, arg)?;
        candid::decode_args(&reply).map_err(|e| CallError::Candid(e.to_string()))
    }

    /// A management call made by a user, awaited.
    fn management_call(
        &mut self,
        sender: Option<Principal>,
        method: &str,
        canister: CanisterId,
    ) -> Result<Vec<u8>, Reject> {
        let arg = candid::encode_one(CanisterIdRecord {
            canister_id: canister,
        })
        .expect("encodes");
        self.update_call(
            Principal::management_canister(),
            sender.unwrap_or_else(Principal::anonymous),
            method,
            arg,
        )
    }

    /// Stops `canister`, ticking until it is stopped (open call contexts finish first).
    ///
    /// # Errors
    /// Not a controller, unknown canister.
    pub fn stop_canister(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<(), Reject> {
        self.management_call(sender, "stop_canister", canister)
            .map(drop)
    }

    /// Starts `canister`.
    ///
    /// # Errors
    /// Not a controller, unknown canister.
    pub fn start_canister(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<(), Reject> {
        self.start(sender.unwrap_or_else(Principal::anonymous), canister)
    }

    /// Deletes a stopped canister.
    ///
    /// # Errors
    /// Not a controller, not stopped, unknown canister.
    pub fn delete_canister(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<(), Reject> {
        self.delete(sender.unwrap_or_else(Principal::anonymous), canister)
    }

    /// `canister_status` as a controller would see it.
    ///
    /// # Errors
    /// Not a controller, unknown canister.
    pub fn canister_status(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
    ) -> Result<CanisterStatusResult, Reject> {
        self.status_of(sender.unwrap_or_else(Principal::anonymous), canister)
    }

    /// Changes the given settings.
    ///
    /// # Errors
    /// Not a controller, unknown canister, too many controllers.
    pub fn update_canister_settings(
        &mut self,
        canister: CanisterId,
        sender: Option<Principal>,
        settings: CanisterSettings,
    ) -> Result<(), Reject> {
        self.update_settings(
            sender.unwrap_or_else(Principal::anonymous),
            canister,
            settings,
        )
    }

    /// True if the canister exists (created and not deleted).
    #[must_use]
    pub fn canister_exists(&self, canister: CanisterId) -> bool {
        self.canisters.contains_key(&canister)
    }

    /// The canister's stable memory, byte for byte.
    ///
    /// # Panics
    /// If the canister does not exist.
    #[must_use]
    pub fn get_stable_memory(&self, canister: CanisterId) -> Vec<u8> {
        self.canisters[&canister].stable.to_vec()
    }

    /// Size of the canister's stable memory in bytes.
    ///
    /// # Panics
    /// If the canister does not exist.
    #[must_use]
    pub fn stable_memory_size(&self, canister: CanisterId) -> u64 {
        self.canisters[&canister].stable.size_bytes()
    }

    /// Copies `dst.len()` bytes of the canister's stable memory from `offset` (reading
    /// a multi-GiB memory piece by piece, where [`Self::get_stable_memory`] copies it whole).
    ///
    /// # Panics
    /// If the canister does not exist or the range is out of bounds.
    pub fn read_stable_memory(&self, canister: CanisterId, offset: u64, dst: &mut [u8]) {
        self.canisters[&canister]
            .stable
            .read(offset, dst)
            .unwrap_or_else(|e| panic!("read_stable_memory: {e}"));
    }

    /// Replaces the canister's stable memory (size rounded up to whole pages).
    ///
    /// # Panics
    /// If the canister does not exist.
    pub fn set_stable_memory(&mut self, canister: CanisterId, data: Vec<u8>) {
        let c = self.canisters.get_mut(&canister).expect("canister exists");
        c.stable = crate::stable_memory::StableMemory::from_bytes_in(&c.stable.storage(), &data);
    }

    /// The canister's cycle balance.
    ///
    /// # Panics
    /// If the canister does not exist.
    #[must_use]
    pub fn cycle_balance(&self, canister: CanisterId) -> u128 {
        self.canisters[&canister].cycles
    }

    /// Adds cycles; returns the new balance.
    ///
    /// # Panics
    /// If the canister does not exist.
    pub fn add_cycles(&mut self, canister: CanisterId, amount: u128) -> u128 {
        let c = self.canisters.get_mut(&canister).expect("canister exists");
        c.cycles += amount;
        c.cycles
    }

    /// `debug_print` output of the canister, in order (including trapped executions).
    #[must_use]
    pub fn canister_logs(&self, canister: CanisterId) -> Vec<String> {
        self.canisters
            .get(&canister)
            .map(|c| c.logs.clone())
            .unwrap_or_default()
    }

    /// Execution and traffic counters of the canister.
    ///
    /// # Panics
    /// If the canister does not exist.
    #[must_use]
    pub fn metrics(&self, canister: CanisterId) -> CanisterMetrics {
        self.canisters[&canister].metrics.clone()
    }

    /// Zeroes the canister's counters, so a benchmark measures one phase at a time.
    ///
    /// # Panics
    /// If the canister does not exist.
    pub fn reset_metrics(&mut self, canister: CanisterId) {
        self.canisters
            .get_mut(&canister)
            .expect("canister exists")
            .metrics = CanisterMetrics::default();
    }

    /// Simulated time, nanoseconds since the epoch.
    #[must_use]
    pub fn time_nanos(&self) -> u64 {
        self.time
    }

    /// Rounds executed so far.
    #[must_use]
    pub fn rounds(&self) -> u64 {
        self.round
    }

    /// Rounds a message takes from one subnet's stream to another's induction (one way).
    #[must_use]
    pub fn cross_subnet_latency_rounds(&self) -> u64 {
        self.config.latency_rounds
    }

    /// The instruction budgets in force.
    #[must_use]
    pub fn instruction_limits(&self) -> InstructionLimits {
        self.config.limits
    }

    /// Changes the instruction budgets from the next execution on (a test tool, e.g. to
    /// make one upgrade run out of instructions part-way and retry it with the IC's).
    pub fn set_instruction_limits(&mut self, limits: InstructionLimits) {
        self.config.limits = limits;
    }
}
