//! What the factory lets in: the `canister_inspect_message` filter of ingress calls.
//! Pure: no ic-cdk. (Arguments and replies are decoded within
//! `canvault_protocol::decode`'s quotas.)
//!
//! The filter only refuses what the method would surely refuse (an anonymous caller, a
//! non-admin calling an admin method, an argument far larger than the method takes), so
//! that such calls cost the factory nothing; the methods keep every check of their own.
//! It does not run for calls from canisters, which are checked by the methods alone.

use candid::Principal;
use canvault_factory_api::MAX_UPLOAD_CHUNK_BYTES;

/// Update methods only admins may call.
pub const ADMIN_METHODS: &[&str] = &[
    "begin_version_upload",
    "upload_version_chunk",
    "commit_version_upload",
    "abort_version_upload",
    "set_current_version",
    "delete_version",
    "set_config",
    "set_admins",
    "recover_deployment",
    "recover_fork_target",
    "start_fleet_upgrade",
    "run_fleet_batch",
    "cancel_fleet_upgrade",
];

/// Largest argument of `upload_version_chunk`: a chunk and its small record.
pub const MAX_CHUNK_ARG_BYTES: usize = MAX_UPLOAD_CHUNK_BYTES + 1024;

/// Largest argument of any other method (a `create_vault` naming 100 writers and 100
/// readers takes under 8 KiB).
pub const MAX_ARG_BYTES: usize = 64 * 1024;

/// Why an ingress call is refused before its method runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The anonymous principal holds no role anywhere in the factory.
    Anonymous,
    /// An admin method called by someone else.
    NotAdmin,
    /// The argument is larger than the method ever takes.
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The method's limit.
        limit: usize,
    },
}

/// Whether to let the ingress call of `method` by `caller` (an admin or not) with an
/// argument of `arg_bytes` bytes reach its method. Pure.
///
/// # Errors
/// The [`Refusal`].
pub fn inspect(
    method: &str,
    caller: Principal,
    is_admin: bool,
    arg_bytes: usize,
) -> Result<(), Refusal> {
    if caller == Principal::anonymous() {
        return Err(Refusal::Anonymous);
    }
    if ADMIN_METHODS.contains(&method) && !is_admin {
        return Err(Refusal::NotAdmin);
    }
    let limit = if method == "upload_version_chunk" {
        MAX_CHUNK_ARG_BYTES
    } else {
        MAX_ARG_BYTES
    };
    if arg_bytes > limit {
        return Err(Refusal::TooLarge {
            bytes: arg_bytes,
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
