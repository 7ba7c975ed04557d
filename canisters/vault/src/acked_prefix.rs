//! The acknowledged prefix of a pipelined restore push.
//!
//! Batches are sent in index order but their replies come back in any order. A restore
//! job's record only ever stores a contiguous prefix (every chunk below `next_index` was
//! acknowledged), so an upgrade or a lost pipeline resumes without a gap. This tracker
//! holds the batches acknowledged beyond the prefix until the ones before them are.
//!
//! Invariant: every held range starts above `next_index`, and the ranges do not overlap.

use std::collections::BTreeMap;

/// Acknowledged ranges, folded into a contiguous prefix as the gaps close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckedPrefix {
    next_index: u32,
    /// Acknowledged beyond the prefix: start → (end, encoded bytes).
    ahead: BTreeMap<u32, (u32, u64)>,
}

impl AckedPrefix {
    /// A prefix that ends at `next_index`.
    pub fn new(next_index: u32) -> Self {
        Self {
            next_index,
            ahead: BTreeMap::new(),
        }
    }

    /// The first index not known acknowledged.
    pub fn next_index(&self) -> u32 {
        self.next_index
    }

    /// Records that `[start, end)` (`bytes` encoded bytes) was acknowledged. Returns the
    /// new prefix end and the bytes it gained, if it moved. A range at or below the
    /// prefix (a repeat) changes nothing.
    pub fn acknowledge(&mut self, start: u32, end: u32, bytes: u64) -> Option<(u32, u64)> {
        if end <= self.next_index {
            return None;
        }
        self.ahead.insert(start.max(self.next_index), (end, bytes));
        let mut gained = 0;
        let before = self.next_index;
        while let Some((end, bytes)) = self.ahead.remove(&self.next_index) {
            self.next_index = end;
            gained += bytes;
        }
        (self.next_index > before).then_some((self.next_index, gained))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_acks_move_the_prefix_at_once() {
        let mut p = AckedPrefix::new(0);
        assert_eq!(p.acknowledge(0, 10, 100), Some((10, 100)));
        assert_eq!(p.acknowledge(10, 25, 50), Some((25, 50)));
        assert_eq!(p.next_index(), 25);
    }

    #[test]
    fn an_ack_past_a_gap_waits_for_the_gap() {
        let mut p = AckedPrefix::new(5);
        assert_eq!(p.acknowledge(20, 30, 7), None);
        assert_eq!(p.acknowledge(12, 20, 3), None);
        assert_eq!(p.next_index(), 5);
        assert_eq!(p.acknowledge(5, 12, 1), Some((30, 11)));
        assert_eq!(p.acknowledge(30, 31, 0), Some((31, 0)));
    }

    #[test]
    fn repeats_below_the_prefix_change_nothing() {
        let mut p = AckedPrefix::new(0);
        p.acknowledge(0, 10, 1);
        assert_eq!(p.acknowledge(0, 10, 1), None);
        assert_eq!(p.acknowledge(3, 8, 1), None);
        assert_eq!(p.next_index(), 10);
    }
}
