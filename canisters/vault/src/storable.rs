//! Stable encodings shared by the vault's records.
//!
//! Small records that change shape over time (snapshot records, jobs, config) are stored
//! as candid, which is self-describing (`DIDL` magic) and decodes older values after
//! `opt` fields are added. Hot fixed-shape records (chunk index, table entries) use a
//! hand-written binary layout starting with a layout version byte, documented where
//! they are defined.

/// Implements `Storable` for a candid type: unbounded, candid-encoded.
macro_rules! candid_storable {
    ($ty:ty) => {
        impl ::ic_stable_structures::Storable for $ty {
            fn to_bytes(&self) -> ::std::borrow::Cow<'_, [u8]> {
                ::std::borrow::Cow::Owned(
                    ::candid::encode_one(self).expect("candid encoding of a stored record"),
                )
            }

            fn into_bytes(self) -> Vec<u8> {
                ::candid::encode_one(&self).expect("candid encoding of a stored record")
            }

            fn from_bytes(bytes: ::std::borrow::Cow<'_, [u8]>) -> Self {
                ::candid::decode_one(&bytes).expect("candid decoding of a stored record")
            }

            const BOUND: ::ic_stable_structures::storable::Bound =
                ::ic_stable_structures::storable::Bound::Unbounded;
        }
    };
}

pub(crate) use candid_storable;

/// Reads a little-endian `u32` at `at`.
pub(crate) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Reads a little-endian `u64` at `at`.
pub(crate) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}
