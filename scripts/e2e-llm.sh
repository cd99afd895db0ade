#!/usr/bin/env bash
# Opt-in end-to-end run against a real local model: installs (once, cached outside the
# repository) llama-cpp-python's OpenAI-compatible server and SmolLM2-135M-Instruct,
# starts it on a free port, and runs the agent test that qualifies a demo lead through it.
# Not part of the default test run (the first install compiles for ~13 min on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
gguf="$(bash scripts/llm-venv.sh)"
[ -n "$gguf" ] || { echo "no SmolLM2 GGUF found in the virtualenv" >&2; exit 1; }
venv="${STRATA_LLM_VENV:-/var/tmp/strata-llm-venv}"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$venv/bin/python" -m llama_cpp.server --model "$gguf" --host 127.0.0.1 --port "$port" \
    --n_ctx 4096 >/tmp/strata-e2e-llm.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 120); do
    curl -fs "http://127.0.0.1:$port/v1/models" >/dev/null && break
    sleep 0.5
done
curl -fs "http://127.0.0.1:$port/v1/models" >/dev/null || { cat /tmp/strata-e2e-llm.log >&2; exit 1; }
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
STRATA_E2E_LLM=1 STRATA_E2E_LLM_URL="http://127.0.0.1:$port" \
    cargo test -p strata --test agent e2e_real_local_model -- --nocapture
