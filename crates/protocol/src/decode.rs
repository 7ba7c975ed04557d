//! Candid decoding limits for everything a canvault canister reads off the wire: the
//! arguments of vault and kit endpoints and the replies of the calls they make.
//!
//! A message is at most [`MAX_MESSAGE_BYTES`], but candid can make a small message cost
//! far more than its size to decode: a value the receiver does not want (an extra
//! argument, an extra record field, an `opt` field of another type) is *skipped*, and a
//! skipped `vec null` of 2^32 elements occupies five bytes on the wire. ic-cdk's default
//! argument decoder bounds only the skipping work; [`decoder_config`] bounds the total
//! work too, the type table's length and (through candid's own guard) its nesting.
//! The quotas count candid's cost units (documented on
//! `candid::de::DecoderConfig::set_decoding_quota`: about one unit per byte of a blob or
//! text, three per vector element, seven plus the label per record field, 30 per
//! principal); the figures below are sized from the largest legitimate messages of
//! this interface, measured by `crates/protocol/tests/fuzz_candid.rs`.

use candid::CandidType;
use candid::de::DecoderConfig;
use serde::de::DeserializeOwned;

/// The largest message a canister receives: ingress and inter-canister payloads are at
/// most 2 MiB.
pub const MAX_MESSAGE_BYTES: usize = 2 * 1024 * 1024;

/// Decoding work allowed per message, in candid cost units: 8 units per byte of the
/// largest message. The densest legitimate message, a `put_chunks` or
/// `canvault_restore_chunks` batch of 2 MiB made only of `Zero` entries, costs about
/// 2.2 units per byte (a batch of frames about 1.0); 8 leaves room for a future field
/// or two while keeping the worst message within a few tens of millions of
/// instructions. A message over the quota is refused with a candid error before the
/// rest of it is read.
pub const DECODING_QUOTA: usize = 8 * MAX_MESSAGE_BYTES;

/// Work allowed for values the receiver skips (extra arguments, fields it does not
/// know, `opt` fields of another type). A client one version ahead sends a few extra
/// fields, not megabytes of them; ic-cdk uses the same figure by default. Skipped work
/// also counts 50 times against [`DECODING_QUOTA`].
pub const SKIPPING_QUOTA: usize = 10_000;

/// Most entries of a message's type table. canvault's largest argument or reply type
/// needs about 20; the bound leaves room for newer clients and keeps a hostile header
/// from declaring candid's default of 10,000 types.
pub const MAX_TYPE_TABLE_LEN: usize = 256;

/// The decoder configuration every canvault canister uses for its endpoint arguments
/// (ic-cdk's `decode_with`) and for the replies it decodes: [`DECODING_QUOTA`],
/// [`SKIPPING_QUOTA`], [`MAX_TYPE_TABLE_LEN`], and short error messages (a full one
/// quotes the hostile type back at the caller).
#[must_use]
pub fn decoder_config() -> DecoderConfig {
    let mut config = DecoderConfig::new();
    config
        .set_decoding_quota(DECODING_QUOTA)
        .set_skipping_quota(SKIPPING_QUOTA)
        .set_max_type_len(MAX_TYPE_TABLE_LEN)
        .set_full_error_message(false);
    config
}

/// Decodes a single candid value with [`decoder_config`].
///
/// # Errors
/// The bytes are not candid, not a `T`, carry extra values, or exceed a quota.
pub fn decode_one<T: CandidType + DeserializeOwned>(bytes: &[u8]) -> Result<T, candid::Error> {
    candid::utils::decode_one_with_config(bytes, &decoder_config())
}
