#!/usr/bin/env bash
# Builds everything (host and plugins) and runs Strata's main job on SQLite with the
# shipped plugins and demo data: score the demo B2B leads with the BANT plugin, qualify two
# of them with the agent (MCP + LLM or rule-based fallback), run the nine-layer golden
# pipeline (dry run, then for real; prints Φ_sync), score and store the 9,240
# X Education leads with the xeducation plugin, and backtest it.
set -euo pipefail
cd "$(dirname "$0")/.."

# rust-toolchain.toml pins the toolchain and lists the wasm target; make sure the target is
# there even where rustup does not auto-install (RUSTUP_AUTO_INSTALL=0).
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

echo "== building the host"
cargo build --release --bin strata   # cargo shows its progress (a first build takes minutes)
strata() { cargo run --release --quiet --bin strata -- "$@"; }
echo "== strata plugin build plugins   (guest plugins → wasm32-wasip2 components)"
strata plugin build plugins

strata migrate
echo "== strata score --plugin bant --input demo/leads.jsonl"
strata score --plugin bant --input demo/leads.jsonl
echo "== strata qualify demo-001 demo-002   (agent: lead via MCP from Strata's own MCP server,"
echo "   LLM qualification — no LLM configured here, so the rule-based BANT fallback — write-back via MCP)"
strata qualify demo-001 demo-002
echo "== strata pipeline run golden --payload @demo/golden-lead.json --dry-run   (nine layers, nothing changed)"
strata pipeline run golden --payload @demo/golden-lead.json --dry-run
echo "== strata pipeline run golden --payload @demo/golden-lead.json   (intake → … → forecast, Φ_sync)"
strata pipeline run golden --payload @demo/golden-lead.json
echo "== strata score --plugin xeducation --input tests/data/leads-xeducation.csv --quiet"
strata score --plugin xeducation --input tests/data/leads-xeducation.csv --quiet
echo "== strata backtest --plugin xeducation --input tests/data/leads-xeducation.csv"
strata backtest --plugin xeducation --input tests/data/leads-xeducation.csv
echo "== stored in var/strata.db; inspect a plugin with: cargo run --release --bin strata -- plugin inspect plugins/bant"
if [ "${1:-}" = "--serve" ]; then
    echo "== strata serve --demo (Ctrl-C to stop)"
    strata serve --demo
fi
