//! Today's alternatives to canvault, as a canister: an app that holds its state (an
//! opaque image of bytes) on the heap, and the endpoints each alternative needs.
//!
//! - **Distrikt-style** (serialise in `pre_upgrade`): `pre_upgrade` writes the image into
//!   stable memory; an operator streams stable memory out with `stable_read` queries,
//!   uploads it into another canister with `stable_write`, and upgrades that canister so
//!   `post_upgrade` loads the image back onto its heap.
//! - **Naive push**: `push` sends the image to a receiver (another instance of this
//!   canister) in plain inter-canister calls; the receiver's `receive` writes every slice
//!   into its stable memory at the same place `pre_upgrade` would.
//!
//! Stable memory layout (both paths): bytes 0..8 `MAGIC`, 8..16 image length (LE),
//! the image from `IMAGE_AT`. Every endpoint but `receive` is for the owner only (the
//! principal that installed or last upgraded the canister); `receive` only accepts the
//! sender the owner allowed.
//!
//! ```text
//! service : {
//!   reserve : (nat64) -> ();                    // owner: reserve heap for an image of n bytes
//!   load : (nat64, blob) -> ();                 // owner: write into the heap image
//!   image_len : () -> (nat64) query;           // owner
//!   digest : (nat64, nat64) -> (blob) query;    // owner: SHA-256 of heap image [offset, offset+len)
//!   stable_len : () -> (nat64) query;           // owner: stable memory size, bytes
//!   stable_read : (nat64, nat64) -> (blob) query;   // owner: raw stable memory, at most MAX_SLICE bytes
//!   stable_write : (nat64, blob) -> ();         // owner: raw stable memory, grows as needed
//!   stable_digest : (nat64, nat64) -> (blob) query; // owner: SHA-256 of the stored image range
//!   allow_sender : (principal) -> ();           // owner: who may call `receive`
//!   receive : (nat64, blob) -> ();              // allowed sender: image slice into stable memory
//!   push : (principal, nat64, nat32) -> ();     // owner: push the image (receiver, slice bytes, calls in flight)
//!   push_status : () -> (nat64, nat64, opt text, bool) query; // bytes acknowledged, calls, failure, finished
//! }
//! ```

use std::cell::{Cell, RefCell};

use candid::Principal;
use ic_cdk::call::Call;
use ic_cdk::{init, post_upgrade, pre_upgrade, query, update};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

/// Marks stable memory holding an image in this canister's layout.
const MAGIC: &[u8; 8] = b"ALTAPP01";
/// Where the image starts in stable memory.
const IMAGE_AT: u64 = 64;
/// The largest slice a read, write or push moves (the platform's snapshot slice).
const MAX_SLICE: u64 = 2_000_000;
const PAGE: u64 = 65_536;

#[derive(Default)]
struct Push {
    receiver: Option<Principal>,
    slice: u64,
    next_offset: u64,
    in_flight: u32,
    acked_bytes: u64,
    calls: u64,
    failure: Option<String>,
}

thread_local! {
    static OWNER: Cell<Option<Principal>> = const { Cell::new(None) };
    static IMAGE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static SENDER: Cell<Option<Principal>> = const { Cell::new(None) };
    /// Stable memory was written from outside since the last upgrade: it holds state
    /// being imported, which `pre_upgrade` must not overwrite with the heap's.
    static IMPORTING: Cell<bool> = const { Cell::new(false) };
    static PUSH: RefCell<Push> = RefCell::new(Push::default());
}

fn owner_only() {
    let caller = ic_cdk::api::msg_caller();
    if OWNER.get() != Some(caller) {
        ic_cdk::trap(format!("alt-app: {caller} is not the owner"));
    }
}

fn slice_len(len: u64) -> u64 {
    if len > MAX_SLICE {
        ic_cdk::trap(format!(
            "alt-app: {len} bytes exceed the {MAX_SLICE}-byte slice"
        ));
    }
    len
}

/// Grows stable memory to hold `end` bytes.
fn ensure_stable(end: u64) {
    let have = ic_cdk::stable::stable_size() * PAGE;
    if end > have {
        let pages = (end - have).div_ceil(PAGE);
        if ic_cdk::stable::stable_grow(pages).is_err() {
            ic_cdk::trap(format!("alt-app: cannot grow stable memory to {end} bytes"));
        }
    }
}

fn stored_len() -> u64 {
    if ic_cdk::stable::stable_size() == 0 {
        return 0;
    }
    let mut header = [0u8; 16];
    ic_cdk::stable::stable_read(0, &mut header);
    if &header[..8] == MAGIC {
        u64::from_le_bytes(header[8..16].try_into().unwrap_or_default())
    } else {
        0
    }
}

fn set_stored_len(len: u64) {
    ensure_stable(IMAGE_AT);
    let mut header = [0u8; 16];
    header[..8].copy_from_slice(MAGIC);
    header[8..].copy_from_slice(&len.to_le_bytes());
    ic_cdk::stable::stable_write(0, &header);
}

#[init]
fn init() {
    OWNER.set(Some(ic_cdk::api::msg_caller()));
}

/// Serialises the image into stable memory (what Distrikt-style apps do on upgrade),
/// unless stable memory holds an imported image (`stable_write` or `receive`).
#[pre_upgrade]
fn pre_upgrade() {
    if IMPORTING.get() {
        return;
    }
    IMAGE.with_borrow(|image| {
        ensure_stable(IMAGE_AT + image.len() as u64);
        ic_cdk::stable::stable_write(IMAGE_AT, image);
        set_stored_len(image.len() as u64);
    });
}

/// Loads the image stable memory holds (if any) onto the heap; the upgrader becomes
/// the owner.
#[post_upgrade]
fn post_upgrade() {
    OWNER.set(Some(ic_cdk::api::msg_caller()));
    let len = stored_len();
    let mut image = vec![0u8; usize::try_from(len).unwrap_or_else(|_| ic_cdk::trap("too large"))];
    ic_cdk::stable::stable_read(IMAGE_AT, &mut image);
    IMAGE.set(image);
}

/// Reserves heap for an image of `len` bytes (so loading it does not reallocate).
#[update]
fn reserve(len: u64) {
    owner_only();
    let len = usize::try_from(len).unwrap_or_else(|_| ic_cdk::trap("alt-app: too large"));
    IMAGE.with_borrow_mut(|image| image.reserve_exact(len.saturating_sub(image.len())));
}

/// Writes `bytes` into the heap image at `offset` (extending it with zeros if needed).
#[update]
fn load(offset: u64, bytes: ByteBuf) {
    owner_only();
    slice_len(bytes.len() as u64);
    IMAGE.with_borrow_mut(|image| {
        let start = usize::try_from(offset).unwrap_or_else(|_| ic_cdk::trap("offset"));
        let end = start
            .checked_add(bytes.len())
            .unwrap_or_else(|| ic_cdk::trap("offset overflows"));
        if image.len() < end {
            image.resize(end, 0);
        }
        image[start..end].copy_from_slice(&bytes);
    });
}

/// Bytes in the heap image.
#[query]
fn image_len() -> u64 {
    owner_only();
    IMAGE.with_borrow(|i| i.len() as u64)
}

fn range(offset: u64, len: u64, total: u64) -> (u64, u64) {
    let start = offset.min(total);
    (start, start + len.min(total - start))
}

/// SHA-256 of the heap image's bytes `[offset, offset + len)` (clamped to the image).
#[query]
fn digest(offset: u64, len: u64) -> ByteBuf {
    owner_only();
    IMAGE.with_borrow(|image| {
        let (a, b) = range(offset, len, image.len() as u64);
        ByteBuf::from(Sha256::digest(&image[a as usize..b as usize]).to_vec())
    })
}

/// Stable memory size in bytes.
#[query]
fn stable_len() -> u64 {
    owner_only();
    ic_cdk::stable::stable_size() * PAGE
}

/// Raw stable memory `[offset, offset + len)`, clamped to its size.
#[query]
fn stable_read(offset: u64, len: u64) -> ByteBuf {
    owner_only();
    let (a, b) = range(offset, slice_len(len), ic_cdk::stable::stable_size() * PAGE);
    let mut buf = vec![0u8; (b - a) as usize];
    ic_cdk::stable::stable_read(a, &mut buf);
    ByteBuf::from(buf)
}

/// Writes raw stable memory at `offset`, growing it as needed.
#[update]
fn stable_write(offset: u64, bytes: ByteBuf) {
    owner_only();
    slice_len(bytes.len() as u64);
    let end = offset
        .checked_add(bytes.len() as u64)
        .unwrap_or_else(|| ic_cdk::trap("offset overflows"));
    ensure_stable(end);
    ic_cdk::stable::stable_write(offset, &bytes);
    IMPORTING.set(true);
}

/// SHA-256 of the image stored in stable memory, bytes `[offset, offset + len)`.
#[query]
fn stable_digest(offset: u64, len: u64) -> ByteBuf {
    owner_only();
    let (a, b) = range(offset, len, stored_len());
    let mut h = Sha256::new();
    let mut buf = vec![0u8; MAX_SLICE as usize];
    let mut at = a;
    while at < b {
        let n = (b - at).min(MAX_SLICE) as usize;
        ic_cdk::stable::stable_read(IMAGE_AT + at, &mut buf[..n]);
        h.update(&buf[..n]);
        at += n as u64;
    }
    ByteBuf::from(h.finalize().to_vec())
}

/// Allows `sender` to call `receive`.
#[update]
fn allow_sender(sender: Principal) {
    owner_only();
    SENDER.set(Some(sender));
}

/// Writes an image slice into stable memory (as `pre_upgrade` lays it out).
#[update]
fn receive(offset: u64, bytes: ByteBuf) {
    let caller = ic_cdk::api::msg_caller();
    if SENDER.get() != Some(caller) {
        ic_cdk::trap(format!("alt-app: {caller} may not push here"));
    }
    slice_len(bytes.len() as u64);
    let end = offset
        .checked_add(bytes.len() as u64)
        .unwrap_or_else(|| ic_cdk::trap("offset overflows"));
    ensure_stable(IMAGE_AT + end);
    ic_cdk::stable::stable_write(IMAGE_AT + offset, &bytes);
    IMPORTING.set(true);
    if end > stored_len() {
        set_stored_len(end);
    }
}

/// Starts pushing the heap image to `receiver` in `slice`-byte calls, `window` at a time.
#[update]
fn push(receiver: Principal, slice: u64, window: u32) {
    owner_only();
    slice_len(slice);
    if slice == 0 || window == 0 {
        ic_cdk::trap("alt-app: slice and window must be positive");
    }
    PUSH.with_borrow_mut(|p| {
        if p.receiver.is_some() && p.in_flight > 0 {
            ic_cdk::trap("alt-app: a push is under way");
        }
        *p = Push {
            receiver: Some(receiver),
            slice,
            ..Push::default()
        };
    });
    for _ in 0..window {
        send_next();
    }
}

/// Sends the next slice, if any is left and no call failed.
fn send_next() {
    let next = PUSH.with_borrow_mut(|p| {
        let total = IMAGE.with_borrow(|i| i.len() as u64);
        let receiver = p.receiver?;
        if p.failure.is_some() || p.next_offset >= total {
            return None;
        }
        let (a, b) = (p.next_offset, (p.next_offset + p.slice).min(total));
        p.next_offset = b;
        p.in_flight += 1;
        Some((receiver, a, b))
    });
    let Some((receiver, a, b)) = next else { return };
    let bytes = IMAGE.with_borrow(|i| ByteBuf::from(i[a as usize..b as usize].to_vec()));
    ic_cdk::futures::spawn(async move {
        let result = Call::unbounded_wait(receiver, "receive")
            .with_args(&(a, bytes))
            .await;
        PUSH.with_borrow_mut(|p| {
            p.in_flight -= 1;
            p.calls += 1;
            match result {
                Ok(_) => p.acked_bytes += b - a,
                Err(e) => p.failure = Some(format!("receive at {a}: {e}")),
            }
        });
        send_next();
    });
}

/// Bytes acknowledged, calls completed, the first failure, and whether the push ended.
#[query]
fn push_status() -> (u64, u64, Option<String>, bool) {
    owner_only();
    PUSH.with_borrow(|p| {
        let total = IMAGE.with_borrow(|i| i.len() as u64);
        let finished = p.in_flight == 0 && (p.failure.is_some() || p.next_offset >= total);
        (p.acked_bytes, p.calls, p.failure.clone(), finished)
    })
}
