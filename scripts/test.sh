#!/usr/bin/env bash
# Runs every check CI runs, in order: canister wasm build (installs the wasm32 target if
# missing), formatting, clippy with warnings denied, then all tests of the workspace.
#
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# rustfmt and clippy ship as rustup components; a minimal toolchain may lack them.
for component in rustfmt clippy; do
    if ! rustup component list --installed | grep -q "^${component}"; then
        rustup component add "${component}"
    fi
done

scripts/build-wasm.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
