#!/usr/bin/env bash
# The main job on a fresh machine: builds the canister wasm (installing the wasm32
# target if missing) and runs the harness tour on real canister wasm.
#
# Usage: scripts/demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/build-wasm.sh
cargo run --release -p ic-harness --example tour
