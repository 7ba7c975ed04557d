//! Adopting an existing canister's stable memory into the kit's layout in ONE upgrade.
//!
//! Before: raw stable memory holds the app's bytes `old[0..S)`, `S = P` wasm pages,
//! written through `ic0.stable*` directly or by the app's own `MemoryManager`.
//! After: the kit's layout (`kit.rs`) whose image A is exactly `old[0..S)`
//! (`image_pages = P`), so the app's structures re-open unchanged on
//! `canvault_kit::memory()`.
//!
//! The kit's memory manager keeps its header in raw page 0 and hands buckets of 128
//! pages out in order from page 1. When image A is the first memory to grow, its
//! buckets are `0..n`, contiguous: image offset `x` is raw offset `PAGE + x`. So
//! [`relocate`]:
//! 1. grows raw memory by one page (`P + 1` pages);
//! 2. moves `old[0..S)` one page up, block by block from the top down ([`move_up_step`]);
//! 3. zeroes page 0 (its old bytes now live in page 1) and writes the kit's
//!    memory-manager header there;
//! 4. grows image A to `P` pages: buckets `0..n` over raw pages `1..1+128n`, nothing
//!    written into them.
//!
//! The kit then creates its own structures (`Kit::adopt`): their buckets come after
//! image A's, at raw page `1 + 128n >= 1 + P` or above, so they never overlap the image.
//!
//! Invariants (checked by the unit tests and a proptest over sizes, app layouts, block
//! sizes and interruption points):
//! - *writes trail reads*: the move reads block `[o, o+len)` and writes
//!   `[o+PAGE, o+PAGE+len)`, going down; every byte it overwrites lies at or above
//!   `o + PAGE > o`, i.e. in a block already read. After any number of steps with cursor
//!   `c`, `raw[x] = old[x]` for `x < c` and `raw[x + PAGE] = old[x]` for `x >= c`: no
//!   old byte is ever lost at any interruption point.
//! - nothing below raw page `1 + P` is written except by the move and by step 3, which
//!   only touches page 0 after the move has copied it.
//! - atomicity: `relocate` runs inside one `post_upgrade`; the IC commits an upgrade as
//!   one transaction, so a trap anywhere (instruction or stable-access limit, a later
//!   line of the app's `post_upgrade`) leaves the old module and the old stable memory
//!   exactly as they were. No in-between state is ever durable, so no resume is needed.
//!
//! Limits: the replica caps the stable memory one upgrade execution may access (and
//! dirty) at 8 GiB (`STABLE_MEMORY_ACCESSED_PAGE_LIMIT_UPGRADE`). The move reads and
//! writes `S + 64 KiB`; [`MAX_ADOPTION_BYTES`] (7 GiB) leaves 1 GiB of that for the
//! kit's structures, the old module's `pre_upgrade` and the app's own `post_upgrade`.
//! Instructions: about 2 per byte (one per byte read, one per byte written, by the
//! System API's charge), ~15B for 7 GiB, far below the 300B of an upgrade. Peak stable
//! memory: `S` + one page + the rounding of the last bucket (< 8 MiB) + the kit's own
//! structures (one 8 MiB bucket each), i.e. about 1x, never 2x. Larger memories are
//! refused with [`AdoptError::TooLarge`] before anything is written (the upgrade traps,
//! the IC keeps the old module): a multi-message move would need the app to run with a
//! half-moved memory, which this kit does not offer.

use ic_stable_structures::Memory;
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager};

use crate::state::{KitState, STATE_MAGIC};

/// Bytes per wasm page: the distance the old bytes move.
pub const PAGE: u64 = 65_536;

/// Largest stable memory adopted in one upgrade: 7 GiB (see the module docs).
pub const MAX_ADOPTION_BYTES: u64 = 7 << 30;

/// Bytes moved per step of the copy (one heap buffer).
pub const BLOCK_BYTES: u64 = 1 << 20;

/// Largest state-cell value read to recognise a generation-2 (bare candid) kit state.
const MAX_STATE_CELL_PROBE: u64 = 1 << 20;

/// What raw stable memory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Nothing: a fresh canister.
    Empty,
    /// The kit's layout: a kit memory manager whose state memory holds a kit state.
    Kit,
    /// Anything else: the app's own bytes, to be adopted.
    Foreign,
}

/// What an adopting `post_upgrade` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adoption {
    /// Stable memory was empty: the kit started with an empty image.
    Fresh,
    /// Stable memory already had the kit's layout: a normal `post_upgrade`.
    AlreadyKit,
    /// The old stable memory became the kit's image.
    Adopted {
        /// Bytes adopted (the old stable memory's size, whole pages).
        bytes: u64,
        /// Raw stable memory after the adoption (image, kit header and structures).
        raw_bytes_after: u64,
    },
}

/// Why stable memory cannot be adopted (nothing was written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdoptError {
    /// Larger than one upgrade may move.
    TooLarge {
        /// The old stable memory's size.
        bytes: u64,
        /// [`MAX_ADOPTION_BYTES`].
        limit: u64,
    },
    /// Raw stable memory could not grow by the page the move needs.
    GrowFailed,
}

impl std::fmt::Display for AdoptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge { bytes, limit } => write!(
                f,
                "stable memory of {bytes} bytes is larger than the {limit} bytes one upgrade can adopt; nothing was changed"
            ),
            Self::GrowFailed => write!(
                f,
                "raw stable memory cannot grow by the one page adoption needs; nothing was changed"
            ),
        }
    }
}

/// Classifies raw stable memory without writing to it. `Kit` needs the kit's
/// memory-manager header and, in its state memory (`state_id`), a stable cell whose
/// value carries the kit state's magic or decodes as a generation-2 kit state: an
/// app's own `MemoryManager` (same header) with, say, a `StableCell` in memory 2 is
/// `Foreign`. Anything with the kit state's magic is `Kit`, even if corrupt (the
/// kit then refuses to load it rather than adopt it as app bytes).
pub fn classify<M: Memory + Clone>(raw: &M, state_id: MemoryId) -> Layout {
    if raw.size() == 0 {
        return Layout::Empty;
    }
    if crate::integrity::check_manager_header(raw).is_err() {
        return Layout::Foreign;
    }
    // A memory manager with a valid header is loaded, not written.
    let manager = MemoryManager::init(raw.clone());
    let state = manager.get(state_id);
    if crate::integrity::check_state_cell(&state).is_err() {
        return Layout::Foreign;
    }
    let mut header = [0u8; 8];
    state.read(0, &mut header);
    let len = u64::from(u32::from_le_bytes([
        header[4], header[5], header[6], header[7],
    ]));
    let available = (state.size() * PAGE).saturating_sub(8);
    if header[3] != 1 || len > available {
        return Layout::Foreign;
    }
    let mut magic = [0u8; 8];
    if len >= magic.len() as u64 {
        state.read(8, &mut magic);
        if &magic == STATE_MAGIC {
            return Layout::Kit;
        }
    }
    if len > MAX_STATE_CELL_PROBE {
        return Layout::Foreign;
    }
    let mut value = vec![0u8; usize::try_from(len).expect("bounded")];
    state.read(8, &mut value);
    if KitState::decode(&value).is_ok() {
        Layout::Kit
    } else {
        Layout::Foreign
    }
}

/// One step of the move: copies `old[c-len, c)` to `c-len+PAGE` where `c = cursor`
/// and `len = min(block, c)`; returns the new cursor (`0`: done). Precondition: raw
/// memory holds at least `total + PAGE` bytes and bytes at or above `cursor` were moved.
pub fn move_up_step<M: Memory>(raw: &M, cursor: u64, block: u64, buf: &mut Vec<u8>) -> u64 {
    let len = block.min(cursor);
    let from = cursor - len;
    buf.resize(usize::try_from(len).expect("block fits usize"), 0);
    raw.read(from, buf);
    raw.write(from + PAGE, buf);
    from
}

/// Moves `raw`'s bytes one page up and lays the kit's memory manager over them, with
/// memory `image_id` (the first to grow) holding exactly the old bytes. Returns the
/// manager and the image's size in pages. Must be called on a [`Layout::Foreign`]
/// memory. See the module docs for the invariants.
///
/// # Errors
/// Too large, or raw memory cannot grow; nothing was written then.
pub fn relocate<M: Memory + Clone>(
    raw: &M,
    image_id: MemoryId,
    limit: u64,
    block: u64,
) -> Result<(MemoryManager<M>, u64), AdoptError> {
    let pages = raw.size();
    let bytes = pages * PAGE;
    if bytes > limit {
        return Err(AdoptError::TooLarge { bytes, limit });
    }
    if raw.grow(1) < 0 {
        return Err(AdoptError::GrowFailed);
    }
    let mut buf = Vec::new();
    let mut cursor = bytes;
    while cursor > 0 {
        cursor = move_up_step(raw, cursor, block.max(1), &mut buf);
    }
    drop(buf);
    // Page 0 is now a copy; clear it so the memory manager starts a new header
    // (an app's own "MGR" header there would otherwise be loaded).
    raw.write(0, &vec![0u8; PAGE as usize]);
    let manager = MemoryManager::init(raw.clone());
    let image = manager.get(image_id);
    assert_eq!(image.size(), 0, "the image is the first memory to grow");
    assert!(
        image.grow(pages) == 0,
        "the image grows over the moved bytes"
    );
    Ok((manager, pages))
}

#[cfg(test)]
mod tests;
