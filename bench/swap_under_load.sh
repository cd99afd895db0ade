#!/usr/bin/env bash
# Hot swap under load: wrk POSTs /api/v1/score to BANT for DURATION while a new BANT
# version (new bytes) is deployed into the watched plugins directory every INTERVAL
# seconds, the manifest and the component renamed in alternately in either order.
# Reports failed requests and checks that every response's sha256 is the component
# deployed under the version it names. Needs `wrk` (apt-get install -y wrk) and python3.
# Figures, not assertions about speed: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-60}"
INTERVAL="${INTERVAL:-2}"
PORT="${PORT:-18004}"
work=$(mktemp -d)
server=""
trap '[ -z "$server" ] || kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
bin="${BENCH_BIN:-target/release/strata}"
[ -n "${BENCH_BIN:-}" ] || cargo build --release --quiet --bin strata
mkdir -p "$work/plugins/bant"
cp plugins/bant/plugin.toml plugins/bant/plugin.wasm "$work/plugins/bant/"
export STRATA_DATABASE__URL="sqlite://$work/strata.db" STRATA_PLUGINS__DIR="$work/plugins"
export STRATA_PLUGINS__EXTRA_DIRS="[]" STRATA_RUNTIME__CACHE_DIR="$work/cache"
export STRATA_SERVER__RATE_LIMIT_PER_SECOND=10000000 STRATA_SERVER__RATE_LIMIT_BURST=10000000
export STRATA_LOG=warn
key=$("$bin" keys create --role operator --name bench 2>/dev/null)
"$bin" serve --bind "127.0.0.1:$PORT" >"$work/serve.log" 2>&1 & server=$!
for _ in $(seq 100); do curl -fs "localhost:$PORT/ready" >/dev/null && break; sleep 0.1; done
base_version=$(sed -n 's/^version = "\(.*\)"/\1/p' plugins/bant/plugin.toml | head -n1)
echo "bant@$base_version $(sha256sum plugins/bant/plugin.wasm | cut -d' ' -f1)" >"$work/deployed"

# deploy N: version 9.0.N with bytes made unique by a custom section.
deploy() {
    local n=$1 dir="$work/plugins/bant"
    python3 - "$dir" "$n" <<'PY'
import hashlib, pathlib, sys
d, n = pathlib.Path(sys.argv[1]), int(sys.argv[2])
base = pathlib.Path("plugins/bant/plugin.wasm").read_bytes()
name = b"swap"
payload = bytes([len(name)]) + name + str(n).encode()
size, leb = len(payload), bytearray()
while True:
    b = size & 0x7F
    size >>= 7
    leb.append(b | (0x80 if size else 0))
    if not size:
        break
wasm = base + b"\x00" + bytes(leb) + payload
manifest = "\n".join(
    f'version = "9.0.{n}"' if l.startswith("version = ") else l
    for l in pathlib.Path("plugins/bant/plugin.toml").read_text().splitlines()) + "\n"
(d / "plugin.wasm.new").write_bytes(wasm)
(d / "plugin.toml.new").write_text(manifest)
order = ["plugin.toml", "plugin.wasm"] if n % 2 else ["plugin.wasm", "plugin.toml"]
import os, time
for f in order:
    os.rename(d / (f + ".new"), d / f)
    time.sleep(0.05)
print(f"bant@9.0.{n} {hashlib.sha256(wasm).hexdigest()}")
PY
}
(
    n=1
    end=$((SECONDS + DURATION))
    while [ $SECONDS -lt $end ]; do
        sleep "$INTERVAL"
        deploy $n >>"$work/deployed"
        n=$((n + 1))
    done
) &
swapper=$!
STRATA_KEY="$key" wrk -t2 -c32 -d"${DURATION}s" --latency -s bench/swap_check.lua \
    "http://127.0.0.1:$PORT/api/v1/score" >"$work/wrk.out"
wait "$swapper"
grep -E "Requests/sec|requests in|Latency|99%|Non-2xx|Socket errors" "$work/wrk.out" || true
failed=$(sed -n 's/^failed //p' "$work/wrk.out")
versions=$(wc -l <"$work/deployed")
mismatched=0
while read -r _ strategy sha count; do
    if ! grep -qx "$strategy $sha" "$work/deployed"; then
        echo "MISMATCH: $count responses named $strategy with sha256 $sha"
        mismatched=$((mismatched + count))
    fi
done < <(grep '^pair ' "$work/wrk.out")
served=$(grep -c '^pair ' "$work/wrk.out")
live=$(curl -fs -H "Authorization: Bearer $key" "localhost:$PORT/api/v1/plugins/bant" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "versions deployed: $versions; versions seen in responses: $served; live at the end: $live"
rejected=$(grep -c "rejected" "$work/serve.log" || true)
echo "failed requests: $failed; responses whose sha256 is not the named version's: $mismatched; versions rejected: $rejected"
[ "$failed" = 0 ] && [ "$mismatched" = 0 ]
