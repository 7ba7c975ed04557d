//! Shared by every fuzz target (protocol and CLI): the allocation cap, the committed
//! corpus, the mutation strategy and the case count.
//!
//! Each target (a) replays every file of its corpus directory, whose name says what is
//! expected of it (`valid-*` parses and round-trips, `bad-*` is refused with a typed
//! error, anything else must only not panic), and (b) runs a proptest of random
//! mutations of corpus entries: bit flips, truncations, splices of two entries, byte
//! insertions and deletions, and length fields overwritten with huge values.
//!
//! Bounded allocation is checked for real: the test binary's global allocator refuses
//! any allocation that would take the process past [`ALLOC_LIMIT`], which aborts the
//! test binary with "memory allocation of N bytes failed". A parser that allocates
//! what a hostile length field declares (2^32 or 2^40 bytes) cannot pass.

#![allow(dead_code)] // each target uses a part of this module

use std::alloc::System;
use std::path::{Path, PathBuf};

use cap::Cap;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

/// Most bytes the whole test process may hold at once. Valid inputs of the corpus are a
/// few MiB; two test threads each parse one at a time.
pub const ALLOC_LIMIT: usize = 256 * 1024 * 1024;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, ALLOC_LIMIT);

/// Raises the process-wide cap to `bytes` (a target whose valid inputs are large, such
/// as a kit's whole stable memory). Hostile claims (terabytes) stay far above it.
pub fn raise_alloc_limit(bytes: usize) {
    if ALLOCATOR.limit() < bytes {
        ALLOCATOR
            .set_limit(bytes)
            .expect("raising the limit always succeeds");
    }
}

/// Bytes the process holds now (for diagnostics).
pub fn allocated() -> usize {
    ALLOCATOR.allocated()
}

/// Proptest cases per mutation property: `PROPTEST_CASES` if set, else `default`
/// (modest, so that every fuzz target together stays within a minute in a debug build).
pub fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        // Shrinking replays the parser many times on large inputs: keep it bounded.
        max_shrink_iters: 256,
        failure_persistence: None,
        ..Config::default()
    }
}

/// `<crate>/fuzz-corpus/<target>`.
pub fn corpus_dir(manifest_dir: &str, target: &str) -> PathBuf {
    Path::new(manifest_dir).join("fuzz-corpus").join(target)
}

/// Every entry of a corpus directory (files, or directories for targets whose input is
/// a directory), sorted by name.
pub fn corpus_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()))
        .map(|e| e.expect("a corpus entry").path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "corpus {} is empty", dir.display());
    entries
}

/// The bytes of every file of a corpus directory, with their names.
pub fn corpus_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    corpus_entries(dir)
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name, bytes)
        })
        .collect()
}

/// What a corpus entry's name promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `valid-*`: parses, and round-trips.
    Valid,
    /// `bad-*`: refused with a typed error.
    Bad,
    /// Anything else: must not panic or over-allocate; either outcome is fine.
    Any,
}

/// The expectation a corpus entry's name states.
pub fn expect_of(name: &str) -> Expect {
    if name.starts_with("valid-") {
        Expect::Valid
    } else if name.starts_with("bad-") {
        Expect::Bad
    } else {
        Expect::Any
    }
}

/// (Re)writes a corpus directory from `entries` (name, bytes): the `#[ignore]`d
/// generators call it; the files are committed.
pub fn write_corpus(dir: &Path, entries: &[(String, Vec<u8>)]) {
    std::fs::create_dir_all(dir).expect("create the corpus directory");
    for (name, bytes) in entries {
        std::fs::write(dir.join(name), bytes).expect("write a corpus file");
    }
}

/// Huge values a length field is overwritten with.
const INFLATED: [u64; 6] = [
    u32::MAX as u64,
    1 << 31,
    (1 << 20) + 1,
    1 << 32,
    1 << 40,
    u64::MAX,
];

/// One edit of an input.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Flip one bit.
    Flip(Index, u8),
    /// Keep only a prefix.
    Truncate(Index),
    /// Replace the tail from a point with the tail of another corpus entry.
    Splice(Index, Index, Index),
    /// Insert bytes.
    Insert(Index, Vec<u8>),
    /// Remove up to n bytes.
    Delete(Index, u8),
    /// Overwrite 4 bytes with a little-endian u32 length.
    InflateU32(Index, usize),
    /// Overwrite 8 bytes with a little-endian u64 length.
    InflateU64(Index, usize),
    /// Overwrite bytes with the LEB128 encoding of a huge length (candid's lengths).
    InflateLeb(Index, usize),
}

/// A random edit.
pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        2 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(a, o, b)| Mutation::Splice(a, o, b)),
        1 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => (any::<Index>(), 1u8..32).prop_map(|(i, n)| Mutation::Delete(i, n)),
        2 => (any::<Index>(), 0..INFLATED.len()).prop_map(|(i, k)| Mutation::InflateU32(i, k)),
        1 => (any::<Index>(), 0..INFLATED.len()).prop_map(|(i, k)| Mutation::InflateU64(i, k)),
        2 => (any::<Index>(), 0..INFLATED.len()).prop_map(|(i, k)| Mutation::InflateLeb(i, k)),
    ]
}

/// An entry of a corpus of `n` entries and one to four edits of it.
pub fn mutated(n: usize) -> impl Strategy<Value = (usize, Vec<Mutation>)> {
    (0..n, proptest::collection::vec(mutation(), 1..5))
}

fn leb128(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn overwrite(bytes: &mut Vec<u8>, at: Index, with: &[u8]) {
    if bytes.is_empty() {
        bytes.extend_from_slice(with);
        return;
    }
    let start = at.index(bytes.len());
    let end = (start + with.len()).min(bytes.len());
    bytes.splice(start..end, with.iter().copied());
}

/// Applies edits to a copy of `corpus[pick]` (splices draw from the other entries).
pub fn apply(corpus: &[(String, Vec<u8>)], pick: usize, edits: &[Mutation]) -> Vec<u8> {
    let mut bytes = corpus[pick].1.clone();
    for m in edits {
        let len = bytes.len();
        match m {
            Mutation::Flip(i, bit) if len > 0 => bytes[i.index(len)] ^= 1u8 << *bit,
            Mutation::Truncate(i) if len > 0 => bytes.truncate(i.index(len)),
            Mutation::Splice(a, other, b) => {
                let donor = &corpus[other.index(corpus.len())].1;
                let cut = if len > 0 { a.index(len) } else { 0 };
                let from = if donor.is_empty() {
                    0
                } else {
                    b.index(donor.len())
                };
                bytes.truncate(cut);
                bytes.extend_from_slice(&donor[from..]);
            }
            Mutation::Insert(i, v) => {
                let at = if len > 0 { i.index(len + 1) } else { 0 };
                bytes.splice(at..at, v.iter().copied());
            }
            Mutation::Delete(i, n) if len > 0 => {
                let at = i.index(len);
                let end = (at + usize::from(*n)).min(len);
                bytes.drain(at..end);
            }
            Mutation::InflateU32(i, k) => {
                let v = INFLATED[*k] as u32;
                overwrite(&mut bytes, *i, &v.to_le_bytes());
            }
            Mutation::InflateU64(i, k) => {
                overwrite(&mut bytes, *i, &INFLATED[*k].to_le_bytes());
            }
            Mutation::InflateLeb(i, k) => {
                overwrite(&mut bytes, *i, &leb128(INFLATED[*k]));
            }
            _ => {}
        }
    }
    bytes
}
