#!/usr/bin/env bash
# Installs componentize-py 0.25.1 (PyPI; builds Python scorers into WASI 0.2 components,
# which the host's wasmtime 48 loads) into a virtualenv outside the repository, for
# `strata plugin build` of Python plugins (plugins/python/bant-py, `strata plugin new --lang
# python`) and the Python scorer test (tests/python_scorer.rs). The venv lives at
# $STRATA_COMPONENTIZE_PY_VENV (default /var/tmp/strata-componentize-py-venv);
# scripts/test.sh exports STRATA_COMPONENTIZE_PY=$venv/bin/componentize-py, which
# `strata plugin build` and the tests read. componentize-py bundles its own CPython
# (CPython 3.14 compiled to wasm), so the venv's python only runs the installer: Python >= 3.9.
# Reinstalls only when the pinned version changed. Prints the path of the executable.
set -euo pipefail
version="0.25.1"
venv="${STRATA_COMPONENTIZE_PY_VENV:-/var/tmp/strata-componentize-py-venv}"
exe="$venv/bin/componentize-py"
stamp="$venv/.strata-componentize-py-version"
if [ ! -x "$venv/bin/python" ]; then
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' || {
        echo "componentize-py needs Python >= 3.9; python3 is $(python3 --version 2>&1)" >&2
        exit 1
    }
    python3 -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$version" ] || [ ! -x "$exe" ]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version" >&2
    got="$("$exe" --version | awk '{print $2}')"
    if [ "$got" != "$version" ]; then
        echo "componentize-py: installed $got, pinned $version" >&2
        exit 1
    fi
    echo "$version" > "$stamp"
fi
echo "$exe"
