//! The floor of a cross-subnet transfer under the harness's model, shared by
//! `throughput_bench` and the large-image test.

use ic_harness::limits::MAX_BLOCK_PAYLOAD_BYTES;

/// The fewest rounds in which a sender can move `bytes` of requests to another subnet
/// with `latency` rounds each way: one block of `MAX_BLOCK_PAYLOAD_BYTES` per round
/// carries the stream, plus three sequential round trips no pipeline removes (begin,
/// the last batch, commit or finish), each `2 × latency + 1` rounds.
pub fn floor_rounds(bytes: u64, latency: u64) -> u64 {
    bytes.div_ceil(MAX_BLOCK_PAYLOAD_BYTES) + 3 * (2 * latency + 1)
}

/// The `p`th percentile (nearest rank) of `samples`; 0 when there are none.
pub fn percentile(samples: &[u64], p: f64) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    let mut v = samples.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// This process's peak and current resident memory (VmHWM, VmRSS) in bytes, from
/// /proc/self/status (0 where unavailable).
pub fn resident_memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}
