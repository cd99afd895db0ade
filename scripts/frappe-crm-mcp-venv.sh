#!/usr/bin/env bash
# Installs frappe-crm-mcp 0.0.6 (the Frappe CRM MCP server from PyPI) with httpx and every
# dependency pinned (scripts/frappe-crm-mcp-requirements.txt) into a virtualenv outside
# the repository, for the Frappe integration test (tests/frappe_mcp.rs), which runs it as
# a stdio child against the Frappe v15 REST double (tests/common/frappe.rs). The venv
# lives at $STRATA_FRAPPE_VENV (default /var/tmp/strata-frappe-crm-mcp-venv); scripts/test.sh
# exports STRATA_FRAPPE_MCP=$venv/bin/frappe-crm-mcp. Needs Python >= 3.11. Reinstalls
# only when the requirements file changed since the last install. Prints the path of the
# executable.
set -euo pipefail
cd "$(dirname "$0")"
reqs="frappe-crm-mcp-requirements.txt"
venv="${STRATA_FRAPPE_VENV:-/var/tmp/strata-frappe-crm-mcp-venv}"
stamp="$venv/.strata-requirements.sha256"
want="$(sha256sum "$reqs" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "frappe-crm-mcp needs Python >= 3.11; python3 is $(python3 --version 2>&1)" >&2
        exit 1
    }
    python3 -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x "$venv/bin/frappe-crm-mcp" ]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs" >&2
    # Exactly the pinned set: the versions the test was written against.
    "$venv/bin/python" - "$reqs" >&2 <<'PY'
import importlib.metadata as m, sys
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, version = line.split("==")
    got = m.version(name)
    if got != version:
        sys.exit(f"{name}: installed {got}, pinned {version}")
PY
    echo "$want" > "$stamp"
fi
echo "$venv/bin/frappe-crm-mcp"
