//! Cross-subnet bandwidth: streams and blocks, as the replica's stream builder and XNet
//! payload builder bound them.
//!
//! - At the end of every round (and at the start of the next, for messages routed between
//!   rounds), messages move from output queues into their stream `(sender subnet,
//!   receiver subnet)` in send order while the stream holds fewer than
//!   `TARGET_STREAM_SIZE_BYTES` of undelivered messages; the rest wait, in order. A
//!   message routed into its stream at the end of round `r` may be inducted from round
//!   `r + latency_rounds`.
//! - Each round a subnet inducts at most `block_payload_bytes` (4 MiB) of ingress and
//!   incoming stream messages together; a message that does not fit waits for a later
//!   block, and so does everything behind it in its stream (per-stream FIFO). A block
//!   always takes at least one message.
//!
//! A message's size is its payload plus its method name (the replica counts a few dozen
//! bytes of envelope more). Stream bytes count messages not yet inducted; the replica
//! keeps them until the receiver's signals come back, about one latency later, so the
//! harness refills streams sooner (optimistic).

use std::collections::{BTreeMap, BTreeSet};

use super::{Harness, Message};
use crate::limits::TARGET_STREAM_SIZE_BYTES;
use crate::types::SubnetId;

/// A stream: (sender subnet, receiver subnet); `None` for users and the CMC.
type StreamKey = (Option<SubnetId>, Option<SubnetId>);

/// The bytes a message takes in a stream and a block.
pub(crate) fn wire_bytes(msg: &Message) -> u64 {
    let n = match msg {
        Message::Request(r) => r.arg.len() + r.method.len(),
        Message::Response(r) => match &r.result {
            Ok(bytes) => bytes.len(),
            Err(reject) => reject.message.len(),
        },
    };
    n as u64
}

impl Harness {
    /// Routes waiting messages into their streams while there is room; those routed now
    /// were routed at the end of round `routed_in`.
    pub(crate) fn build_streams(&mut self, routed_in: u64) {
        let mut backlog: BTreeMap<StreamKey, u64> = BTreeMap::new();
        let keys: Vec<StreamKey> = self
            .in_transit
            .iter()
            .map(|t| (t.from_subnet, self.destination_subnet(&t.msg)))
            .collect();
        for (t, key) in self.in_transit.iter().zip(&keys) {
            if t.in_stream {
                *backlog.entry(*key).or_default() += wire_bytes(&t.msg);
            }
        }
        let at = routed_in + self.config.latency_rounds;
        for (t, key) in self.in_transit.iter_mut().zip(keys) {
            if t.in_stream {
                continue;
            }
            let bytes = backlog.entry(key).or_default();
            if *bytes < TARGET_STREAM_SIZE_BYTES {
                *bytes += wire_bytes(&t.msg);
                t.in_stream = true;
                t.at = at;
            }
        }
    }

    /// Inducts the messages whose delivery round has come, within each receiving
    /// subnet's block; those from or to an offline subnet wait.
    pub(crate) fn deliver_due(&mut self) {
        let round = self.round;
        let block = self.config.block_payload_bytes;
        let pending = std::mem::take(&mut self.in_transit);
        let mut used: BTreeMap<SubnetId, u64> = BTreeMap::new();
        let mut stalled: BTreeSet<StreamKey> = BTreeSet::new();
        for t in pending {
            let dest = self.destination_subnet(&t.msg);
            let key = (t.from_subnet, dest);
            let blocked = t.from_subnet.is_some_and(|s| self.is_subnet_offline(s))
                || dest.is_some_and(|s| self.is_subnet_offline(s));
            let size = wire_bytes(&t.msg);
            let fits = dest.is_none_or(|d| {
                let u = used.get(&d).copied().unwrap_or(0);
                u == 0 || u.saturating_add(size) <= block
            });
            // Ingress and the CMC's messages are not one FIFO stream: only canisters'
            // streams keep order.
            let in_order = t.from_subnet.is_none() || !stalled.contains(&key);
            if !t.in_stream || t.at > round || blocked || !fits || !in_order {
                if t.from_subnet.is_some() {
                    stalled.insert(key);
                }
                self.in_transit.push(t);
            } else {
                if let Some(d) = dest {
                    *used.entry(d).or_default() += size;
                }
                let key = t.msg.queue_key();
                self.inputs.entry(key).or_default().push_back(t.msg);
            }
        }
    }
}
