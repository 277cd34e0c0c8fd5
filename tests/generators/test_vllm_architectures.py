"""Each architecture family's exported ``final/`` loads in vLLM and decodes as Hugging Face does.

A two-step SFT run per family (random-init tiny model with the family's real chat template),
then a vLLM engine started on the run's ``final/`` directory, the path a user serves from.
Runs in .venv-vllm (scripts/test.sh); skipped where vLLM is not installed.
"""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("vllm")

from tests.models.families import FAMILIES, build_family  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

ROWS = [{"prompt": f"What is {a} + {b}?", "completion": f"The answer is {a + b}.", "answer": str(a + b)}
        for a, b in [(1, 2), (3, 4), (5, 6), (7, 1), (2, 9), (4, 4), (6, 3), (8, 2)]]
PROMPTS = ["What is 1 + 2?", "What is 7 + 5?", "hello there"]
#: vLLM's CPU attention kernels start at head size 32 (the families' tiny configs use 16).
VLLM_CPU_HEADS = {"num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_exported_final_decodes_in_vllm_as_in_transformers(family, compose, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from vllm import LLM, SamplingParams, TokensPrompt

    from rlkit.data.templates import encode_prompt
    from rlkit.launch import train
    from rlkit.types import Message

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    model_dir = build_family(family, tmp_path / "init", **VLLM_CPU_HEADS)
    train(compose(["algo=sft", "data=files", f"data.train={rows}", f"data.eval={rows}", f"model.name_or_path={model_dir}",
                   "trainer.max_steps=2", "trainer.batch_size=4", "trainer.micro_batch_size=4", "trainer.eval_every=0",
                   "trainer.save_every=0", "trainer.eval_samples=2", "trainer.eval_max_new_tokens=4", "trainer.lr=1e-3",
                   "trainer.warmup_steps=0", "logger=[jsonl]"]), tmp_path / "run")
    final = tmp_path / "run" / "final"

    tokenizer = AutoTokenizer.from_pretrained(final)
    model = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32).eval()
    prompts = [encode_prompt(tokenizer, (Message("user", p),)) for p in PROMPTS]
    expected = []
    with torch.no_grad():
        for ids in prompts:
            out = model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False, min_new_tokens=6)
            expected.append(out[0, len(ids):].tolist())

    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    llm = LLM(model=str(final), dtype="float32", enforce_eager=True, seed=0, kv_cache_memory_bytes=2**27)
    try:
        outputs = llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompts],
                               SamplingParams(temperature=0.0, max_tokens=6, min_tokens=6, ignore_eos=True))
    finally:
        del llm
    assert [list(o.outputs[0].token_ids) for o in outputs] == expected
