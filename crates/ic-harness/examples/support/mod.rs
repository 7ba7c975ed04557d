//! What the harness examples compute on the host to check the conformance canister's
//! stable-memory fills.

const MIB: u64 = 1024 * 1024;

/// The canister's `fill_word`, on the host.
pub fn fill_word(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The canister's `stable_checksum` over what `stable_fill` wrote, on the host.
pub fn host_checksum(offset_mib: u64, mib: u64, seed: u64) -> u64 {
    let first = offset_mib * MIB / 8;
    let words = mib * MIB / 8;
    (first..first + words).fold(0xcbf2_9ce4_8422_2325, |acc, index| {
        (acc ^ fill_word(seed, index)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
