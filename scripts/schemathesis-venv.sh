#!/usr/bin/env bash
# Installs schemathesis (pinned) into a virtualenv outside the repository, for the
# OpenAPI conformance test (tests/service.rs: schemathesis_finds_no_failures). The venv
# lives at $STRATA_SCHEMATHESIS_VENV (default /var/tmp/strata-schemathesis-venv); the
# test looks for $venv/bin/schemathesis. Prints the path of the executable.
set -euo pipefail
version="4.32.5"
venv="${STRATA_SCHEMATHESIS_VENV:-/var/tmp/strata-schemathesis-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" != "$version" ]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version" >&2
fi
echo "$venv/bin/schemathesis"
