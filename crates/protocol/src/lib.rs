//! canvault's wire protocol, shared by the source kit, the vault and the CLI.
//!
//! - [`chunk`]: how an image is cut into fixed, aligned chunks, sealed into frames
//!   (deflate or raw) addressed by the SHA-256 of the frame, and verified;
//! - [`merkle`]: the image root, a Merkle tree over chunk digests bound to the geometry;
//! - [`vault_api`] and [`kit_api`]: the candid types of both canister interfaces;
//! - [`canister_image`]: whole-canister images (native snapshots laid out as images) and
//!   the candid types of the vault's canister-copy jobs;
//! - [`flow`]: the adaptive in-flight limit of pipelined transfers (both directions);
//! - [`decode`]: the candid decoding quotas the canisters apply to what they receive;
//! - `golden` (feature `golden`, tests only): byte-for-byte checks of persistent formats
//!   against gzipped golden files.
//!
//! Pure Rust: no ic-cdk, builds for wasm32 and for the host.

pub mod canister_image;
pub mod chunk;
pub mod decode;
pub mod flow;
#[cfg(feature = "golden")]
pub mod golden;
mod hash;
pub mod kit_api;
pub mod merkle;
pub mod vault_api;

pub use chunk::{ChunkError, Codec};
pub use hash::Hash256;
