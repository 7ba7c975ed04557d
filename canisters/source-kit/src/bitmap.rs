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
        self.reserve_words(w + 1);
        if on {
            self.words[w] |= 1 << bit;
        } else {
            self.words[w] &= !(1 << bit);
        }
        self.memory
            .write(w as u64 * 8, &self.words[w].to_le_bytes());
        true
    }

    /// Grows the heap copy and the memory to hold at least `words` words.
    fn reserve_words(&mut self, words: usize) {
        if words <= self.words.len() {
            return;
        }
        self.words.resize(words, 0);
        let needed_pages = (words as u64 * 8).div_ceil(WASM_PAGE);
        let have = self.memory.size();
        if needed_pages > have {
            assert!(
                self.memory.grow(needed_pages - have) >= 0,
                "stable memory exhausted"
            );
        }
    }

    /// Writes the heap words `from..to` through in one memory write.
    fn write_words(&self, from: usize, to: usize) {
        if from >= to {
            return;
        }
        let bytes: Vec<u8> = self.words[from..to]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        self.memory.write(from as u64 * 8, &bytes);
    }

    /// Adds every index in `0..n`: word-wise, one memory write (O(n/64)).
    pub fn set_range(&mut self, n: u32) {
        let full = n as usize / 64;
        let rest = n % 64;
        let words = full + usize::from(rest != 0);
        self.reserve_words(words);
        for w in &mut self.words[..full] {
            *w = u64::MAX;
        }
        if rest != 0 {
            self.words[full] |= (1u64 << rest) - 1;
        }
        self.write_words(0, words);
    }

    /// Adds every index of `other` below `n`: word-wise, one memory write (O(n/64)).
    pub fn union_below<N: Memory>(&mut self, other: &Bitmap<N>, n: u32) {
        let words = (n as usize).div_ceil(64).min(other.words.len());
        self.reserve_words(words);
        for (w, o) in other.words[..words].iter().enumerate() {
            let mask = if (w + 1) * 64 <= n as usize {
                u64::MAX
            } else {
                (1u64 << (n % 64)) - 1
            };
            self.words[w] |= o & mask;
        }
        self.write_words(0, words);
    }

    /// Empties the set: one memory write over the words in use (O(words)).
    pub fn clear_all(&mut self) {
        let Some(last) = self.words.iter().rposition(|w| *w != 0) else {
            return;
        };
        self.words[..=last].fill(0);
        self.write_words(0, last + 1);
    }

    /// The smallest index `>= from` in the set.
    #[must_use]
    pub fn next_from(&self, from: u32) -> Option<u32> {
        let mut w = from as usize / 64;
        let mut word = *self.words.get(w)? & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return Some(w as u32 * 64 + word.trailing_zeros());
            }
            w += 1;
            word = *self.words.get(w)?;
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

        #[test]
        fn bulk_operations_match_a_btreeset(
            a in proptest::collection::btree_set(0u32..3000, 0..200),
            b in proptest::collection::btree_set(0u32..3000, 0..200),
            n in 0u32..3100,
            from in 0u32..3100,
        ) {
            let mem = VectorMemory::default();
            let mut x = Bitmap::load(mem.clone());
            let mut y = Bitmap::load(VectorMemory::default());
            for i in &a { x.set(*i); }
            for i in &b { y.set(*i); }
            x.union_below(&y, n);
            let model: BTreeSet<u32> = a.iter().copied().chain(b.iter().copied().filter(|i| *i < n)).collect();
            prop_assert_eq!(Bitmap::load(mem.clone()).iter_from(0).collect::<BTreeSet<_>>(), model.clone());
            prop_assert_eq!(x.next_from(from), model.range(from..).next().copied());
            x.set_range(n);
            let model: BTreeSet<u32> = model.into_iter().chain(0..n).collect();
            prop_assert_eq!(Bitmap::load(mem.clone()).iter_from(0).collect::<BTreeSet<_>>(), model);
            x.clear_all();
            prop_assert_eq!(Bitmap::load(mem).count(), 0);
            prop_assert_eq!(x.next_from(0), None);
        }
    }
}
