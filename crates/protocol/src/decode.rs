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
use candid::utils::ArgumentDecoder;
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

/// ic-cdk's convention: an empty message carries no arguments.
fn nonempty(bytes: &[u8]) -> &[u8] {
    if bytes.is_empty() {
        b"DIDL\x00\x00"
    } else {
        bytes
    }
}

/// Decodes a single candid value (a reply, or a one-argument message) with
/// [`decoder_config`].
///
/// # Errors
/// The bytes are not candid, not a `T`, or exceed a quota.
pub fn decode_one<T: CandidType + DeserializeOwned>(bytes: &[u8]) -> Result<T, candid::Error> {
    candid::utils::decode_one_with_config(nonempty(bytes), &decoder_config())
}

/// Decodes an argument tuple with [`decoder_config`]. Trailing `opt` arguments a
/// caller did not send read as `None`.
///
/// # Errors
/// The bytes are not candid, not a `T`, or exceed a quota.
pub fn decode_args<T: for<'a> ArgumentDecoder<'a>>(bytes: &[u8]) -> Result<T, candid::Error> {
    candid::utils::decode_args_with_config(nonempty(bytes), &decoder_config())
}

/// An endpoint's arguments, for ic-cdk's `#[update(decode_with = ...)]` (and query):
/// [`decode_args`], trapping on refusal, so the call is rejected before the method
/// runs, as ic-cdk's own decoding does. With `decode_with` the endpoint is exported
/// `hidden = true` and carries `#[candid::candid_method]` itself, so the candid
/// interface keeps its types (ic-cdk would describe the argument as `blob`).
///
/// # Panics
/// The argument is refused (the message names the quota or the type error).
pub fn endpoint_args<T: for<'a> ArgumentDecoder<'a>>(bytes: Vec<u8>) -> T {
    decode_args(&bytes).unwrap_or_else(|e| panic!("canvault: argument refused: {e}"))
}

/// As [`endpoint_args`], for an endpoint with one argument.
///
/// # Panics
/// As [`endpoint_args`].
pub fn endpoint_arg<T: CandidType + DeserializeOwned>(bytes: Vec<u8>) -> T {
    let (t,) = endpoint_args::<(T,)>(bytes);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{MAX_BATCH_PAYLOAD_BYTES, MIN_CHUNK_SIZE};
    use crate::kit_api::{KitError, RestoreChunksRequest};
    use crate::vault_api::{ChunkPut, PutChunksRequest};

    /// A few bytes that describe a hundred million values (an extra argument).
    fn with_extra_nulls<T: CandidType>(first: T) -> Vec<u8> {
        candid::encode_args((first, vec![(); 100_000_000])).expect("encode")
    }

    /// `vec null` of `n` elements, which reads as `vec opt T`: only the length travels.
    fn vec_of_nulls(n: u32) -> Vec<u8> {
        candid::encode_one(vec![(); n as usize]).expect("encode")
    }

    #[test]
    fn should_refuse_amplified_replies_and_arguments_and_accept_plain_ones() {
        let bytes = with_extra_nulls(Ok::<u32, KitError>(7));
        assert!(bytes.len() < 200, "{} bytes", bytes.len());
        assert!(decode_one::<Result<u32, KitError>>(&bytes).is_err());
        let plain = candid::encode_one(Ok::<u32, KitError>(7)).expect("encode");
        assert_eq!(
            decode_one::<Result<u32, KitError>>(&plain).ok(),
            Some(Ok(7))
        );
        let req = PutChunksRequest {
            snapshot_id: 1,
            chunks: vec![],
        };
        assert!(decode_args::<(PutChunksRequest,)>(&with_extra_nulls(req.clone())).is_err());
        let plain = candid::encode_one(&req).expect("encode");
        assert_eq!(
            decode_args::<(PutChunksRequest,)>(&plain).ok(),
            Some((req,))
        );
        // Values the receiver keeps cost too: 30 million `null`s read as `opt`.
        let nulls = vec_of_nulls(30_000_000);
        assert!(nulls.len() < 20);
        assert!(decode_one::<Vec<Option<u64>>>(&nulls).is_err());
        assert_eq!(
            decode_one::<Vec<Option<u64>>>(&vec_of_nulls(100))
                .ok()
                .map(|v| v.len()),
            Some(100)
        );
    }

    #[test]
    fn should_read_missing_trailing_opt_arguments_as_none() {
        let none: (Option<String>,) = decode_args(&[]).expect("no bytes: no arguments");
        assert_eq!(none, (None,));
        let one = candid::encode_one(7u64).expect("encode");
        let (n, extra): (u64, Option<String>) = decode_args(&one).expect("one of two");
        assert_eq!((n, extra), (7, None));
    }

    #[test]
    #[should_panic(expected = "argument refused")]
    fn should_trap_an_endpoint_on_a_refused_argument() {
        let _: Vec<Option<u64>> = endpoint_arg(vec_of_nulls(30_000_000));
    }

    #[test]
    fn should_accept_the_largest_legitimate_batches() {
        // A put of 10,000 small frames and one large one.
        let mut chunks: Vec<ChunkPut> = (0..9_999)
            .map(|index| ChunkPut::with_bytes(index, &[0u8; 64]))
            .collect();
        let big: Vec<u8> = (0..MAX_BATCH_PAYLOAD_BYTES as u32 - 600_000)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        chunks.push(ChunkPut::with_bytes(9_999, &big));
        let req = PutChunksRequest {
            snapshot_id: 1,
            chunks,
        };
        let bytes = candid::encode_one(&req).expect("encode");
        assert!(decode_args::<(PutChunksRequest,)>(&bytes).is_ok());
        // A restore batch of as many zero chunks as fit the payload.
        let zero = ChunkPut::with_bytes(0, &vec![0; MIN_CHUNK_SIZE as usize]);
        let req = RestoreChunksRequest {
            snapshot_id: 1,
            chunks: vec![zero; MAX_BATCH_PAYLOAD_BYTES / 96],
        };
        let back: RestoreChunksRequest = endpoint_arg(candid::encode_one(&req).expect("encode"));
        assert_eq!(back.chunks.len(), req.chunks.len());
    }
}
