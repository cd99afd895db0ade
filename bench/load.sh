#!/usr/bin/env bash
# Load benchmark of POST /api/v1/score (wrk, 64 connections): the BANT plugin through
# Wasm, then the same request answered by the BANT logic compiled natively, through the
# same HTTP stack (`strata bench serve`: `strata serve` plus the bench-only route
# /bench/native-bant; the production server has no native route). Needs `wrk`
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
export STRATA_PLUGINS__WATCH=false STRATA_LOG=warn
key=$("$bin" keys create --role operator --name bench 2>/dev/null)
# run LABEL COMMAND PATH [ENV=VALUE…]: `strata COMMAND` with the extra environment, then
# wrk against PATH.
run() {
    local label=$1 command=$2 path=$3
    shift 3
    env "$@" "$bin" $command --bind "127.0.0.1:$PORT" & server=$!
    for _ in $(seq 100); do curl -fs "localhost:$PORT/ready" >/dev/null && break; sleep 0.1; done
    echo "== $label"
    STRATA_KEY="$key" STRATEGY=bant wrk -t2 -c64 -d"$DURATION" --latency -s bench/score.lua "http://127.0.0.1:$PORT$path" \
        | grep -E "Requests/sec|Latency|50%|90%|99%|Non-2xx"
    kill "$server"; wait "$server" 2>/dev/null || true; server=""
}
run "bant (Wasm, as configured: reuse_calls from config/strata.toml)" serve /api/v1/score
run "bant (Wasm, fresh instance per call)" serve /api/v1/score STRATA_GRANTS__BANT__REUSE_CALLS=0
run "native-bant (the same logic compiled into the host)" "bench serve" /bench/native-bant
