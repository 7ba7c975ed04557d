//! Real Motoko canisters for tests: `test-canisters/motoko/moc.js` installs the `motoko`
//! package of the npm registry into `<target>/motoko` on first use and compiles a source
//! with moc's default settings (a 64-bit `persistent actor`), caching the module there
//! keyed by a hash of the source, so only the first run pays for npm and moc.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The store canister of the harness's Motoko scenarios (stable and transient state).
pub const STORE_SOURCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/test-canisters/motoko/store.mo"
);

const MOC_JS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/test-canisters/motoko/moc.js");

/// The module moc compiles from `source`, or `None` (after a message on standard error)
/// when npm is not installed.
///
/// # Panics
/// npm is installed but the package cannot be installed, or moc rejects the source.
#[must_use]
pub fn compile(source: &Path) -> Option<Vec<u8>> {
    if Command::new("npm").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED: npm is not installed, so the motoko package (moc) cannot be fetched; \
             install Node.js and npm to run the Motoko scenarios"
        );
        return None;
    }
    // <target>/wasm32-unknown-unknown/canister -> <target>
    let target = crate::canister_wasm_dir()
        .ancestors()
        .nth(2)
        .map(PathBuf::from)
        .expect("the wasm dir is inside the target dir");
    let out = Command::new("node")
        .arg(MOC_JS)
        .arg(source)
        .arg(target.join("motoko"))
        .output()
        .expect("node runs (npm is installed, so is node)");
    assert!(
        out.status.success(),
        "moc.js failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8(out.stdout).expect("a utf-8 path");
    Some(std::fs::read(path.trim()).expect("the compiled module"))
}
