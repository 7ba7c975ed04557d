#!/usr/bin/env bash
# Builds every canister wasm module in the workspace (release, wasm32-unknown-unknown).
#
# A canister package is any workspace member with a `cdylib` library target, so new
# canisters (canisters/vault, canisters/factory, ...) are picked up without editing this
# script. Output: <target-dir>/wasm32-unknown-unknown/canister/<crate_name>.wasm, which is
# where `ic_harness::load_canister_wasm` looks.
#
# Usage: scripts/build-wasm.sh [extra cargo build args...]
set -euo pipefail

readonly TARGET="wasm32-unknown-unknown"
readonly PROFILE="canister"

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# 1. The wasm32 target: install it only when missing.
# (Captured first: with pipefail, `grep -q` closing the pipe early could fail the test.)
installed_targets="$(rustup target list --installed)"
if ! grep -qx "${TARGET}" <<<"${installed_targets}"; then
    echo "build-wasm: installing the ${TARGET} target (rustup target add)" >&2
    rustup target add "${TARGET}"
fi

# 2. Discover canister packages from the workspace metadata (its target_directory
#    already honours CARGO_TARGET_DIR and .cargo/config.toml).
metadata="$(cargo metadata --no-deps --format-version 1)"
discovered="$(
    printf '%s' "${metadata}" | python3 -c '
import json, sys

meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
print(meta["target_directory"])
for pkg in sorted(meta["packages"], key=lambda p: p["name"]):
    if pkg["id"] not in members:
        continue
    for target in pkg["targets"]:
        if "cdylib" in target.get("crate_types", []):
            # The wasm file is named after the library target, dashes as underscores.
            print(pkg["name"] + " " + target["name"].replace("-", "_"))
            break
'
)"

target_dir="$(printf '%s\n' "${discovered}" | head -n 1)"
mapfile -t canisters < <(printf '%s\n' "${discovered}" | tail -n +2)

if [[ ${#canisters[@]} -eq 0 ]]; then
    echo "build-wasm: no workspace member has crate-type = [\"cdylib\"]; nothing to build" >&2
    exit 0
fi

packages=()
for entry in "${canisters[@]}"; do
    packages+=("-p" "${entry%% *}")
done

# 3. One cargo invocation for all of them (shares the dependency build).
echo "build-wasm: building ${#canisters[@]} canister package(s): ${packages[*]}" >&2
cargo build --profile "${PROFILE}" --target "${TARGET}" "${packages[@]}" "$@"

# 4. Report what was produced.
out_dir="${target_dir}/${TARGET}/${PROFILE}"
status=0
echo
printf '%12s  %s\n' "bytes" "wasm module"
for entry in "${canisters[@]}"; do
    wasm="${out_dir}/${entry##* }.wasm"
    if [[ -f "${wasm}" ]]; then
        printf '%12s  %s\n' "$(stat -c %s "${wasm}")" "${wasm}"
    else
        printf '%12s  %s\n' "MISSING" "${wasm}"
        status=1
    fi
done
exit "${status}"
