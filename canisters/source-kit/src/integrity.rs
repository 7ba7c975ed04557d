//! Recognising the kit's own stable-memory layout, so the kit never re-initialises over
//! memory it did not write and says when something else wrote to it.
//!
//! The kit owns the raw stable memory through an `ic-stable-structures` `MemoryManager`
//! (magic `MGR`, layout version 1, buckets of `bucket_size` pages after a one-page
//! header); its state cell (memory 2) is a `StableCell` (magic `SCL`) whose value
//! carries its own magic and SHA-256 (`state.rs`). An app that writes through raw
//! `ic0.stable*` (or `ic_cdk::stable`) APIs bypasses all of this: such writes are
//! never backed up, and a write over the header would lose every structure.

use ic_stable_structures::Memory;

const MANAGER_MAGIC: &[u8; 3] = b"MGR";
const MANAGER_LAYOUT_VERSION: u8 = 1;
const CELL_MAGIC: &[u8; 3] = b"SCL";

/// Why raw stable memory is not (or no longer only) the kit's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Foreign {
    /// The memory manager's header is not there: something overwrote it, or the
    /// memory was written by other code before the kit.
    NoManagerHeader,
    /// The header names a layout version the kit does not know.
    UnknownManagerVersion(u8),
    /// The memory manager holds no kit state cell (memory in use by other code).
    NoStateCell,
    /// Raw stable memory is larger than the memory manager allocated: something grew
    /// it behind the kit's back (raw `stable_grow`).
    GrownBehindTheKit {
        /// Pages the memory manager accounts for.
        expected_pages: u64,
        /// Pages the raw memory has.
        actual_pages: u64,
    },
}

impl std::fmt::Display for Foreign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoManagerHeader => write!(
                f,
                "stable memory does not start with the kit's memory-manager header (written by raw stable-memory APIs?)"
            ),
            Self::UnknownManagerVersion(v) => {
                write!(f, "unknown memory-manager layout version {v}")
            }
            Self::NoStateCell => write!(f, "stable memory holds no kit state cell"),
            Self::GrownBehindTheKit {
                expected_pages,
                actual_pages,
            } => write!(
                f,
                "raw stable memory has {actual_pages} pages but the kit allocated {expected_pages}: it was grown by raw stable-memory APIs, whose content is not backed up"
            ),
        }
    }
}

/// Checks the memory manager's header in `raw` (non-empty memory).
///
/// # Errors
/// What is wrong with it.
pub fn check_manager_header<M: Memory>(raw: &M) -> Result<(), Foreign> {
    if raw.size() == 0 {
        return Err(Foreign::NoManagerHeader);
    }
    let mut header = [0u8; 8];
    raw.read(0, &mut header);
    if &header[..3] != MANAGER_MAGIC {
        return Err(Foreign::NoManagerHeader);
    }
    if header[3] != MANAGER_LAYOUT_VERSION {
        return Err(Foreign::UnknownManagerVersion(header[3]));
    }
    Ok(())
}

/// Checks that the kit's state memory holds a stable cell (a non-empty memory without
/// one was written by other code, and `StableCell::init` would silently overwrite it).
///
/// # Errors
/// No cell.
pub fn check_state_cell<M: Memory>(state_memory: &M) -> Result<(), Foreign> {
    if state_memory.size() == 0 {
        return Err(Foreign::NoStateCell);
    }
    let mut magic = [0u8; 3];
    state_memory.read(0, &mut magic);
    if &magic != CELL_MAGIC {
        return Err(Foreign::NoStateCell);
    }
    Ok(())
}

/// Compares raw memory with what the memory manager allocated: one header page and
/// `buckets × bucket_size` pages. `None` when it is all the kit's.
pub fn foreign_use<M: Memory>(raw: &M) -> Option<Foreign> {
    if let Err(e) = check_manager_header(raw) {
        return Some(e);
    }
    let mut header = [0u8; 8];
    raw.read(0, &mut header);
    let buckets = u64::from(u16::from_le_bytes([header[4], header[5]]));
    let bucket_pages = u64::from(u16::from_le_bytes([header[6], header[7]]));
    let expected_pages = 1 + buckets * bucket_pages;
    let actual_pages = raw.size();
    (actual_pages > expected_pages).then_some(Foreign::GrownBehindTheKit {
        expected_pages,
        actual_pages,
    })
}
