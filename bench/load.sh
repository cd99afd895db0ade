#!/usr/bin/env bash
# Load benchmark of POST /api/v1/score (wrk, 64 connections): the BANT plugin through
# Wasm, then the same route with the BANT logic compiled natively. Needs `wrk`
# (apt-get install -y wrk). Figures, not assertions: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-15s}"
PORT="${PORT:-18003}"
work=$(mktemp -d)
server=""
trap '[ -z "$server" ] || kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
# BENCH_BIN: a prebuilt binary (no build). Not STRATA_…: those are config keys.
bin="${BENCH_BIN:-target/release/strata}"
[ -n "${BENCH_BIN:-}" ] || cargo build --release --quiet --bin strata
export STRATA_DATABASE__URL="sqlite://$work/strata.db"
export STRATA_SERVER__RATE_LIMIT_PER_SECOND=10000000 STRATA_SERVER__RATE_LIMIT_BURST=10000000
export STRATA_SERVER__NATIVE_REFERENCE=true STRATA_PLUGINS__WATCH=false STRATA_LOG=warn
key=$("$bin" keys create --role operator --name bench 2>/dev/null)
# run LABEL STRATEGY [ENV=VALUE…]: a server with the extra environment, then wrk.
run() {
    local label=$1 strategy=$2
    shift 2
    env "$@" "$bin" serve --bind "127.0.0.1:$PORT" & server=$!
    for _ in $(seq 100); do curl -fs "localhost:$PORT/ready" >/dev/null && break; sleep 0.1; done
    echo "== $label"
    STRATA_KEY="$key" STRATEGY="$strategy" wrk -t2 -c64 -d"$DURATION" --latency -s bench/score.lua "http://127.0.0.1:$PORT/api/v1/score" \
        | grep -E "Requests/sec|Latency|50%|90%|99%|Non-2xx"
    kill "$server"; wait "$server" 2>/dev/null || true; server=""
}
run "bant (Wasm, as configured: reuse_calls from config/strata.toml)" bant
run "bant (Wasm, fresh instance per call)" bant STRATA_GRANTS__BANT__REUSE_CALLS=0
run "native-bant (the same logic compiled into the host)" native-bant
