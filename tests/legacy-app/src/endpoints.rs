//! The app's endpoints, shared by legacy-app and legacy-app-kit (`#[path]`): each crate
//! defines `with_store` and `app_memory` over its own memory.
//!
//! ```text
//! service : (Kind) -> {
//!   fill : (nat64, nat32) -> (nat64);                 // seed, MiB to add; entries now (controllers)
//!   put : (nat64, blob) -> (variant { Ok; Err : text }); // replace an entry (controllers)
//!   get : (nat64) -> (opt blob) query;
//!   digest_page : (nat64, nat64) -> (blob, opt nat64) query; // from a key, at most n entries
//!   digest_meta : () -> (blob) query;                 // layout, count, key log
//!   stats : () -> (Kind, nat64, nat64) query;         // layout, entries, memory bytes
//! }
//! ```

use ic_cdk::{query, update};
use ic_stable_structures::Memory;
use serde_bytes::ByteBuf;

use crate::store::{Kind, RECORD};
use crate::{app_memory, with_store};

fn require_controller() {
    let caller = ic_cdk::api::msg_caller();
    assert!(
        ic_cdk::api::is_controller(&caller),
        "legacy-app: {caller} is not a controller"
    );
}

/// Adds `mib` MiB of entries made from `seed`; returns the entry count.
#[update]
fn fill(seed: u64, mib: u32) -> u64 {
    require_controller();
    let entries = u64::from(mib) * (1 << 20) / RECORD;
    with_store(|s| {
        s.fill(seed, entries);
        s.len()
    })
}

/// Replaces entry `key`.
#[update]
fn put(key: u64, value: ByteBuf) -> Result<(), String> {
    require_controller();
    with_store(|s| s.put(key, &value))
}

/// Entry `key`.
#[query]
fn get(key: u64) -> Option<ByteBuf> {
    with_store(|s| s.get(key).map(ByteBuf::from))
}

/// Digest of entries `start..` (at most `limit`) and the key to continue from.
#[query]
fn digest_page(start: u64, limit: u64) -> (ByteBuf, Option<u64>) {
    let (d, next) = with_store(|s| s.digest_page(start, limit));
    (ByteBuf::from(d), next)
}

/// Digest of the layout, count and key log.
#[query]
fn digest_meta() -> ByteBuf {
    ByteBuf::from(with_store(|s| s.digest_meta()))
}

/// Layout, entries, and the size of the memory the app sees.
#[query]
fn stats() -> (Kind, u64, u64) {
    let (kind, len) = with_store(|s| (s.kind(), s.len()));
    (kind, len, app_memory().size() * 65_536)
}
