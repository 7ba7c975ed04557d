//! The management canister (`aaaaa-aa`): lifecycle, settings, status, cycles, randomness.
//!
//! Invariants: every method that names a canister checks that the caller controls it
//! (IC0512 otherwise, `canister_status` also allows the canister itself); `install_code`
//! is atomic: on any failure the canister's code, heap and stable memory are unchanged.

use candid::{Decode, Encode, Principal};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterInstallMode, CanisterSettings, CreateCanisterArgs,
    InstallChunkedCodeArgs, InstallCodeArgs, UpdateSettingsArgs,
};

use super::{Harness, Request};
use crate::canister::{Canister, Origin, Status};
use crate::execution::{Entry, InstalledCode, StableTxn};
use crate::limits::MAX_CONTROLLERS;
use crate::runtime::{self, CompiledModule};
use crate::stable_memory::StableMemory;
use crate::system_api::{ApiContext, ExecState};
use crate::types::{CanisterId, Reject, RejectCode, canister_id_from_index};

/// The canister a management call acts on, used to route it to that canister's subnet.
pub(crate) fn effective_canister(method: &str, arg: &[u8]) -> Option<Principal> {
    match method {
        "create_canister" | "raw_rand" => None,
        "install_chunked_code" => Decode!(arg, InstallChunkedCodeArgs)
            .ok()
            .map(|r| r.target_canister),
        _ => Decode!(arg, CanisterIdRecord).ok().map(|r| r.canister_id),
    }
}

pub(super) fn reject(code: RejectCode, msg: impl Into<String>) -> Reject {
    Reject::new(code, msg)
}

pub(super) fn not_found(id: &CanisterId) -> Reject {
    reject(
        RejectCode::DestinationInvalid,
        format!("Canister {id} not found. (IC0301)"),
    )
}

pub(super) fn decode<T: candid::CandidType + for<'de> serde::Deserialize<'de>>(
    method: &str,
    arg: &[u8],
) -> Result<T, Reject> {
    Decode!(arg, T).map_err(|e| {
        reject(
            RejectCode::CanisterReject,
            format!("Error decoding candid for management method {method}: {e}"),
        )
    })
}

pub(super) fn encode<T: candid::CandidType>(value: &T) -> Vec<u8> {
    Encode!(value).expect("management replies encode")
}

impl Harness {
    /// Answers every management request that is ready. True if any was handled.
    pub(crate) fn process_management_queue(&mut self) -> bool {
        let key = Principal::management_canister();
        let Some(queue) = self.inputs.get_mut(&key) else {
            return false;
        };
        let messages: Vec<_> = queue.drain(..).collect();
        let mut progressed = false;
        for msg in messages {
            if self
                .destination_subnet(&msg)
                .is_some_and(|s| self.is_subnet_offline(s))
            {
                // Its target's subnet is offline: the request waits.
                self.inputs.entry(key).or_default().push_back(msg);
                continue;
            }
            if self.waits_for_paused_execution(&msg) {
                self.inputs.entry(key).or_default().push_back(msg);
                continue;
            }
            progressed = true;
            let super::Message::Request(req) = msg else {
                continue;
            };
            let target = effective_canister(&req.method, &req.arg);
            self.current_sender = target.unwrap_or(req.sender);
            let sliced = matches!(req.method.as_str(), "install_code" | "install_chunked_code");
            let instructions_before = self.instructions_of(target);
            let outer = if sliced {
                self.capture.replace(Vec::new())
            } else {
                None
            };
            if let Some((result, refund)) = self.handle_management(&req) {
                self.current_sender = target.unwrap_or(req.sender);
                self.respond(&req.origin, result, refund);
            }
            if sliced {
                let effects = std::mem::replace(&mut self.capture, outer).unwrap_or_default();
                let used = self
                    .instructions_of(target)
                    .saturating_sub(instructions_before);
                self.pause_install(target, used, effects);
            }
        }
        progressed
    }

    /// Handles one management request; `None` when the answer comes later (stop_canister).
    fn handle_management(&mut self, req: &Request) -> Option<(Result<Vec<u8>, Reject>, u128)> {
        let from_canister = self.canisters.contains_key(&req.sender);
        let sender = req.sender;
        let arg = &req.arg;
        let refund_all = |r: Result<Vec<u8>, Reject>| Some((r, req.cycles));
        match req.method.as_str() {
            "create_canister" if from_canister => {
                Some(match self.mgmt_create_canister(sender, arg, req.cycles) {
                    Ok(bytes) => (Ok(bytes), 0),
                    Err(r) => (Err(r), req.cycles),
                })
            }
            "deposit_cycles" if from_canister => {
                Some(match decode::<CanisterIdRecord>("deposit_cycles", arg) {
                    Ok(rec) => match self.canisters.get_mut(&rec.canister_id) {
                        Some(c) => {
                            c.cycles += req.cycles;
                            (Ok(encode(&())), 0)
                        }
                        None => (Err(not_found(&rec.canister_id)), req.cycles),
                    },
                    Err(r) => (Err(r), req.cycles),
                })
            }
            "raw_rand" if from_canister => {
                let bytes: Vec<u8> = (0..4)
                    .flat_map(|_| self.next_random().to_le_bytes())
                    .collect();
                refund_all(Ok(encode(&bytes)))
            }
            "create_canister" | "deposit_cycles" | "raw_rand" => refund_all(Err(reject(
                RejectCode::CanisterReject,
                format!("Only canisters can call ic00 method {}", req.method),
            ))),
            "install_code" => refund_all(
                decode::<InstallCodeArgs>("install_code", arg)
                    .and_then(|a| self.install_code(sender, a))
                    .map(|()| encode(&())),
            ),
            "uninstall_code" => refund_all(
                decode::<CanisterIdRecord>("uninstall_code", arg)
                    .and_then(|a| self.uninstall_code(sender, a.canister_id))
                    .map(|()| encode(&())),
            ),
            "update_settings" => refund_all(
                decode::<UpdateSettingsArgs>("update_settings", arg)
                    .and_then(|a| {
                        let visibility = super::visibility::requested(arg, false)?;
                        self.update_settings(sender, a.canister_id, a.settings)?;
                        if let Some(v) = visibility {
                            self.canisters
                                .get_mut(&a.canister_id)
                                .expect("updated")
                                .snapshot_visibility = v;
                        }
                        Ok(())
                    })
                    .map(|()| encode(&())),
            ),
            "canister_status" => refund_all(
                decode::<CanisterIdRecord>("canister_status", arg)
                    .and_then(|a| self.status_of(sender, a.canister_id))
                    .map(|s| encode(&s)),
            ),
            "start_canister" => refund_all(
                decode::<CanisterIdRecord>("start_canister", arg)
                    .and_then(|a| self.start(sender, a.canister_id))
                    .map(|()| encode(&())),
            ),
            "delete_canister" => refund_all(
                decode::<CanisterIdRecord>("delete_canister", arg)
                    .and_then(|a| self.delete(sender, a.canister_id))
                    .map(|()| encode(&())),
            ),
            "stop_canister" => match decode::<CanisterIdRecord>("stop_canister", arg)
                .and_then(|a| self.stop(sender, a.canister_id, req.origin.clone()))
            {
                Ok(true) => refund_all(Ok(encode(&()))),
                Ok(false) => None,
                Err(r) => refund_all(Err(r)),
            },
            other => {
                let handled = match self.handle_snapshot_method(sender, other, arg) {
                    Some(result) => Some(result),
                    None => self.handle_chunk_method(sender, other, arg),
                };
                refund_all(handled.unwrap_or_else(|| {
                    Err(reject(
                        RejectCode::CanisterReject,
                        format!("Management canister has no method '{other}'"),
                    ))
                }))
            }
        }
    }

    /// The canister `id` if `sender` controls it.
    pub(super) fn controlled(
        &self,
        sender: Principal,
        id: CanisterId,
        method: &str,
    ) -> Result<&Canister, Reject> {
        let c = self.canisters.get(&id).ok_or_else(|| not_found(&id))?;
        if c.is_controller(&sender) {
            Ok(c)
        } else {
            Err(reject(
                RejectCode::CanisterError,
                format!(
                    "Only controllers of canister {id} can call ic00 method {method}. Sender {sender} is not a controller. (IC0512)"
                ),
            ))
        }
    }

    /// Creates a canister on `subnet` with `controllers` and `cycles`.
    pub(crate) fn new_canister(
        &mut self,
        subnet: Principal,
        controllers: Vec<Principal>,
        cycles: u128,
    ) -> CanisterId {
        let id = canister_id_from_index(self.next_canister_index);
        self.next_canister_index += 1;
        let mut canister = Canister::new(id, subnet, controllers, cycles);
        canister.stable = StableMemory::new_in(&self.config.stable_storage);
        canister.storage_since = self.time;
        self.canisters.insert(id, canister);
        std::sync::Arc::make_mut(&mut self.routing).insert(id, subnet);
        id
    }

    fn mgmt_create_canister(
        &mut self,
        sender: Principal,
        arg: &[u8],
        cycles: u128,
    ) -> Result<Vec<u8>, Reject> {
        let args: CreateCanisterArgs = decode("create_canister", arg)?;
        let visibility = super::visibility::requested(arg, true)?;
        let subnet = self.routing[&sender];
        let fee = self.fees_on(subnet).creation();
        if cycles < fee {
            return Err(reject(
                RejectCode::CanisterReject,
                format!(
                    "Insufficient cycles attached: {cycles} attached, the canister creation fee is {fee}."
                ),
            ));
        }
        let controllers = controllers_of(args.settings.as_ref(), sender)?;
        let id = self.new_canister(subnet, controllers, cycles - fee);
        if let Some(creator) = self.canisters.get_mut(&sender) {
            creator.metrics.cycles_burned.creation += fee;
        }
        if let Some(settings) = args.settings {
            self.apply_settings(id, &settings);
        }
        if let Some(v) = visibility {
            self.canisters
                .get_mut(&id)
                .expect("created")
                .snapshot_visibility = v;
        }
        Ok(encode(&CanisterIdRecord { canister_id: id }))
    }

    /// `update_settings`, controllers only.
    pub(crate) fn update_settings(
        &mut self,
        sender: Principal,
        id: CanisterId,
        settings: CanisterSettings,
    ) -> Result<(), Reject> {
        self.controlled(sender, id, "update_settings")?;
        if let Some(cs) = &settings.controllers
            && cs.len() > MAX_CONTROLLERS
        {
            return Err(reject(
                RejectCode::CanisterReject,
                format!("at most {MAX_CONTROLLERS} controllers"),
            ));
        }
        self.apply_settings(id, &settings);
        self.canisters.get_mut(&id).expect("checked").version += 1;
        Ok(())
    }

    fn apply_settings(&mut self, id: CanisterId, settings: &CanisterSettings) {
        let c = self.canisters.get_mut(&id).expect("exists");
        if let Some(cs) = &settings.controllers {
            c.controllers.clone_from(cs);
        }
        if let Some(t) = settings
            .freezing_threshold
            .as_ref()
            .and_then(|n| u64::try_from(&n.0).ok())
        {
            c.freezing_threshold = t;
        }
    }

    /// `install_code` in any mode, controllers only, atomic. The target pays the base
    /// execution fee and the instructions of every step, whether the install succeeds or not.
    pub(crate) fn install_code(
        &mut self,
        sender: Principal,
        args: InstallCodeArgs,
    ) -> Result<(), Reject> {
        let id = args.canister_id;
        let before = self.canisters.get(&id).map(|c| c.metrics.instructions);
        let wasm = args.wasm_module.clone();
        let result = self.install_code_steps(sender, args);
        let fees = self.canisters.get(&id).map(|c| self.fees_of(c));
        if let (Some(before), Some(fees), Some(c)) = (before, fees, self.canisters.get_mut(&id)) {
            let used = c.metrics.instructions - before;
            if used > 0 || result.is_ok() {
                super::cycles::charge_execution(c, &fees, used, true);
            }
            if result.is_ok() {
                c.wasm_module = wasm;
            }
        }
        result
    }

    fn install_code_steps(
        &mut self,
        sender: Principal,
        args: InstallCodeArgs,
    ) -> Result<(), Reject> {
        let id = args.canister_id;
        let has_code = self.controlled(sender, id, "install_code")?.code.is_some();
        let compiled = runtime::compile(&args.wasm_module).map_err(|e| {
            reject(
                RejectCode::CanisterError,
                format!(
                    "Error from Canister {id}: Canister's Wasm module is not valid: {e}. (IC0505)"
                ),
            )
        })?;
        match args.mode {
            CanisterInstallMode::Install if has_code => Err(reject(
                RejectCode::CanisterError,
                format!(
                    "Canister {id} cannot be installed because the canister is not empty. Try installing with mode='reinstall' instead. (IC0514)"
                ),
            )),
            CanisterInstallMode::Install | CanisterInstallMode::Reinstall => {
                self.install_fresh(id, compiled, args.arg, sender)
            }
            CanisterInstallMode::Upgrade(flags) => {
                if !has_code {
                    return Err(reject(
                        RejectCode::CanisterError,
                        format!(
                            "Error from Canister {id}: Canister {id} is empty: it contains no Wasm module to upgrade. (IC0537)"
                        ),
                    ));
                }
                let flags = flags.unwrap_or_default();
                self.upgrade(
                    id,
                    compiled,
                    args.arg,
                    sender,
                    flags.skip_pre_upgrade == Some(true),
                    flags.wasm_memory_persistence,
                )
            }
        }
    }

    /// Runs `export` of `lc.code`, if the module has it, within the install budget left.
    /// The caller holds the stable-memory transaction of the whole install or upgrade.
    pub(super) fn lifecycle_step(
        &mut self,
        id: CanisterId,
        lc: &mut Lifecycle<'_>,
        (export, context): (&str, ApiContext),
        arg: Vec<u8>,
        persist: bool,
    ) -> Result<Option<ExecState>, Reject> {
        if !lc.code.has_export(export) {
            return Ok(None);
        }
        let mut state = self.exec_state(&self.canisters[&id], context, lc.caller, arg, None);
        state.instruction_limit = lc.budget;
        let entry = Entry::Export(export.to_string());
        let outcome = lc
            .code
            .execute(lc.stable, &entry, state, persist, StableTxn::Outer);
        let c = self.canisters.get_mut(&id).expect("exists");
        c.record_execution(outcome.instructions, outcome.logs, true);
        lc.budget = lc.budget.saturating_sub(outcome.instructions);
        outcome
            .result
            .map(Some)
            .map_err(|t| reject(RejectCode::CanisterError, t.reject_message(&id)))
    }

    /// `(start)` then `canister_init` on a fresh instance; the stable memory is new.
    fn install_fresh(
        &mut self,
        id: CanisterId,
        compiled: CompiledModule,
        arg: Vec<u8>,
        sender: Principal,
    ) -> Result<(), Reject> {
        let mut code = instantiate(id, compiled)?;
        let mut stable = StableMemory::new_in(&self.config.stable_storage);
        stable.begin();
        let mut lc = Lifecycle {
            code: &mut code,
            stable: &mut stable,
            caller: sender,
            budget: self.config.limits.install,
        };
        self.lifecycle_step(id, &mut lc, START, Vec::new(), true)?;
        let init =
            self.lifecycle_step(id, &mut lc, ("canister_init", ApiContext::Init), arg, true)?;
        stable.commit();
        self.commit_install(id, code, stable, init);
        Ok(())
    }

    /// Makes a successful install or upgrade visible: new code and stable memory, the
    /// timer only as init/post_upgrade set it, the version bumped.
    pub(super) fn commit_install(
        &mut self,
        id: CanisterId,
        code: InstalledCode,
        stable: StableMemory,
        last: Option<ExecState>,
    ) {
        let c = self.canisters.get_mut(&id).expect("exists");
        c.code = Some(code);
        c.stable = stable;
        c.timer = last.as_ref().and_then(|s| s.new_timer).unwrap_or(0);
        c.version += 1;
        if let Some(s) = last {
            c.cycles = s.balance;
        }
    }

    pub(super) fn uninstall_code(
        &mut self,
        sender: Principal,
        id: CanisterId,
    ) -> Result<(), Reject> {
        self.controlled(sender, id, "uninstall_code")?;
        let c = self.canisters.get_mut(&id).expect("checked");
        c.code = None;
        c.wasm_module = Vec::new();
        c.stable = c.stable.empty_like();
        c.timer = 0;
        c.version += 1;
        let mut answers = Vec::new();
        for ctx in c.contexts.values_mut() {
            ctx.deleted = true;
            if ctx.needs_response() {
                ctx.responded = true;
                answers.push((
                    ctx.origin.clone(),
                    std::mem::take(&mut ctx.cycles_available),
                ));
            }
        }
        let msg = format!("Canister {id} has been uninstalled.");
        for (origin, refund) in answers {
            self.respond(
                &origin,
                Err(reject(RejectCode::CanisterReject, msg.clone())),
                refund,
            );
        }
        Ok(())
    }

    /// `start_canister`: pending stop calls of a stopping canister are rejected
    /// (`CanisterStoppingCancelled`, IC0511).
    pub(crate) fn start(&mut self, sender: Principal, id: CanisterId) -> Result<(), Reject> {
        self.controlled(sender, id, "start_canister")?;
        let c = self.canisters.get_mut(&id).expect("checked");
        let previous = std::mem::replace(&mut c.status, Status::Running);
        c.version += 1;
        if let Status::Stopping(waiters) = previous {
            for waiter in waiters {
                let msg = format!("Canister {id}'s stop request was cancelled. (IC0511)");
                self.respond(
                    &waiter.origin,
                    Err(reject(RejectCode::CanisterError, msg)),
                    0,
                );
            }
        }
        Ok(())
    }

    /// `stop_canister`: true if already stopped (answer now), false if the answer comes
    /// when the last call context closes, or when the request times out
    /// (`STOP_CANISTER_TIMEOUT_SECONDS`, see `time_out_stop_requests`).
    pub(crate) fn stop(
        &mut self,
        sender: Principal,
        id: CanisterId,
        origin: Origin,
    ) -> Result<bool, Reject> {
        self.controlled(sender, id, "stop_canister")?;
        let request = crate::canister::StopRequest {
            origin,
            expires_at: self.time + crate::limits::STOP_CANISTER_TIMEOUT_SECONDS * 1_000_000_000,
        };
        let c = self.canisters.get_mut(&id).expect("checked");
        match &mut c.status {
            Status::Stopped => Ok(true),
            Status::Stopping(waiters) => {
                waiters.push(request);
                Ok(false)
            }
            Status::Running => {
                c.status = Status::Stopping(vec![request]);
                Ok(false)
            }
        }
    }

    /// `delete_canister`: controllers only, and only once stopped.
    pub(crate) fn delete(&mut self, sender: Principal, id: CanisterId) -> Result<(), Reject> {
        let c = self.controlled(sender, id, "delete_canister")?;
        if c.status != Status::Stopped {
            return Err(reject(
                RejectCode::CanisterError,
                format!("Canister {id} must be stopped before it is deleted. (IC0510)"),
            ));
        }
        self.canisters.remove(&id);
        std::sync::Arc::make_mut(&mut self.routing).remove(&id);
        self.inputs.remove(&id);
        Ok(())
    }
}

/// The install or upgrade in progress: the instance being run, the stable memory under
/// its transaction, the requester and the instructions left of the install budget.
pub(super) struct Lifecycle<'a> {
    pub(super) code: &'a mut InstalledCode,
    pub(super) stable: &'a mut StableMemory,
    pub(super) caller: Principal,
    pub(super) budget: u64,
}

/// The wasm start function, run before init and post_upgrade.
pub(super) const START: (&str, ApiContext) = ("canister_start", ApiContext::Start);

pub(super) fn instantiate(
    id: CanisterId,
    compiled: CompiledModule,
) -> Result<InstalledCode, Reject> {
    InstalledCode::instantiate(compiled).map_err(|e| {
        reject(
            RejectCode::CanisterError,
            format!("Error from Canister {id}: {e}. (IC0505)"),
        )
    })
}

/// The controllers of a new canister: from the settings, else the creator.
fn controllers_of(
    settings: Option<&CanisterSettings>,
    creator: Principal,
) -> Result<Vec<Principal>, Reject> {
    let controllers = settings
        .and_then(|s| s.controllers.clone())
        .unwrap_or_else(|| vec![creator]);
    if controllers.len() > MAX_CONTROLLERS {
        return Err(reject(
            RejectCode::CanisterReject,
            format!("at most {MAX_CONTROLLERS} controllers"),
        ));
    }
    Ok(controllers)
}
