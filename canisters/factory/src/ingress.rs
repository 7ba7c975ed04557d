//! What the factory lets in: the `canister_inspect_message` filter of ingress calls, and
//! the candid limits replies are decoded with ([`decode_one`], used by `calls`). Pure:
//! no ic-cdk. (Endpoint arguments are not decoded through here: ic-cdk's `decode_with`
//! makes `export_candid!` declare every argument as `blob`.)
//!
//! The filter only refuses what the method would surely refuse (an anonymous caller, a
//! non-admin calling an admin method, an argument far larger than the method takes), so
//! that such calls cost the factory nothing; the methods keep every check of their own.
//! It does not run for calls from canisters, which are checked by the methods alone.

use candid::utils::ArgumentDecoder;
use candid::{CandidType, DecoderConfig, Principal};
use canvault_factory_api::MAX_UPLOAD_CHUNK_BYTES;
use serde::de::DeserializeOwned;

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

/// Decoding cost allowed for one argument or reply, in candid's units (about one per
/// byte or value decoded): four times the largest message, so an honest message always
/// fits and a small message describing a huge value (say a `vec null` of a billion
/// elements) is refused.
pub const DECODING_QUOTA: usize = 8 * 1024 * 1024;

/// Skipping cost allowed (values of fields the receiving type does not have), as
/// ic-cdk's default for arguments.
pub const SKIPPING_QUOTA: usize = 10_000;

/// The decoder limits of every argument and reply.
#[must_use]
pub fn decoder_config() -> DecoderConfig {
    let mut config = DecoderConfig::new();
    config
        .set_decoding_quota(DECODING_QUOTA)
        .set_skipping_quota(SKIPPING_QUOTA)
        .set_full_error_message(false);
    config
}

/// Decodes one candid value within [`decoder_config`]'s limits (an empty message reads
/// as no arguments).
///
/// # Errors
/// The decoder's message.
pub fn decode_one<T: CandidType + DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    candid::decode_one_with_config(nonempty(bytes), &decoder_config()).map_err(|e| e.to_string())
}

/// Decodes candid arguments within [`decoder_config`]'s limits.
///
/// # Errors
/// The decoder's message.
pub fn decode_args<T: for<'a> ArgumentDecoder<'a>>(bytes: &[u8]) -> Result<T, String> {
    candid::utils::decode_args_with_config(nonempty(bytes), &decoder_config())
        .map_err(|e| e.to_string())
}

fn nonempty(bytes: &[u8]) -> &[u8] {
    if bytes.is_empty() {
        b"DIDL\x00\x00"
    } else {
        bytes
    }
}

#[cfg(test)]
mod tests;
