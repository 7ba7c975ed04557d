#!/usr/bin/env bash
# The main job on a fresh machine: builds the canister wasm (installing the wasm32
# target if missing), then runs `canvault demo` on the in-process IC: deploys the
# factory, the example app and a vault on another subnet, fills the app (256 MiB),
# backs it up in full and incrementally, deletes it, restores it into a fresh canister
# on a third subnet, verifies it byte for byte and prints a report.
#
# Usage: scripts/demo.sh [demo options, e.g. --size-mib 1024 --json report.json]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/build-wasm.sh
cargo run --release -p canvault-cli -- demo "$@"
