//! A minimal restore target for the vault's scenario tests (`tests/tests/vault.rs`).
//!
//! It speaks the three restore endpoints of the kit protocol naively: the image is a
//! heap buffer (it survives stop/start, not upgrades), every chunk is verified, and
//! `canvault_restore_finish` recomputes the root from the staged bytes. Test controls:
//! `arm` (which vault and snapshot may push), `trap_chunk_calls_until` (chunk calls trap
//! until a time, to test retries; a trap rolls state back, so the switch is a time).
//!
//! ```text
//! service : {
//!   arm : (principal, nat64) -> ();
//!   trap_chunk_calls_until : (nat64) -> ();
//!   canvault_restore_begin : (RestoreBeginRequest) -> (variant { Ok; Err : KitError });
//!   canvault_restore_chunks : (RestoreChunksRequest) -> (variant { Ok : nat32; Err : KitError });
//!   canvault_restore_finish : (nat64) -> (variant { Ok; Err : KitError });
//!   restored : () -> (opt record { nat64; blob; nat64 }) query;  // snapshot, root of the bytes, size
//!   calls : () -> (record { nat32; nat32; nat32 }) query;        // begin, chunks, finish calls
//! }
//! ```

use std::cell::RefCell;
use std::collections::BTreeSet;

use candid::Principal;
use canvault_protocol::Hash256;
use canvault_protocol::chunk::{chunk_count, chunk_len, open, valid_chunk_size, zero_hash};
use canvault_protocol::kit_api::{KitError, RestoreBeginRequest, RestoreChunksRequest};
use canvault_protocol::merkle::image_root_of_bytes;
use canvault_protocol::vault_api::ChunkBody;
use ic_cdk::api::{msg_caller, time};
use ic_cdk::{query, update};

/// Largest image the target stages (test images are small).
const MAX_IMAGE: u64 = 64 << 20;

#[derive(Default)]
struct State {
    armed: Option<(Principal, u64)>,
    begun: Option<RestoreBeginRequest>,
    image: Vec<u8>,
    received: BTreeSet<u32>,
    restored: Option<(u64, Hash256, u64)>,
    trap_until_ns: u64,
    calls: (u32, u32, u32),
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with_borrow_mut(f)
}

/// Allows `vault` to push `snapshot_id`.
#[update]
fn arm(vault: Principal, snapshot_id: u64) {
    with_state(|s| s.armed = Some((vault, snapshot_id)));
}

/// Chunk calls trap until `time_ns`.
#[update]
fn trap_chunk_calls_until(time_ns: u64) {
    with_state(|s| s.trap_until_ns = time_ns);
}

/// The armed vault and snapshot, checked on every restore call.
fn check_armed(s: &State, snapshot_id: u64) -> Result<(), KitError> {
    let (vault, armed) = s.armed.ok_or(KitError::NotArmed)?;
    if msg_caller() != vault {
        return Err(KitError::Unauthorized(msg_caller()));
    }
    if armed != snapshot_id {
        return Err(KitError::WrongSnapshot {
            armed,
            got: snapshot_id,
        });
    }
    Ok(())
}

/// Starts staging an image.
#[update]
fn canvault_restore_begin(req: RestoreBeginRequest) -> Result<(), KitError> {
    with_state(|s| {
        s.calls.0 += 1;
        check_armed(s, req.snapshot_id)?;
        if !valid_chunk_size(req.chunk_size) || req.image_size > MAX_IMAGE {
            return Err(KitError::InvalidRequest("bad geometry".into()));
        }
        s.image = vec![0; req.image_size as usize];
        s.received.clear();
        s.begun = Some(req);
        Ok(())
    })
}

/// Verifies and stages chunks; returns the number of distinct chunks staged.
#[update]
fn canvault_restore_chunks(req: RestoreChunksRequest) -> Result<u32, KitError> {
    if time() < with_state(|s| s.trap_until_ns) {
        ic_cdk::trap("test target: chunk calls trap for now");
    }
    with_state(|s| {
        s.calls.1 += 1;
        check_armed(s, req.snapshot_id)?;
        let begun = s
            .begun
            .clone()
            .ok_or(KitError::InvalidRequest("not begun".into()))?;
        for c in &req.chunks {
            let bad = |reason: String| KitError::BadChunk {
                index: c.index,
                reason,
            };
            if c.index >= chunk_count(begun.image_size, begun.chunk_size)
                || c.len != chunk_len(c.index, begun.image_size, begun.chunk_size)
            {
                return Err(bad("bad index or length".into()));
            }
            let start = c.index as usize * begun.chunk_size as usize;
            let target = &mut s.image[start..start + c.len as usize];
            match &c.body {
                ChunkBody::Data { codec, bytes } => {
                    let raw =
                        open(*codec, bytes, c.len, &c.hash).map_err(|e| bad(e.to_string()))?;
                    target.copy_from_slice(&raw);
                }
                ChunkBody::Zero if c.hash == zero_hash(c.len) => target.fill(0),
                ChunkBody::Zero | ChunkBody::Known => return Err(bad("unexpected body".into())),
            }
            s.received.insert(c.index);
        }
        Ok(s.received.len() as u32)
    })
}

/// Checks the staged image against the announced root and "switches" to it.
#[update]
fn canvault_restore_finish(snapshot_id: u64) -> Result<(), KitError> {
    with_state(|s| {
        s.calls.2 += 1;
        check_armed(s, snapshot_id)?;
        let begun = s
            .begun
            .clone()
            .ok_or(KitError::InvalidRequest("not begun".into()))?;
        let count = chunk_count(begun.image_size, begun.chunk_size);
        if let Some(first) = (0..count).find(|i| !s.received.contains(i)) {
            let missing = count - s.received.len() as u32;
            return Err(KitError::Incomplete { missing, first });
        }
        let computed = image_root_of_bytes(&s.image, begun.chunk_size);
        if computed != begun.root {
            return Err(KitError::RootMismatch {
                expected: begun.root,
                computed,
            });
        }
        s.restored = Some((snapshot_id, computed, begun.image_size));
        s.armed = None;
        Ok(())
    })
}

/// The last restore applied: snapshot, root recomputed from the bytes, image size.
#[query]
fn restored() -> Option<(u64, Hash256, u64)> {
    with_state(|s| s.restored)
}

/// Calls received (begin, chunks, finish), not counting trapped ones.
#[query]
fn calls() -> (u32, u32, u32) {
    with_state(|s| s.calls)
}
