//! A canister that keeps all of its state on the heap, like many canisters written
//! before stable structures: a `RefCell<BTreeMap>`, no stable memory, no kit, no
//! upgrade hooks. The whole-canister scenarios back it up and fork it without any
//! change to this code, then compare its answers.
//!
//! ```text
//! service : {
//!   put : (nat64, blob) -> ();
//!   fill : (nat64, nat32, nat32) -> ();   // seed, entries, bytes per entry
//!   get : (nat64) -> (opt blob) query;
//!   digest : () -> (nat64, nat64, blob) query; // entries, value bytes, SHA-256 of every (key, value)
//!   digest_page : (nat64, nat32) -> (nat64, nat64, blob, opt nat64) query; // the same from a key, at most n entries; next key
//!   writes : () -> (nat64) query;          // updates applied since install
//! }
//! ```
//! Every update also sets the certified data to the first 32 bytes of the digest of the
//! write count, so a copy must carry the certified data too.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use ic_cdk::{query, update};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

thread_local! {
    static MAP: RefCell<BTreeMap<u64, Vec<u8>>> = const { RefCell::new(BTreeMap::new()) };
    static WRITES: Cell<u64> = const { Cell::new(0) };
}

fn wrote() {
    let n = WRITES.get() + 1;
    WRITES.set(n);
    ic_cdk::api::certified_data_set(Sha256::digest(n.to_le_bytes()));
}

/// Stores `value` under `key`.
#[update]
fn put(key: u64, value: ByteBuf) {
    MAP.with_borrow_mut(|m| m.insert(key, value.into_vec()));
    wrote();
}

/// Stores `entries` pseudo-random values of `size` bytes, keys `seed * 2^32 + i`.
#[update]
fn fill(seed: u64, entries: u32, size: u32) {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    MAP.with_borrow_mut(|m| {
        for i in 0..entries {
            let value: Vec<u8> = (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Half the bytes are small: the heap compresses like real data.
                    (x as u8) & 0x3f
                })
                .collect();
            m.insert((seed << 32) | u64::from(i), value);
        }
    });
    wrote();
}

/// The value under `key`.
#[query]
fn get(key: u64) -> Option<ByteBuf> {
    MAP.with_borrow(|m| m.get(&key).cloned().map(ByteBuf::from))
}

/// Entries, value bytes, and the SHA-256 of every (key, value) in key order.
#[query]
fn digest() -> (u64, u64, ByteBuf) {
    MAP.with_borrow(|m| {
        let mut h = Sha256::new();
        let mut bytes = 0;
        for (k, v) in m {
            h.update(k.to_le_bytes());
            h.update((v.len() as u64).to_le_bytes());
            h.update(v);
            bytes += v.len() as u64;
        }
        (m.len() as u64, bytes, ByteBuf::from(h.finalize().to_vec()))
    })
}

/// `digest` of at most `limit` entries from key `from` on, and the next key: a heap of
/// a GiB is digested page by page, within the query instruction limit.
#[query]
fn digest_page(from: u64, limit: u32) -> (u64, u64, ByteBuf, Option<u64>) {
    MAP.with_borrow(|m| {
        let mut h = Sha256::new();
        let (mut entries, mut bytes) = (0u64, 0u64);
        let mut range = m.range(from..);
        for (k, v) in range.by_ref().take(limit as usize) {
            h.update(k.to_le_bytes());
            h.update((v.len() as u64).to_le_bytes());
            h.update(v);
            entries += 1;
            bytes += v.len() as u64;
        }
        let next = range.next().map(|(k, _)| *k);
        (entries, bytes, ByteBuf::from(h.finalize().to_vec()), next)
    })
}

/// Updates applied since install.
#[query]
fn writes() -> u64 {
    WRITES.get()
}
