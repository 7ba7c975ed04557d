//! Stable encodings of the factory's records: candid, which is self-describing (`DIDL`
//! magic) and still decodes older values after `opt` fields are added.

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
