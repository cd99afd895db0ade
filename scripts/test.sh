#!/usr/bin/env bash
# The whole test suite, on a fresh machine with only the Rust toolchain:
#   - the wasm32-wasip2 target comes from rust-toolchain.toml (rustup installs it);
#   - PostgreSQL binaries are installed with apt-get when missing (the tests start their
#     own throwaway cluster as the `postgres` user);
#   - guest plugins are built, then host unit + integration tests and the plugins' native
#     unit tests run.
set -euo pipefail
cd "$(dirname "$0")/.."

# rust-toolchain.toml pins the toolchain and lists the wasm target; make sure the target is
# there even where rustup does not auto-install (RUSTUP_AUTO_INSTALL=0).
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "== installing PostgreSQL (needed by the tests)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi

# MCP test peers (tests/mcp.rs talks to real MCP servers): the npm packages pinned in
# tests/mcp-peers/package-lock.json, reinstalled when the lockfile changed since.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "== installing Node.js and npm (needed by the MCP tests)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
PEERS=tests/mcp-peers
PEERS_STAMP="$PEERS/node_modules/.strata-lock.sha256"
if [ "$(cat "$PEERS_STAMP" 2>/dev/null)" != "$(sha256sum "$PEERS/package-lock.json" | cut -d' ' -f1)" ]; then
    echo "== installing MCP test peers (npm ci --prefix $PEERS)"
    npm ci --prefix "$PEERS" --no-audit --no-fund --loglevel=error
    sha256sum "$PEERS/package-lock.json" | cut -d' ' -f1 > "$PEERS_STAMP"
fi

# A real headless Chromium and its WebDriver for the console's browser tests
# (tests/console.rs); under CI=true those tests fail without them.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "== installing Chromium and chromedriver (needed by the console's browser tests)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# schemathesis (pinned, in a venv outside the clone) for the OpenAPI conformance test in
# tests/service.rs; the test fails, naming this script, when it is missing.
if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv --help >/dev/null 2>&1; then
    echo "== installing python3-venv (needed by the schemathesis and Frappe tests)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 python3-venv >/dev/null
fi
echo "== installing schemathesis (scripts/schemathesis-venv.sh)"
bash scripts/schemathesis-venv.sh >/dev/null

# frappe-crm-mcp 0.0.6 (pinned with its dependencies, in a venv outside the clone) for the
# Frappe CRM integration test (tests/frappe_mcp.rs): it runs the real server as a stdio
# child against the Frappe REST double; the test reads the executable's path from here.
echo "== installing frappe-crm-mcp (scripts/frappe-crm-mcp-venv.sh)"
STRATA_FRAPPE_MCP="$(bash scripts/frappe-crm-mcp-venv.sh)"
export STRATA_FRAPPE_MCP

# componentize-py (pinned, in a venv outside the clone) builds the Python scorers
# (plugins/python/bant-py, plugins/python/hostile, `strata plugin new --lang python`) for
# tests/python_scorer.rs; the test reads the executable's path from here.
echo "== installing componentize-py (scripts/componentize-py-venv.sh)"
STRATA_COMPONENTIZE_PY="$(bash scripts/componentize-py-venv.sh)"
export STRATA_COMPONENTIZE_PY

# CI: share one target directory outside the clone between runs on the same machine
# (a cold build also passes, it just takes longer).
if [ "${CI:-}" = "true" ] && [ -z "${CARGO_TARGET_DIR:-}" ]; then
    export CARGO_TARGET_DIR=/var/tmp/strata-ci-target
    # Incremental artefacts are per checkout path: every clean clone would add gigabytes.
    export CARGO_INCREMENTAL=0
    # Each clone links its own test executables (~0.9 GB each): drop those older than
    # CI's 90-minute limit, which no run still in progress can be using.
    find "$CARGO_TARGET_DIR/debug/deps" -maxdepth 1 -type f -perm -u+x -mmin +90 \
        ! -name '*.so' ! -name '*.rlib' ! -name '*.rmeta' ! -name '*.d' -delete 2>/dev/null || true
fi

echo "== building guest plugins (wasm32-wasip2)"
bash plugins/build.sh >/dev/null

echo "== guest plugins: native unit tests"
(cd plugins && cargo test --quiet --target "$(rustc -vV | sed -n 's/^host: //p')" -p bant -p xeducation -p strata-sdk -p qualify-agent -p layer-intake -p layer-enrichment -p layer-qualification -p layer-booking -p layer-proposal -p layer-kickoff -p layer-pricing -p layer-invoicing -p layer-forecast)

echo "== host: unit and integration tests (SQLite and PostgreSQL)"
cargo test --workspace "$@"
