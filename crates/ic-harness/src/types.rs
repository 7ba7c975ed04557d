//! Identifiers, reject codes and the error types of the harness's public API.

use std::fmt;

use candid::Principal;

/// A canister's principal.
pub type CanisterId = Principal;
/// A subnet's principal.
pub type SubnetId = Principal;

/// The IC's reject codes, exactly as the interface spec numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectCode {
    /// 1: fatal system error (subnet oversubscribed, too many canisters).
    SysFatal = 1,
    /// 2: transient system error (frozen callee, full queue, `call_perform` failure).
    SysTransient = 2,
    /// 3: the destination does not exist.
    DestinationInvalid = 3,
    /// 4: the canister rejected the message explicitly (`msg_reject`).
    CanisterReject = 4,
    /// 5: the canister trapped, did not reply, or a management check failed.
    CanisterError = 5,
    /// 6: a bounded-wait call's outcome is unknown (deadline expired or response dropped).
    SysUnknown = 6,
}

impl RejectCode {
    /// The numeric code as seen by `ic0.msg_reject_code`.
    #[must_use]
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// Parses a numeric reject code.
    #[must_use]
    pub fn from_u32(code: u32) -> Option<Self> {
        Some(match code {
            1 => Self::SysFatal,
            2 => Self::SysTransient,
            3 => Self::DestinationInvalid,
            4 => Self::CanisterReject,
            5 => Self::CanisterError,
            6 => Self::SysUnknown,
            _ => return None,
        })
    }
}

/// A rejected call: the code and the human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Why the call was rejected.
    pub code: RejectCode,
    /// The message, in the IC's wording where the harness knows it (with `ICxxxx` codes).
    pub message: String,
}

impl Reject {
    /// Builds a reject.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reject {:?} ({}): {}",
            self.code, self.code as u32, self.message
        )
    }
}

impl std::error::Error for Reject {}

/// Error of the candid helpers: the call was rejected, or its reply did not decode.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The call was rejected.
    #[error("{0}")]
    Reject(Reject),
    /// Encoding the arguments or decoding the reply failed.
    #[error("candid: {0}")]
    Candid(String),
}

impl CallError {
    /// The reject, if the call was rejected.
    #[must_use]
    pub fn reject(&self) -> Option<&Reject> {
        match self {
            Self::Reject(r) => Some(r),
            Self::Candid(_) => None,
        }
    }
}

impl From<Reject> for CallError {
    fn from(r: Reject) -> Self {
        Self::Reject(r)
    }
}

/// Identifies a submitted ingress message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

/// Failures of the harness itself (not of the canisters it runs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HarnessError {
    /// `run_until_idle` gave up: work was still pending after the round bound.
    #[error("not idle after {rounds} rounds (livelock?): {busy}")]
    Livelock {
        /// Rounds executed before giving up.
        rounds: u64,
        /// What was still pending.
        busy: String,
    },
}

/// Instruction budgets, in wasm instructions (fuel units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstructionLimits {
    /// Per update, timer, callback or cleanup execution (IC: 40B).
    pub update: u64,
    /// Per query execution (IC: 5B).
    pub query: u64,
    /// Per install or upgrade, across pre_upgrade, start and post_upgrade (IC: 300B).
    pub install: u64,
    /// One DTS slice (2B; also the `install_code` slice): an execution longer than this
    /// pauses, taking one slice per round, and its effects appear after its last slice.
    pub round_per_canister: u64,
    /// Per `canister_inspect_message` (IC: 200M).
    pub inspect_message: u64,
}

impl Default for InstructionLimits {
    fn default() -> Self {
        Self {
            update: 40_000_000_000,
            query: 5_000_000_000,
            install: 300_000_000_000,
            round_per_canister: 2_000_000_000,
            inspect_message: 200_000_000,
        }
    }
}

/// Index of the first canister the harness creates. Indices below it form the NNS
/// subnet's range on mainnet, where system canisters live at fixed ids (governance 1,
/// ledger 2, the cycles minting canister 4...); starting past it means no test canister
/// can ever take a system canister's principal.
pub const FIRST_APP_CANISTER_INDEX: u64 = 1 << 20;

/// The id of the `index`-th canister, in the IC's layout: an 8-byte big-endian counter, then `01 01`.
#[must_use]
pub fn canister_id_from_index(index: u64) -> CanisterId {
    let mut bytes = index.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[1, 1]);
    Principal::from_slice(&bytes)
}

/// A deterministic subnet id for the `index`-th subnet (a self-authenticating principal).
#[must_use]
pub fn subnet_id_from_index(index: u64) -> SubnetId {
    Principal::self_authenticating(format!("ic-harness subnet {index}"))
}
