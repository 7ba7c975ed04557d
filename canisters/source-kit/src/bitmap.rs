//! A bitmap persisted in a stable `Memory`, with a heap copy for O(1) reads.
//!
//! Layout: word `w` (bits `64w..64w+63`, little-endian) at byte offset `8w`.
//! Invariant: the heap copy equals the persisted words; every change writes through.

use ic_stable_structures::Memory;

const WASM_PAGE: u64 = 65_536;

/// A set of chunk indices.
pub struct Bitmap<M: Memory> {
    memory: M,
    words: Vec<u64>,
}

impl<M: Memory> Bitmap<M> {
    /// Loads the bitmap persisted in `memory` (empty memory: empty set).
    pub fn load(memory: M) -> Self {
        let bytes = memory.size() * WASM_PAGE;
        let mut buf = vec![0u8; usize::try_from(bytes).expect("bitmap fits the heap")];
        memory.read(0, &mut buf);
        let words = buf
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
            .collect();
        Self { memory, words }
    }

    /// True if `i` is in the set.
    #[must_use]
    pub fn get(&self, i: u32) -> bool {
        let (w, bit) = (i as usize / 64, i % 64);
        self.words.get(w).is_some_and(|word| word & (1 << bit) != 0)
    }

    /// Adds `i`; true if it was absent.
    pub fn set(&mut self, i: u32) -> bool {
        self.update(i, true)
    }

    /// Removes `i`; true if it was present.
    pub fn clear(&mut self, i: u32) -> bool {
        self.update(i, false)
    }

    fn update(&mut self, i: u32, on: bool) -> bool {
        let (w, bit) = (i as usize / 64, i % 64);
        if self.get(i) == on {
            return false;
        }
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
            let needed_pages = (self.words.len() as u64 * 8).div_ceil(WASM_PAGE);
            let have = self.memory.size();
            if needed_pages > have {
                assert!(
                    self.memory.grow(needed_pages - have) >= 0,
                    "stable memory exhausted"
                );
            }
        }
        if on {
            self.words[w] |= 1 << bit;
        } else {
            self.words[w] &= !(1 << bit);
        }
        self.memory
            .write(w as u64 * 8, &self.words[w].to_le_bytes());
        true
    }

    /// Adds every index in `0..n`.
    pub fn set_range(&mut self, n: u32) {
        for i in 0..n {
            self.set(i);
        }
    }

    /// Empties the set.
    pub fn clear_all(&mut self) {
        for w in 0..self.words.len() {
            if self.words[w] != 0 {
                self.words[w] = 0;
                self.memory.write(w as u64 * 8, &[0; 8]);
            }
        }
    }

    /// Number of indices in the set.
    #[must_use]
    pub fn count(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    /// The indices in the set, ascending, starting at `from`.
    pub fn iter_from(&self, from: u32) -> impl Iterator<Item = u32> + '_ {
        let start_word = from as usize / 64;
        self.words
            .iter()
            .enumerate()
            .skip(start_word)
            .flat_map(|(w, word)| {
                let mut bits = *word;
                std::iter::from_fn(move || {
                    if bits == 0 {
                        return None;
                    }
                    let b = bits.trailing_zeros();
                    bits &= bits - 1;
                    Some(w as u32 * 64 + b)
                })
            })
            .filter(move |i| *i >= from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::VectorMemory;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #[test]
        fn matches_a_btreeset_and_survives_reload(ops in proptest::collection::vec((any::<bool>(), 0u32..5000), 0..300)) {
            let mem = VectorMemory::default();
            let mut bm = Bitmap::load(mem.clone());
            let mut model = BTreeSet::new();
            for (on, i) in ops {
                if on {
                    prop_assert_eq!(bm.set(i), model.insert(i));
                } else {
                    prop_assert_eq!(bm.clear(i), model.remove(&i));
                }
            }
            let reloaded = Bitmap::load(mem);
            prop_assert_eq!(reloaded.count() as usize, model.len());
            prop_assert_eq!(reloaded.iter_from(0).collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
            let from = 1234;
            prop_assert_eq!(reloaded.iter_from(from).collect::<Vec<_>>(), model.range(from..).copied().collect::<Vec<_>>());
        }
    }
}
