//! Candid decoding with quotas: the replies of restore targets (`restore_driver`), and
//! [`decode_args`] for arguments (not wired into the endpoints yet: ic-cdk 0.20's
//! `decode_with` makes `export_candid!` describe the argument as `blob`).
//!
//! ic-cdk's generated decoding only bounds skipped data (10,000): a short payload such
//! as `vec null` of length 2^32 would still make the vault spin through billions of
//! values. The decoding quota (candid's cost model: about one unit per byte, three per
//! vector element, a 50x penalty on skipped values) refuses such payloads early.

use candid::utils::ArgumentDecoder;
use candid::{CandidType, DecoderConfig};
use serde::de::DeserializeOwned;

/// Decoding quota of an argument: a 2 MiB `put_chunks` of 10,000 entries costs about
/// 3M units, so 4x that.
pub const ARG_DECODING_QUOTA: usize = 12_000_000;
/// Decoding quota of a restore target's reply (`Result<nat32 or (), KitError>`).
pub const REPLY_DECODING_QUOTA: usize = 100_000;
/// Skipping quota (extra arguments, fields and values), as ic-cdk sets it.
pub const SKIPPING_QUOTA: usize = 10_000;

fn config(decoding_quota: usize) -> DecoderConfig {
    let mut config = DecoderConfig::new();
    config
        .set_decoding_quota(decoding_quota)
        .set_skipping_quota(SKIPPING_QUOTA);
    config
}

/// Decodes an argument tuple within [`ARG_DECODING_QUOTA`]. An empty payload means
/// no arguments (ic-cdk's convention).
///
/// # Errors
/// The candid error, quota exhaustion included.
pub fn decode_args<T: for<'a> ArgumentDecoder<'a>>(bytes: &[u8]) -> Result<T, String> {
    let bytes: &[u8] = if bytes.is_empty() {
        b"DIDL\x00\x00"
    } else {
        bytes
    };
    candid::utils::decode_args_with_config(bytes, &config(ARG_DECODING_QUOTA))
        .map_err(|e| format!("argument refused: {e}"))
}

/// Decodes a reply of one value within [`REPLY_DECODING_QUOTA`].
///
/// # Errors
/// The candid error, quota exhaustion included.
pub fn decode_reply<T: CandidType + DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    candid::utils::decode_one_with_config(bytes, &config(REPLY_DECODING_QUOTA))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use canvault_protocol::kit_api::KitError;
    use canvault_protocol::vault_api::PutChunksRequest;

    use super::*;

    /// A few bytes that describe a hundred million values.
    fn amplified<T: CandidType>(first: T) -> Vec<u8> {
        candid::encode_args((first, vec![(); 100_000_000])).expect("encode")
    }

    #[test]
    fn should_refuse_an_amplified_reply_and_accept_a_plain_one() {
        let bytes = amplified(Ok::<u32, KitError>(7));
        assert!(bytes.len() < 200, "{} bytes", bytes.len());
        decode_reply::<Result<u32, KitError>>(&bytes).expect_err("refused");
        let plain = candid::encode_one(Ok::<u32, KitError>(7)).expect("encode");
        assert_eq!(decode_reply::<Result<u32, KitError>>(&plain), Ok(Ok(7)));
    }

    #[test]
    fn should_refuse_an_amplified_argument() {
        let req = PutChunksRequest {
            snapshot_id: 1,
            chunks: vec![],
        };
        decode_args::<(PutChunksRequest,)>(&amplified(req.clone())).expect_err("refused");
        let plain = candid::encode_one(&req).expect("encode");
        assert_eq!(decode_args::<(PutChunksRequest,)>(&plain), Ok((req,)));
        let none: Result<(Option<String>,), String> = decode_args(&[]);
        assert_eq!(
            none,
            Ok((None,)),
            "no bytes: no arguments, a missing opt is null"
        );
    }

    #[test]
    fn should_accept_a_full_size_put_within_the_quota() {
        use canvault_protocol::vault_api::{ChunkBody, ChunkPut};
        let mut chunks: Vec<ChunkPut> = (0..9_999)
            .map(|index| ChunkPut::with_bytes(index, &[0u8; 64]))
            .collect();
        chunks.push(ChunkPut {
            body: ChunkBody::Data {
                codec: canvault_protocol::Codec::Raw,
                bytes: serde_bytes::ByteBuf::from(vec![1u8; 2 * 1024 * 1024 - 600_000]),
            },
            ..ChunkPut::with_bytes(9_999, &[1u8; 64])
        });
        let req = PutChunksRequest {
            snapshot_id: 1,
            chunks,
        };
        let bytes = candid::encode_one(&req).expect("encode");
        assert!(decode_args::<(PutChunksRequest,)>(&bytes).is_ok());
    }
}
