#!/usr/bin/env bash
# Set up (Python dependencies, a local Slurm for the cluster tests, bubblewrap for the sandbox
# tests), then run every test.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not slow"`.
# The vLLM tests run afterwards in .venv-vllm (scripts/setup_vllm.sh; README "vLLM");
# RLKIT_VLLM_TESTS=0 skips them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
scripts/install_slurm.sh
scripts/install_sandbox.sh
vllm_tests="${RLKIT_VLLM_TESTS:-1}"
[ "$vllm_tests" = 0 ] || scripts/setup_vllm.sh
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$vllm_tests" != 0 ]; then
    .venv-vllm/bin/python -m pytest -m vllm tests/generators || status=$?
fi
exit "$status"
