//! Candid decoding with work limits, for everything the kit decodes from others: the
//! vault's replies and the arguments of the kit's endpoints. Without a decoding quota
//! a few bytes on the wire (e.g. `vec null` of a billion elements) cost the decoder
//! unbounded instructions; without a skipping quota, so do unknown extra fields.

use candid::utils::ArgumentDecoder;
use candid::{CandidType, DecoderConfig};
use serde::de::DeserializeOwned;

/// Decoding work allowed for one vault reply (candid's cost units, about one per byte
/// of plain data): the kit's replies are small (a `put_chunks` reply lists at most a
/// batch's indices, ~20k).
pub const REPLY_DECODING_QUOTA: usize = 2_000_000;
/// Decoding work allowed for one endpoint argument: a 2 MiB restore batch of chunk
/// frames costs ~4M units.
pub const ARG_DECODING_QUOTA: usize = 16_000_000;
/// Work allowed for skipping unknown fields and values.
pub const SKIPPING_QUOTA: usize = 10_000;

fn config(quota: usize) -> DecoderConfig {
    let mut config = DecoderConfig::new();
    config
        .set_decoding_quota(quota)
        .set_skipping_quota(SKIPPING_QUOTA)
        .set_full_error_message(false);
    config
}

/// Decodes a vault reply of type `R` within [`REPLY_DECODING_QUOTA`].
///
/// # Errors
/// Not an `R`, or it costs more than the quota to decode.
pub fn reply<R: CandidType + DeserializeOwned>(bytes: &[u8]) -> Result<R, String> {
    candid::decode_one_with_config(bytes, &config(REPLY_DECODING_QUOTA)).map_err(|e| e.to_string())
}

/// Decodes an endpoint's argument tuple within [`ARG_DECODING_QUOTA`], for
/// `#[update(decode_with = ...)]`. Not wired into `export_endpoints!` yet: with
/// `decode_with`, ic-cdk 0.20's `export_candid!` describes the argument as `blob`.
///
/// # Panics
/// Undecodable or over the quota (the call is rejected before any work is done).
pub fn args<T: for<'a> ArgumentDecoder<'a>>(bytes: Vec<u8>) -> T {
    let bytes: &[u8] = if bytes.is_empty() {
        b"DIDL\x00\x00"
    } else {
        &bytes
    };
    candid::utils::decode_args_with_config(bytes, &config(ARG_DECODING_QUOTA))
        .unwrap_or_else(|e| panic!("canvault kit: argument refused: {e}"))
}

/// As [`args`], for an endpoint with one argument.
///
/// # Panics
/// As [`args`].
pub fn arg<T: CandidType + DeserializeOwned>(bytes: Vec<u8>) -> T {
    let (t,) = args::<(T,)>(bytes);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use canvault_protocol::chunk::{MAX_BATCH_PAYLOAD_BYTES, MIN_CHUNK_SIZE};
    use canvault_protocol::kit_api::RestoreChunksRequest;
    use canvault_protocol::vault_api::{ChunkPut, PutChunksResponse, VaultError};

    /// `vec null` of `n` elements: 1 byte per... nothing; only the length on the wire.
    fn vec_of_nulls(n: u64) -> Vec<u8> {
        let mut out = b"DIDL\x01\x6d\x7f\x01\x00".to_vec();
        let mut n = n;
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        out
    }

    #[test]
    fn an_amplifying_reply_is_refused_within_the_quota() {
        let bytes = vec_of_nulls(1 << 30);
        assert!(bytes.len() < 20, "a few bytes on the wire");
        let r = reply::<Vec<()>>(&bytes);
        assert!(r.is_err(), "a billion nulls are refused: {r:?}");
        let small = reply::<Vec<()>>(&vec_of_nulls(100)).unwrap();
        assert_eq!(small.len(), 100);
    }

    #[test]
    fn a_reply_with_a_huge_skipped_extra_is_refused() {
        // A PutChunksResponse followed by an unknown extra value to skip.
        let resp: Result<PutChunksResponse, VaultError> =
            Err(VaultError::InvalidRequest("x".into()));
        let mut bytes = candid::encode_args((resp, vec![0u8; 200_000])).unwrap();
        assert!(reply::<Result<PutChunksResponse, VaultError>>(&bytes).is_err());
        bytes = candid::encode_one(Err::<PutChunksResponse, _>(VaultError::InvalidRequest(
            "x".into(),
        )))
        .unwrap();
        assert!(reply::<Result<PutChunksResponse, VaultError>>(&bytes).is_ok());
    }

    #[test]
    fn a_full_restore_batch_decodes_within_the_argument_quota() {
        let raw: Vec<u8> = (0..MIN_CHUNK_SIZE).map(|i| (i * 7 % 251) as u8).collect();
        let put = ChunkPut::with_bytes(0, &raw);
        let mut chunks = Vec::new();
        let mut size = 0;
        while size < MAX_BATCH_PAYLOAD_BYTES - 70_000 {
            let mut p = put.clone();
            p.index = u32::try_from(chunks.len()).unwrap();
            size += candid::encode_one(&p).unwrap().len();
            chunks.push(p);
        }
        let req = RestoreChunksRequest {
            snapshot_id: 1,
            chunks,
        };
        let bytes = candid::encode_one(&req).unwrap();
        let back: RestoreChunksRequest = arg(bytes);
        assert_eq!(back, req);
        // As many zero chunks as fit the payload (the most entries a batch can carry).
        let zero = ChunkPut::with_bytes(0, &vec![0; MIN_CHUNK_SIZE as usize]);
        let req = RestoreChunksRequest {
            snapshot_id: 1,
            chunks: vec![zero; MAX_BATCH_PAYLOAD_BYTES / 96],
        };
        let back: RestoreChunksRequest = arg(candid::encode_one(&req).unwrap());
        assert_eq!(back.chunks.len(), req.chunks.len());
    }

    #[test]
    #[should_panic(expected = "argument refused")]
    fn an_amplifying_argument_is_refused() {
        let _: Vec<()> = arg(vec_of_nulls(1 << 30));
    }
}
