//! The heap-only test canister (`tests/heap-app`: a `RefCell<BTreeMap>`, no stable
//! memory, no kit), as the whole-canister scenarios and the benchmark drive it.

use candid::Principal;
use ic_harness::{CanisterId, Harness};
use serde_bytes::ByteBuf;

/// The module's crate name.
pub const HEAP_APP: &str = "heap_app";

/// Entries, value bytes, and the digests of every page of entries in key order.
pub type Digest = (u64, u64, ByteBuf);

/// Bytes per value [`fill_mib`] stores.
pub const VALUE_BYTES: u32 = 65_536;

/// Installs the heap app on the `subnet`-th application subnet, controlled by `owner`
/// and `vault` (so the vault may snapshot, stop, start and load it).
pub fn install_controlled(
    ic: &mut Harness,
    subnet: usize,
    owner: Principal,
    vault: Principal,
) -> CanisterId {
    let app = crate::install(
        ic,
        subnet,
        HEAP_APP,
        candid::encode_args(()).expect("no argument"),
        owner,
    );
    let settings = ic_management_canister_types::CanisterSettings {
        controllers: Some(vec![owner, vault]),
        ..Default::default()
    };
    ic.update_canister_settings(app, Some(owner), settings)
        .expect("controllers");
    app
}

/// Fills `canister` with `mib` MiB of 64 KiB values, in updates of at most 16 MiB; the
/// update with index `i` uses seed `first_seed + i` (keys `seed << 32 | n`).
pub fn fill_mib(
    ic: &mut Harness,
    canister: CanisterId,
    caller: Principal,
    first_seed: u64,
    mib: u32,
) {
    for i in 0..mib.div_ceil(16) {
        let entries = (mib - i * 16).min(16) * 16;
        let () = ic
            .update_candid(
                canister,
                caller,
                "fill",
                (first_seed + u64::from(i), entries, VALUE_BYTES),
            )
            .expect("fill");
    }
}

/// The digest of every entry, read page by page (64 entries a query, so each query stays
/// under the query instruction limit whatever the heap's size).
pub fn digest(ic: &mut Harness, canister: CanisterId, caller: Principal) -> Digest {
    let (mut entries, mut bytes, mut pages) = (0, 0, Vec::new());
    let mut from = Some(0u64);
    while let Some(start) = from {
        let (n, b, d, next): (u64, u64, ByteBuf, Option<u64>) = ic
            .query_candid(canister, caller, "digest_page", (start, 64u32))
            .expect("digest_page");
        entries += n;
        bytes += b;
        pages.extend_from_slice(&d);
        from = next;
    }
    (entries, bytes, ByteBuf::from(pages))
}

/// The value under `key`.
pub fn get(ic: &mut Harness, canister: CanisterId, caller: Principal, key: u64) -> Option<ByteBuf> {
    let (v,): (Option<ByteBuf>,) = ic
        .query_candid(canister, caller, "get", (key,))
        .expect("get");
    v
}
