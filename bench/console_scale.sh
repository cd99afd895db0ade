#!/usr/bin/env bash
# The console at scale: a SQLite database with 50,000 leads and 1,000,000 capability-audit
# rows, `strata serve` on it, and each console page timed with curl (signed in with a
# reader key through the sign-in form, CSRF token and all). Prints one line per page:
# HTTP status, time to the last byte (median of 5), page size.
#   BENCH_BIN=target/debug/strata bash bench/console_scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BENCH_BIN:-target/release/strata}"
LEADS="${LEADS:-50000}"
AUDIT="${AUDIT:-1000000}"
PORT="${PORT:-18093}"
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
db="$work/strata.db"
cat > "$work/strata.toml" <<TOML
[database]
url = "sqlite://$db"
[plugins]
dir = "plugins"
watch = false
[server]
bind = "127.0.0.1:$PORT"
TOML
"$BIN" --config "$work/strata.toml" migrate >/dev/null
now=$(date +%s%3N)
sqlite3 "$db" <<SQL
PRAGMA journal_mode = WAL;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $LEADS)
INSERT INTO leads (id, name, email, company, title, status, created_at, updated_at)
SELECT 'L-' || i, 'Lead ' || i, 'lead' || i || '@example.com', 'Company ' || (i % 5000),
       CASE i % 3 WHEN 0 THEN 'VP Sales' WHEN 1 THEN 'Engineer' ELSE 'CFO' END,
       'new', $now - i * 1000, $now - i * 1000 FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $AUDIT)
INSERT INTO capability_audit (at, plugin, plugin_version, capability, operation, target,
                              allowed, detail, duration_us, request_id)
SELECT $now - i * 50, CASE i % 4 WHEN 0 THEN 'bant' WHEN 1 THEN 'intake' WHEN 2 THEN 'booking' ELSE 'qualify-agent' END,
       '1.0.0', CASE i % 3 WHEN 0 THEN 'state' WHEN 1 THEN 'mcp' ELSE 'llm' END, 'get',
       'key:' || (i % 100), (i % 97) <> 0, CASE WHEN i % 97 = 0 THEN 'not granted' END, 40,
       'rid-' || i FROM n;
SQL
key="$("$BIN" --config "$work/strata.toml" keys create --role reader --name bench 2>/dev/null | grep -o 'strata_[0-9a-f]*' | head -1)"
"$BIN" --config "$work/strata.toml" serve >"$work/serve.log" 2>&1 &
server=$!
base="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do curl -sf "$base/health" >/dev/null && break; sleep 0.2; done
jar="$work/cookies"
form="$(curl -s -c "$jar" "$base/console/signin")"
csrf="$(printf '%s' "$form" | grep -o 'name="csrf" value="[^"]*"' | sed 's/.*value="//;s/"$//')"
curl -s -b "$jar" -c "$jar" -o /dev/null --data-urlencode "key=$key" \
    --data-urlencode "csrf=$csrf" --data-urlencode "next=/console" "$base/console/signin"
printf '%-60s %6s %10s %9s\n' page status median_ms bytes
for page in /console /console/plugins /console/plugins/bant /console/audit \
    "/console/audit?plugin=intake&outcome=denied" "/console/audit?capability=llm" \
    "/console/audit?request_id=rid-777" "/console/audit?before_at=$((now - 40000000))&before_id=800000" \
    /console/leads "/console/leads?q=Company%204999" /console/leads/L-49999 /console/pipelines; do
    times=()
    for _ in 1 2 3 4 5; do
        out="$(curl -s -b "$jar" -o "$work/page" -w '%{http_code} %{time_total} %{size_download}' "$base$page")"
        times+=("$(echo "$out" | awk '{print $2 * 1000}')")
        status="$(echo "$out" | awk '{print $1}')"; size="$(echo "$out" | awk '{print $3}')"
    done
    median="$(printf '%s\n' "${times[@]}" | sort -g | sed -n 3p)"
    printf '%-60s %6s %10.1f %9s\n' "$page" "$status" "$median" "$size"
done
