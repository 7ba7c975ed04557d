#!/usr/bin/env bash
# Runs every benchmark program, overwriting tests/bench-results/<bench>.json, then
# regenerates the tables of docs/benchmarks.md from them (bench_tables).
#
# Usage: scripts/bench-all.sh            # the documented sizes (takes hours on 2 cores)
#        SIZE_MIB=16 scripts/bench-all.sh  # every bench at SIZE_MIB (a quick check)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/build-wasm.sh >/dev/null
run() {
    echo "bench-all: $*" >&2
    cargo run --release -q -p canvault-scenarios --bin "$@"
}
run backup_bench -- "${SIZE_MIB:-1024}" 64
run codec_bench -- "${SIZE_MIB:-64}" 64
run canister_copy_bench -- "${SIZE_MIB:-256}"
run alternatives_bench -- "${SIZE_MIB:-256}"
cargo run -q -p canvault-scenarios --bin bench_tables
git status --short tests/bench-results docs/benchmarks.md
