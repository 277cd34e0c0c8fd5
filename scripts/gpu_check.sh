#!/usr/bin/env bash
# GPU checks of generator=vllm (one H100/H200; each check has a time limit, 8 minutes in all). Prints one line per check:
#   throughput   generation tokens/s of hf vs vllm, ~0.5B random-init Qwen2-shaped model, bf16
#   sleep        device memory freed by the engine's sleep, and greedy output unchanged after wake
#   grpo-fsdp2   5 colocated GRPO steps, generator=vllm (sleep mode) + backend=fsdp2 over NCCL
#   grpo-bf16    the same with backend.param_dtype=bfloat16 (fp32 master weights, bf16 compute)
#                and a bf16 engine
# Needs a Python with rlkit and vLLM (`pip install -e ".[vllm]"`; PYTHON=... picks it); it
# tries that install when vLLM is missing. Run from anywhere: scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false RAY_AUTH_MODE=disabled
work=$(mktemp -d /tmp/rlkit-gpu-check.XXXX)
trap 'rm -rf "$work"' EXIT
log() { echo "$*" | tee -a "$work/summary"; }

if ! "$py" -c "import vllm, rlkit, hydra" 2>/dev/null; then
    "$py" -m pip install -q -e ".[vllm]" >"$work/install.log" 2>&1 \
        || { log "setup        FAIL: no vLLM for $py and 'pip install -e .[vllm]' failed (tail: $(tail -1 "$work/install.log"))"; exit 1; }
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | sed 's/^/gpu          /'

# A Qwen2.5-0.5B-shaped model (hidden 896, 24 layers, 14 heads / 2 KV heads, MLP 4864, vocab
# 151936, tied embeddings: 494M parameters), random init in bf16, with a word-level tokenizer
# over the whole vocabulary (no hub access needed) and a minimal chat template.
"$py" - "$work/model" <<'EOF' >"$work/model.log" 2>&1 || { log "setup        FAIL: model (see $work/model.log)"; exit 1; }
import sys, torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
vocab = 151936
words = {"<|pad|>": 0, "<|endoftext|>": 1, **{f"w{i}": i for i in range(2, vocab)}}
tok = Tokenizer(models.WordLevel(words, unk_token="<|pad|>"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|endoftext|>",
    chat_template="{% for m in messages %}{{ m.content }} {% endfor %}")
config = Qwen2Config(vocab_size=vocab, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
    num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
    eos_token_id=1, pad_token_id=0, bos_token_id=None, dtype="bfloat16")
torch.manual_seed(0)
model = Qwen2ForCausalLM(config).to(torch.bfloat16)
model.save_pretrained(sys.argv[1]); tokenizer.save_pretrained(sys.argv[1])
print(sum(p.numel() for p in model.parameters()))
EOF
model="$work/model"

# 1. Throughput: 256 completions x 128 tokens, hf and vllm alternately (benchmarks/bench_generators.py).
if timeout 140 "$py" benchmarks/bench_generators.py --model "$model" --device cuda --dtype bfloat16 --rows 256 --n 8 \
        --max-new-tokens 128 --repeats 2 --gpu-memory-utilization 0.3 >"$work/bench.log" 2>&1; then
    log "throughput   $(grep -E '^(hf|vllm) |vllm / hf' "$work/bench.log" | sed -E 's/ +\(rounds.*//; s/ +/ /g' | paste -sd ';')"
else
    log "throughput   FAIL (tail: $(tail -2 "$work/bench.log" | tr '\n' ' '))"
fi

# 2. Sleep mode: memory freed by sleep, and the same greedy completions after waking.
timeout 90 "$py" - "$model" <<'EOF' >"$work/sleep.log" 2>&1 || log "sleep        FAIL (tail: $(tail -2 "$work/sleep.log" | tr '\n' ' '))"
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from rlkit.generators.vllm import VLLMGenerator
from rlkit.types import SamplingParams
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.bfloat16).cuda()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
engine = VLLMGenerator(VLLMGenerator.Config(enable_sleep_mode=True, gpu_memory_utilization=0.3, enforce_eager=True),
                       model, tokenizer)
prompts = [f"w{i} w{i + 7} w{i + 3}" for i in range(2, 66)]
greedy = SamplingParams(temperature=0.0, max_new_tokens=32)
first = engine.generate(prompts, greedy)
freed = engine.metrics()["generator/sleep_freed_gib"]
engine.update_weights(model.state_dict())  # wakes the weights only, loads, keeps the KV cache asleep
second = engine.generate(prompts, greedy)
same = sum(a.token_ids == b.token_ids for a, b in zip(first, second))
print(f"sleep        {freed:.2f} GiB freed by sleep (gpu_memory_utilization 0.3 of "
      f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB); greedy after wake + weight sync "
      f"identical for {same}/{len(prompts)} prompts")
EOF
grep '^sleep' "$work/sleep.log" | tee -a "$work/summary"

# 3, 4. Colocated GRPO: the engine in the trainer's process, sleeping while FSDP2 trains.
grpo() {  # name, extra overrides...
    local name=$1; shift
    local dir="$work/run-$name"
    if timeout 110 "$py" -m rlkit algo=grpo reward=format reward.pattern=w1 model.name_or_path="$model" \
            model.dtype=float32 backend=fsdp2 backend.device=cuda generator=vllm generator.enable_sleep_mode=true generator.enforce_eager=true \
            generator.gpu_memory_utilization=0.3 generator.max_model_len=1024 trainer.max_steps=5 trainer.batch_size=32 \
            trainer.micro_batch_size=64 algo.group_size=8 algo.sampling.max_new_tokens=128 trainer.lr=1e-6 \
            trainer.eval_every=0 trainer.save_every=0 trainer.eval_samples=16 trainer.eval_max_new_tokens=16 \
            'logger=[jsonl]' hydra.run.dir="$dir" "$@" >"$dir.log" 2>&1; then
        "$py" - "$dir/metrics.jsonl" "$name" <<'EOF' | tee -a "$work/summary"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if "reward/mean" in l]
m = lambda k: statistics.median(r.get(k, float("nan")) for r in rows)
print(f"{sys.argv[2]:<12} {len(rows)} steps; median step {m('time/step'):.1f} s (generate {m('time/generate'):.1f} s, "
      f"train {m('time/train'):.1f} s, weight sync {m('time/weight_sync'):.2f} s); "
      f"log-prob mismatch max {max(r['mismatch/logprob_abs_diff'] for r in rows):.2e}; "
      f"sleep freed {m('generator/sleep_freed_gib'):.1f} GiB")
EOF
    else
        log "$name FAIL (tail: $(grep -v '^\s*$' "$dir.log" | tail -2 | tr '\n' ' '))"
    fi
}
grpo grpo-fsdp2
grpo grpo-bf16 backend.param_dtype=bfloat16 generator.dtype=bfloat16
