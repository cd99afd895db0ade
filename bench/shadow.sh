#!/usr/bin/env bash
# Shadow cost benchmark: p50/p99 of POST /api/v1/score to BANT under wrk (64 connections)
# with no challenger, then with a shadow challenger (xeducation, share 1.0: every call is
# scored again off the response path), alternately ROUNDS times on one server, so the two
# are measured side by side. Prints, per run, wrk's latency lines and the results the
# shadow recorded and skipped (all shadow slots busy). Needs `wrk`.
# Figures, not assertions: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10s}"
ROUNDS="${ROUNDS:-2}"
PORT="${PORT:-18005}"
work=$(mktemp -d)
server=""
trap '[ -z "$server" ] || kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
bin="${BENCH_BIN:-target/release/strata}"
[ -n "${BENCH_BIN:-}" ] || cargo build --release --quiet --bin strata
export STRATA_DATABASE__URL="sqlite://$work/strata.db"
export STRATA_SERVER__RATE_LIMIT_PER_SECOND=10000000 STRATA_SERVER__RATE_LIMIT_BURST=10000000
export STRATA_PLUGINS__WATCH=false STRATA_LOG=warn
key=$("$bin" keys create --role operator --name bench 2>/dev/null)
"$bin" serve --bind "127.0.0.1:$PORT" >"$work/serve.log" 2>&1 & server=$!
for _ in $(seq 300); do curl -fs "localhost:$PORT/ready" >/dev/null && break; sleep 0.1; done
api() { curl -fsS -H "Authorization: Bearer $key" -H 'Content-Type: application/json' "$@"; }
metric() { curl -fs -H "Authorization: Bearer $key" "localhost:$PORT/metrics" | awk -v m="$1" '$0 ~ "^"m {s+=$NF} END {print s+0}'; }
load() {
    echo "== $1"
    STRATA_KEY="$key" STRATEGY=bant wrk -t2 -c64 -d"$DURATION" --latency -s bench/score.lua \
        "http://127.0.0.1:$PORT/api/v1/score" | grep -E "Requests/sec|Latency |50%|99%|Non-2xx"
}
for round in $(seq "$ROUNDS"); do
    load "round $round: shadow off"
    api -X PUT "localhost:$PORT/api/v1/strategies/bant/challenger" \
        -d '{"challenger":"xeducation","mode":"shadow","share":1.0}' >/dev/null
    before=$(metric challenger_results_total); skipped=$(metric challenger_shadow_skipped_total)
    load "round $round: shadow on (xeducation, share 1.0)"
    echo "   shadow results recorded: $(( $(metric challenger_results_total) - before )), skipped (slots busy): $(( $(metric challenger_shadow_skipped_total) - skipped ))"
    api -X DELETE "localhost:$PORT/api/v1/strategies/bant/challenger" >/dev/null
done
