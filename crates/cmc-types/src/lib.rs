//! Candid types of the cycles minting canister (CMC) for creating canisters with cycles,
//! exactly as mainnet's `rs/nns/cmc/cmc.did` declares them, so a factory canister
//! written against these types works unchanged against the real CMC and against
//! `ic-harness`'s built-in one.
//!
//! The CMC lives at [`CMC_PRINCIPAL_TEXT`] (`rkp4c-7iaaa-aaaaa-aaaca-cai`). The methods
//! covered here:
//!
//! ```text
//! create_canister : (CreateCanisterArg) -> (CreateCanisterResult);
//! get_default_subnets : () -> (vec principal) query;
//! get_subnet_types_to_subnets : () -> (SubnetTypesToSubnetsResponse) query;
//! get_principals_authorized_to_create_canisters_to_subnets : ()
//!     -> (PrincipalsAuthorizedToCreateCanistersToSubnetsResponse) query;
//! ```
//!
//! `create_canister` uses the cycles attached to the call: on success all of them are
//! taken (the new canister gets them less the target subnet's creation fee); on failure
//! the reply is `Err(Refunded { refund_amount, .. })` and `refund_amount` cycles come back
//! as the call's refund (mainnet keeps a 100,000,000-cycle penalty when the creation
//! itself failed, nothing when the request was refused before any work).
//!
//! No dependency besides `candid` and `serde`: usable from canisters and hosts alike.

use candid::{CandidType, Nat, Principal};
use serde::{Deserialize, Serialize};

/// The CMC's principal on mainnet, in text form.
pub const CMC_PRINCIPAL_TEXT: &str = "rkp4c-7iaaa-aaaaa-aaaca-cai";

/// The CMC's principal on mainnet (`rkp4c-7iaaa-aaaaa-aaaca-cai`: canister index 4 of the NNS range).
pub const CMC_PRINCIPAL: Principal = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 4, 1, 1]);

/// Mainnet's `BAD_REQUEST_CYCLES_PENALTY`: kept by the CMC when the creation itself fails.
pub const BAD_REQUEST_CYCLES_PENALTY: u128 = 100_000_000;

/// Mainnet's `CREATE_CANISTER_MIN_CYCLES`: calls with fewer cycles attached are refused outright.
pub const CREATE_CANISTER_MIN_CYCLES: u128 = 100_000_000_000;

/// `log_visibility` as the CMC's candid declares it.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum LogVisibility {
    /// Only controllers may read the logs.
    #[serde(rename = "controllers")]
    Controllers,
    /// Anyone may read the logs.
    #[serde(rename = "public")]
    Public,
}

/// `environment_variable`.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentVariable {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// The CMC's `CanisterSettings` (every field optional; absent means the default).
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct CanisterSettings {
    /// Controllers; absent: the caller alone.
    pub controllers: Option<Vec<Principal>>,
    /// Compute allocation in percent.
    pub compute_allocation: Option<Nat>,
    /// Memory allocation in bytes.
    pub memory_allocation: Option<Nat>,
    /// Freezing threshold in seconds.
    pub freezing_threshold: Option<Nat>,
    /// Upper bound of reserved cycles.
    pub reserved_cycles_limit: Option<Nat>,
    /// Who may read the canister's logs.
    pub log_visibility: Option<LogVisibility>,
    /// Wasm heap limit in bytes.
    pub wasm_memory_limit: Option<Nat>,
    /// Low-wasm-memory hook threshold in bytes.
    pub wasm_memory_threshold: Option<Nat>,
    /// Environment variables.
    pub environment_variables: Option<Vec<EnvironmentVariable>>,
}

/// `SubnetFilter`: pick a random subnet with these properties.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct SubnetFilter {
    /// The subnet type (e.g. `"fiduciary"`); absent: the caller's default subnets.
    pub subnet_type: Option<String>,
}

/// `SubnetSelection`.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum SubnetSelection {
    /// A specific subnet.
    Subnet {
        /// The subnet's principal.
        subnet: Principal,
    },
    /// A random subnet that fulfils the filter.
    Filter(SubnetFilter),
}

/// `CreateCanisterArg`, the argument of `create_canister`.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateCanisterArg {
    /// Settings of the new canister; absent: the caller is its controller.
    pub settings: Option<CanisterSettings>,
    /// Deprecated: use `subnet_selection`. Must not be set together with it.
    pub subnet_type: Option<String>,
    /// Where to create the canister; absent: one of the caller's default subnets.
    pub subnet_selection: Option<SubnetSelection>,
}

/// `CreateCanisterError`.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum CreateCanisterError {
    /// Creation failed and `refund_amount` cycles went back to the caller.
    Refunded {
        /// Cycles returned with the reply.
        refund_amount: Nat,
        /// Why creation failed.
        create_error: String,
    },
}

/// `CreateCanisterResult`: `Ok` carries the new canister's principal.
pub type CreateCanisterResult = Result<Principal, CreateCanisterError>;

/// `SubnetTypesToSubnetsResponse`.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct SubnetTypesToSubnetsResponse {
    /// Each subnet type with its subnets.
    pub data: Vec<(String, Vec<Principal>)>,
}

/// `PrincipalsAuthorizedToCreateCanistersToSubnetsResponse`.
#[derive(CandidType, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct PrincipalsAuthorizedToCreateCanistersToSubnetsResponse {
    /// Each authorised principal with the subnets it may create canisters on.
    pub data: Vec<(Principal, Vec<Principal>)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use candid::{Decode, Encode};

    #[test]
    fn cmc_principal_matches_its_text() {
        assert_eq!(CMC_PRINCIPAL.to_text(), CMC_PRINCIPAL_TEXT);
    }

    #[test]
    fn result_round_trips_as_the_mainnet_variant() {
        let err: CreateCanisterResult = Err(CreateCanisterError::Refunded {
            refund_amount: Nat::from(5u8),
            create_error: "no".into(),
        });
        let bytes = Encode!(&err).unwrap();
        assert_eq!(Decode!(&bytes, CreateCanisterResult).unwrap(), err);
        // Candid's Result is `variant { Ok; Err }`, as in cmc.did.
        let ty = <CreateCanisterResult as CandidType>::ty().to_string();
        assert!(ty.contains("Ok") && ty.contains("Err"), "{ty}");
    }
}
