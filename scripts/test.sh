#!/usr/bin/env bash
# Set up (Python dependencies and a local Slurm for the cluster tests), then run every test.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
scripts/install_slurm.sh
exec .venv/bin/python -m pytest "$@"
