#!/usr/bin/env bash
# Builds every guest plugin for wasm32-wasip2 and copies each component next to its
# plugin.toml as plugin.wasm. Respects CARGO_TARGET_DIR. Extra arguments go to cargo.
set -euo pipefail
cd "$(dirname "$0")"

cargo build --release "$@"

target_dir="${CARGO_TARGET_DIR:-target}"
out="$target_dir/wasm32-wasip2/release"
for manifest in */plugin.toml layers/*/plugin.toml testing/*/plugin.toml; do
    dir="$(dirname "$manifest")"
    crate="$(sed -n 's/^name = "\(.*\)"/\1/p' "$dir/Cargo.toml" | head -n1 | tr - _)"
    cp "$out/$crate.wasm" "$dir/plugin.wasm.tmp"
    # Rename into place so a host watching the directory never sees a partial file.
    mv "$dir/plugin.wasm.tmp" "$dir/plugin.wasm"
    printf '%-36s %8d bytes\n' "$dir/plugin.wasm" "$(stat -c %s "$dir/plugin.wasm")"
done

# The generic fitted scorecard has no manifest (it carries no model until `strata fit`
# writes one in): the host embeds this copy (host/src/fit/component.rs), committed so
# `cargo build` needs no wasm toolchain. Replaced only when the bytes changed.
asset=../host/assets/scorecard.wasm
if ! cmp -s "$out/scorecard.wasm" "$asset"; then
    cp "$out/scorecard.wasm" "$asset.tmp" && mv "$asset.tmp" "$asset"
    echo "$asset refreshed: rebuild strata to embed it"
fi
