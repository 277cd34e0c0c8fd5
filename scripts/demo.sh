#!/usr/bin/env bash
# Set up, then run the built-in demo on CPU (extra arguments are Hydra overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m rlkit "$@"
