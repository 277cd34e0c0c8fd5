#!/usr/bin/env bash
# Set up (Python dependencies, a local Slurm for the cluster tests, bubblewrap for the sandbox
# tests), then run every test.
# Extra arguments go to one pytest run, e.g. `scripts/test.sh -m "not slow"`; without them the
# Slurm tests run in a second pytest beside the rest.
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
# Every pytest run's output is kept, and a short digest of its failures printed last.
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
if [ $# -gt 0 ]; then
    .venv/bin/python -m pytest "$@" 2>&1 | tee "$logs/main.log" || status=$?
else
    # The Slurm tests mostly wait on the scheduler (time limits, requeues, job arrays), so
    # they run beside the others, in a second pytest; those that also start Ray stay in the
    # first, since `ray.init()` attaches to the newest `ray start` cluster on the machine.
    .venv/bin/python -m pytest -p no:cacheprovider -m "slurm and not ray" >"$logs/slurm.log" 2>&1 &
    slurm_tests=$!
    .venv/bin/python -m pytest -m "not (slurm and not ray)" 2>&1 | tee "$logs/main.log" || status=$?
    wait "$slurm_tests" || status=$?
    echo "==== the Slurm tests (run beside the others) ===="
    cat "$logs/slurm.log"
fi
if [ "$vllm_tests" != 0 ]; then
    .venv-vllm/bin/python -m pytest -m vllm tests/generators 2>&1 | tee "$logs/vllm.log" || status=$?
fi
if [ "$status" != 0 ]; then
    echo "==== failures, in short (exit $status) ===="
    .venv/bin/python scripts/failure_digest.py "$logs"/*.log
fi
exit "$status"
