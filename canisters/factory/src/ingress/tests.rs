use super::*;
use candid::CandidType;

/// The factory's arguments and replies decode within `canvault_protocol::decode`.
fn decode_one<T: CandidType + serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    canvault_protocol::decode::decode_one(bytes).map_err(|e| e.to_string())
}

fn decode_args<T: for<'a> candid::utils::ArgumentDecoder<'a>>(bytes: &[u8]) -> Result<T, String> {
    canvault_protocol::decode::decode_args(bytes).map_err(|e| e.to_string())
}
use canvault_factory_api::{CreateVaultRequest, SubnetChoice, VaultKind};
use serde::Deserialize;
use serde_bytes::ByteBuf;

fn p(n: u8) -> Principal {
    Principal::from_slice(&[n; 10])
}

#[test]
fn should_refuse_anonymous_ingress_to_every_method() {
    for method in [
        "create_vault",
        "delete_vault",
        "top_up_vault",
        "set_config",
        "status",
    ] {
        assert_eq!(
            inspect(method, Principal::anonymous(), false, 10),
            Err(Refusal::Anonymous),
            "{method}"
        );
    }
    assert_eq!(inspect("create_vault", p(1), false, 200), Ok(()));
}

#[test]
fn should_refuse_admin_methods_to_non_admins_and_oversized_arguments() {
    for method in ADMIN_METHODS {
        assert_eq!(inspect(method, p(1), false, 10), Err(Refusal::NotAdmin));
        assert_eq!(inspect(method, p(1), true, 10), Ok(()));
    }
    assert_eq!(
        inspect("upload_version_chunk", p(1), true, MAX_CHUNK_ARG_BYTES),
        Ok(())
    );
    assert_eq!(
        inspect("create_vault", p(1), false, MAX_ARG_BYTES + 1),
        Err(Refusal::TooLarge {
            bytes: MAX_ARG_BYTES + 1,
            limit: MAX_ARG_BYTES
        })
    );
}

fn request() -> CreateVaultRequest {
    CreateVaultRequest {
        kind: VaultKind::App { app: p(2) },
        owners: vec![p(3)],
        writers: vec![],
        readers: vec![p(4); 100],
        retention: None,
        subnet: SubnetChoice::Default { avoid: None },
        initial_cycles: 1,
        managed_upgrades: true,
    }
}

/// A `create_vault` argument with one more field: a `vec null` of a million elements,
/// a few bytes on the wire.
#[derive(CandidType)]
struct Amplified {
    kind: VaultKind,
    owners: Vec<Principal>,
    writers: Vec<Principal>,
    readers: Vec<Principal>,
    retention: Option<canvault_protocol::vault_api::RetentionPolicy>,
    subnet: SubnetChoice,
    initial_cycles: u128,
    managed_upgrades: bool,
    junk: Vec<()>,
}

#[test]
fn should_decode_honest_arguments_and_refuse_an_amplification_payload() {
    let honest = candid::encode_one(request()).unwrap();
    assert_eq!(decode_one::<CreateVaultRequest>(&honest), Ok(request()));
    let r = request();
    let bomb = candid::encode_one(Amplified {
        kind: r.kind,
        owners: r.owners,
        writers: r.writers,
        readers: r.readers,
        retention: r.retention,
        subnet: r.subnet,
        initial_cycles: r.initial_cycles,
        managed_upgrades: r.managed_upgrades,
        junk: vec![(); 1_000_000],
    })
    .unwrap();
    assert!(bomb.len() < 4_000, "{} bytes", bomb.len());
    // Candid without limits (what `Response::candid` and the default argument decoding
    // used to do, apart from ic-cdk's skipping quota) walks the whole million.
    assert!(candid::decode_one::<CreateVaultRequest>(&bomb).is_ok());
    let refused = decode_one::<CreateVaultRequest>(&bomb);
    assert!(refused.is_err(), "{refused:?}");
    // Several arguments, the same way.
    let two = candid::encode_args((7u64, vec![(); 10_000_000])).unwrap();
    assert!(decode_args::<(u64, Vec<()>)>(&two).is_err());
    assert_eq!(
        decode_args::<(u64, u32)>(&candid::encode_args((7u64, 9u32)).unwrap()),
        Ok((7, 9))
    );
}

#[test]
fn should_refuse_an_amplified_reply() {
    #[derive(CandidType, Deserialize, Debug, PartialEq)]
    struct ChunkHash {
        hash: ByteBuf,
    }
    #[derive(CandidType)]
    struct Bigger {
        hash: ByteBuf,
        junk: Vec<()>,
    }
    let hash = ByteBuf::from(vec![7; 32]);
    let honest = candid::encode_one(ChunkHash { hash: hash.clone() }).unwrap();
    assert_eq!(
        decode_one::<ChunkHash>(&honest),
        Ok(ChunkHash { hash: hash.clone() })
    );
    let bomb = candid::encode_one(Bigger {
        hash,
        junk: vec![(); 1_000_000],
    })
    .unwrap();
    assert!(candid::decode_one::<ChunkHash>(&bomb).is_ok());
    assert!(decode_one::<ChunkHash>(&bomb).is_err());
}
