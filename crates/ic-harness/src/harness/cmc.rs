//! The cycles minting canister at its mainnet principal (`rkp4c-7iaaa-aaaaa-aaaca-cai`),
//! handled natively like the management canister, with mainnet's candid (`cmc-types`).
//!
//! Modelled after `rs/nns/cmc/src/main.rs`:
//! - `create_canister` uses the attached cycles. Fewer than `CREATE_CANISTER_MIN_CYCLES`,
//!   or both `subnet_type` and `subnet_selection` set: refused, everything refunded.
//!   Then the eligible subnets: `Subnet { s }` if `s` is a default or typed subnet;
//!   `Filter { Some(t) }` the subnets of type `t`; otherwise the default subnets. They are
//!   tried in a seeded random order; the first creation that succeeds takes all the
//!   cycles (the new canister gets them less the creation fee). If none is eligible or
//!   every creation fails, the CMC keeps `BAD_REQUEST_CYCLES_PENALTY` and refunds the rest.
//!   Either way the reply is `Ok`; failures are `Err(Refunded { .. })`.
//! - `get_default_subnets`, `get_subnet_types_to_subnets` and
//!   `get_principals_authorized_to_create_canisters_to_subnets` (always empty) as queries,
//!   for canisters and users.
//!
//! The CMC sits on no application subnet: calls to it and its answers take the
//! cross-subnet latency each way. `create_canister` also takes the CMC's own call to the
//! target subnet's management canister: the canister is created, and the CMC answers,
//! one cross-subnet round trip (2 × latency) after the request reached the CMC.

use candid::{Encode, Nat, Principal};
use cmc_types::{
    BAD_REQUEST_CYCLES_PENALTY, CMC_PRINCIPAL, CREATE_CANISTER_MIN_CYCLES, CanisterSettings,
    CreateCanisterArg, CreateCanisterError, CreateCanisterResult,
    PrincipalsAuthorizedToCreateCanistersToSubnetsResponse, SubnetSelection,
    SubnetTypesToSubnetsResponse,
};

use super::{Harness, Message, Request};
use crate::limits::MAX_CONTROLLERS;
use crate::types::{CanisterId, Reject, RejectCode, SubnetId};

/// The CMC's principal.
pub(crate) const CMC: Principal = CMC_PRINCIPAL;

fn encode_reply<T: candid::CandidType>(value: &T) -> Vec<u8> {
    Encode!(value).expect("CMC replies encode")
}

fn no_method(method: &str) -> Reject {
    Reject::new(
        RejectCode::CanisterError,
        format!("Error from Canister {CMC}: Canister has no update method '{method}'. (IC0536)"),
    )
}

impl Harness {
    /// The default subnets of the CMC: every plain application subnet.
    #[must_use]
    pub fn default_subnets(&self) -> Vec<SubnetId> {
        self.subnets
            .iter()
            .filter(|s| !self.subnet_types.contains_key(s))
            .copied()
            .collect()
    }

    /// The CMC's subnet types, each with its subnets (sorted by type).
    #[must_use]
    pub fn subnet_types_to_subnets(&self) -> Vec<(String, Vec<SubnetId>)> {
        let mut map: std::collections::BTreeMap<String, Vec<SubnetId>> = Default::default();
        for subnet in &self.subnets {
            if let Some(t) = self.subnet_types.get(subnet) {
                map.entry(t.clone()).or_default().push(*subnet);
            }
        }
        map.into_iter().collect()
    }

    /// The answer of a CMC query method, or `None` if `method` is not one.
    pub(crate) fn cmc_query(&self, method: &str) -> Option<Vec<u8>> {
        Some(match method {
            "get_default_subnets" => encode_reply(&self.default_subnets()),
            "get_subnet_types_to_subnets" => encode_reply(&SubnetTypesToSubnetsResponse {
                data: self.subnet_types_to_subnets(),
            }),
            "get_principals_authorized_to_create_canisters_to_subnets" => {
                encode_reply(&PrincipalsAuthorizedToCreateCanistersToSubnetsResponse::default())
            }
            _ => return None,
        })
    }

    /// Answers every request delivered to the CMC. True if any was handled.
    pub(crate) fn process_cmc_queue(&mut self) -> bool {
        let round = self.round;
        let hop = 2 * self.config.latency_rounds;
        let messages: Vec<_> = self
            .inputs
            .get_mut(&CMC)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default();
        let mut progressed = !messages.is_empty();
        let mut ready = Vec::new();
        for msg in messages {
            let Message::Request(req) = msg else { continue };
            if req.method == "create_canister" {
                // The CMC calls the target subnet's management canister and awaits its answer.
                self.cmc_waiting.push((round + hop, req));
            } else {
                ready.push(req);
            }
        }
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.cmc_waiting)
            .into_iter()
            .partition(|(at, _)| *at <= round);
        self.cmc_waiting = waiting;
        progressed |= !due.is_empty();
        ready.extend(due.into_iter().map(|(_, req)| req));
        for req in ready {
            let (result, refund) = self.handle_cmc(&req);
            self.current_sender = CMC;
            self.respond(&req.origin, result, refund);
        }
        progressed
    }

    /// One CMC request: the result and the cycles refunded with it.
    fn handle_cmc(&mut self, req: &Request) -> (Result<Vec<u8>, Reject>, u128) {
        if let Some(reply) = self.cmc_query(&req.method) {
            return (Ok(reply), req.cycles);
        }
        if req.method != "create_canister" {
            return (Err(no_method(&req.method)), req.cycles);
        }
        let arg = match candid::decode_one::<CreateCanisterArg>(&req.arg) {
            Ok(arg) => arg,
            Err(e) => {
                let msg = format!(
                    "Error from Canister {CMC}: Canister called `ic0.trap` with message: 'failed to decode call arguments: {e}'. (IC0503)"
                );
                return (Err(Reject::new(RejectCode::CanisterError, msg)), req.cycles);
            }
        };
        let (result, refund) = self.cmc_create_canister(req.sender, arg, req.cycles);
        (Ok(encode_reply::<CreateCanisterResult>(&result)), refund)
    }

    fn cmc_create_canister(
        &mut self,
        caller: Principal,
        arg: CreateCanisterArg,
        cycles: u128,
    ) -> (CreateCanisterResult, u128) {
        let refunded = |amount: u128, create_error: String| {
            (
                Err(CreateCanisterError::Refunded {
                    refund_amount: Nat::from(amount),
                    create_error,
                }),
                amount,
            )
        };
        if cycles < CREATE_CANISTER_MIN_CYCLES {
            return refunded(cycles, "Insufficient cycles attached.".into());
        }
        let selection = match (arg.subnet_type, arg.subnet_selection) {
            (Some(_), Some(_)) => {
                return refunded(
                    cycles,
                    "Cannot specify subnet_type and subnet_selection at the same time.".into(),
                );
            }
            (Some(t), None) => Some(SubnetSelection::Filter(cmc_types::SubnetFilter {
                subnet_type: Some(t),
            })),
            (None, selection) => selection,
        };
        match self.cmc_place(caller, selection, arg.settings, cycles) {
            Ok(id) => (Ok(id), 0),
            Err(create_error) => {
                let refund = cycles.saturating_sub(BAD_REQUEST_CYCLES_PENALTY);
                self.log_event(
                    None,
                    format!("CMC: create_canister for {caller} failed: {create_error}"),
                );
                refunded(refund, create_error)
            }
        }
    }

    /// Picks the eligible subnets, then creates the canister on the first (in seeded
    /// random order) where creation succeeds.
    fn cmc_place(
        &mut self,
        caller: Principal,
        selection: Option<SubnetSelection>,
        settings: Option<CanisterSettings>,
        cycles: u128,
    ) -> Result<CanisterId, String> {
        let mut subnets = match selection {
            Some(SubnetSelection::Subnet { subnet }) => {
                if self.subnets.contains(&subnet)
                    && (self.default_subnets().contains(&subnet)
                        || self.subnet_types.contains_key(&subnet))
                {
                    vec![subnet]
                } else {
                    return Err(format!(
                        "Subnet {subnet} does not exist or {caller} is not authorized to deploy to that subnet."
                    ));
                }
            }
            Some(SubnetSelection::Filter(cmc_types::SubnetFilter {
                subnet_type: Some(t),
            })) => {
                let typed: Vec<SubnetId> = self
                    .subnet_types_to_subnets()
                    .into_iter()
                    .find(|(name, _)| *name == t)
                    .map(|(_, s)| s)
                    .ok_or_else(|| format!("Provided subnet type {t} does not exist"))?;
                typed
            }
            Some(SubnetSelection::Filter(_)) | None => self.default_subnets(),
        };
        if subnets.is_empty() {
            return Err("No subnets in which to create a canister.".into());
        }
        for i in (1..subnets.len()).rev() {
            let j = (self.next_random() % (i as u64 + 1)) as usize;
            subnets.swap(i, j);
        }
        let settings = settings.unwrap_or_default();
        let controllers = settings.controllers.clone().unwrap_or_else(|| vec![caller]);
        let mut last_err = String::from("Unknown problem attempting to create a canister.");
        for subnet in subnets {
            let fee = self.fees_on(subnet).creation();
            if controllers.len() > MAX_CONTROLLERS {
                last_err = format!(
                    "Creating canister in subnet {subnet} failed with code 4: at most {MAX_CONTROLLERS} controllers"
                );
                continue;
            }
            if cycles < fee {
                last_err = format!(
                    "Creating canister in subnet {subnet} failed with code 4: Insufficient cycles attached: {cycles} attached, the canister creation fee is {fee}."
                );
                continue;
            }
            let id = self.new_canister(subnet, controllers.clone(), cycles - fee);
            let c = self.canisters.get_mut(&id).expect("just created");
            if let Some(t) = settings
                .freezing_threshold
                .as_ref()
                .and_then(|n| u64::try_from(&n.0).ok())
            {
                c.freezing_threshold = t;
            }
            if let Some(creator) = self.canisters.get_mut(&caller) {
                creator.metrics.cycles_burned.creation += fee;
            }
            self.log_event(
                None,
                format!("CMC: created canister {id} on subnet {subnet} for {caller}"),
            );
            return Ok(id);
        }
        Err(last_err)
    }
}
