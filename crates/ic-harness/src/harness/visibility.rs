//! The `snapshot_visibility` canister setting (interface spec 0.57.0): who may read a
//! canister's snapshots (`list_canister_snapshots`, `read_canister_snapshot_metadata`,
//! `read_canister_snapshot_data`). Controllers always may; `public` opens reading to every
//! caller; `allowed_viewers` to the listed principals (at most [`MAX_SNAPSHOT_VIEWERS`]).
//! Every other snapshot method (take, load, delete, upload) stays controllers-only.
//!
//! The harness speaks ic-management-canister-types 0.7, whose settings records predate the
//! field, so the setting is read from the raw candid argument of `update_settings` and
//! `create_canister` with the records below (candid record subtyping skips every other
//! field; an argument without the field leaves the setting unchanged).

use candid::{CandidType, Decode, Principal};
use serde::Deserialize;

use super::Harness;
use super::management::{not_found, reject};
use crate::canister::Canister;
use crate::types::{CanisterId, Reject, RejectCode};

/// Most principals an `allowed_viewers` list may hold (as for `log_visibility`).
pub const MAX_SNAPSHOT_VIEWERS: usize = 10;

/// Who may read a canister's snapshots besides its controllers.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub enum SnapshotVisibility {
    /// Controllers only (the default).
    #[default]
    #[serde(rename = "controllers")]
    Controllers,
    /// Anyone.
    #[serde(rename = "public")]
    Public,
    /// These principals, and the controllers.
    #[serde(rename = "allowed_viewers")]
    AllowedViewers(Vec<Principal>),
}

impl SnapshotVisibility {
    fn allows(&self, sender: &Principal) -> bool {
        match self {
            Self::Controllers => false,
            Self::Public => true,
            Self::AllowedViewers(viewers) => viewers.contains(sender),
        }
    }
}

#[derive(CandidType, Deserialize)]
struct SettingsField {
    snapshot_visibility: Option<SnapshotVisibility>,
}

#[derive(CandidType, Deserialize)]
struct UpdateSettingsField {
    settings: SettingsField,
}

#[derive(CandidType, Deserialize)]
struct CreateCanisterField {
    settings: Option<SettingsField>,
}

/// The `snapshot_visibility` of an `update_settings` (`create = false`) or
/// `create_canister` argument, checked; `Ok(None)` when the argument does not set it.
pub(super) fn requested(arg: &[u8], create: bool) -> Result<Option<SnapshotVisibility>, Reject> {
    let visibility = if create {
        Decode!(arg, CreateCanisterField)
            .ok()
            .and_then(|a| a.settings)
            .and_then(|s| s.snapshot_visibility)
    } else {
        Decode!(arg, UpdateSettingsField)
            .ok()
            .and_then(|a| a.settings.snapshot_visibility)
    };
    if let Some(SnapshotVisibility::AllowedViewers(viewers)) = &visibility
        && viewers.len() > MAX_SNAPSHOT_VIEWERS
    {
        return Err(reject(
            RejectCode::CanisterReject,
            format!(
                "Invalid settings: 'snapshot_visibility' has {} allowed viewers, the maximum is {MAX_SNAPSHOT_VIEWERS}.",
                viewers.len()
            ),
        ));
    }
    Ok(visibility)
}

impl Harness {
    /// The canister `id` if `sender` may read its snapshots: a controller, or a caller the
    /// canister's `snapshot_visibility` admits.
    pub(super) fn snapshot_reader(
        &self,
        sender: Principal,
        id: CanisterId,
        method: &str,
    ) -> Result<&Canister, Reject> {
        let c = self.canisters.get(&id).ok_or_else(|| not_found(&id))?;
        if c.snapshot_visibility.allows(&sender) {
            return Ok(c);
        }
        self.controlled(sender, id, method)
    }
}
