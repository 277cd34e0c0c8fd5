#!/usr/bin/env bash
# Create .venv and install rlkit into it. Usage: scripts/setup.sh [extras], e.g. "dev".
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
extras="${1:-}"
[ -x .venv/bin/python ] || "$python" -m venv .venv

# Install torch on its own first: a bare `torch` requirement resolves to the multi-GB CUDA
# build. RLKIT_TORCH picks another build (e.g. "torch==2.13.0+cu128" on a GPU machine).
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/pip install --quiet "${RLKIT_TORCH:-torch==2.13.0}"
fi
# The dev extras (the tests) at the versions the test suite last passed with.
constraints=()
[ "$extras" != dev ] || constraints=(-c scripts/dev-constraints.txt)
.venv/bin/pip install --quiet "${constraints[@]}" -e ".${extras:+[$extras]}"
