"""SFT (with LoRA), DPO and GRPO on random-init tiny models of each architecture family users
bring, with their real chat templates; every stage's exported final/ loads with from_pretrained.

One short run per family: SFT -> DPO -> GRPO, each stage starting from the previous final/.
"""

from __future__ import annotations

import json

import pytest

from tests.models.families import FAMILIES, build_family

ROWS = [
    {"prompt": f"What is {a} + {b}?", "completion": f"The answer is {a + b}.", "answer": str(a + b),
     "chosen": f"The answer is {a + b}.", "rejected": f"The answer is {a + b + 3}."}
    for a, b in [(1, 2), (3, 4), (5, 6), (7, 1), (2, 9), (4, 4), (6, 3), (8, 2)]
]
COMMON = ["data=files", "trainer.batch_size=4", "trainer.micro_batch_size=4", "trainer.eval_every=0",
          "trainer.save_every=0", "trainer.eval_samples=2", "trainer.eval_max_new_tokens=4", "trainer.lr=1e-3",
          "trainer.warmup_steps=0", "logger=[jsonl]"]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("arch-data") / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_sft_lora_dpo_grpo_and_export(family, data_file, compose, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlkit.launch import train

    model_dir = build_family(family, tmp_path / "init")
    data = [*COMMON, f"data.train={data_file}", f"data.eval={data_file}"]
    lora = ["model.lora.enabled=true", f"model.lora.target_modules=[{','.join(FAMILIES[family].lora_targets)}]"]
    stages = [
        ("sft", ["algo=sft", "trainer.max_steps=2", *lora]),
        ("dpo", ["algo=dpo", "trainer.max_steps=2"]),
        ("grpo", ["algo=grpo", "reward=math", "trainer.max_steps=2", "algo.group_size=2",
                  "algo.sampling.max_new_tokens=6", "trainer.batch_size=2", "trainer.micro_batch_size=4"]),
    ]
    previous = model_dir
    for name, overrides in stages:
        run_dir = tmp_path / name
        metrics = train(compose([*data, *overrides, f"model.name_or_path={previous}"]), run_dir)
        assert all(v == v for v in metrics.values()), (name, metrics)  # no NaN
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert max(r["step"] for r in records) == 2, name
        previous = run_dir / "final"
        model = AutoModelForCausalLM.from_pretrained(previous)  # plain HF checkpoint (LoRA merged)
        assert type(model).__name__ == type(AutoModelForCausalLM.from_pretrained(model_dir)).__name__
        assert not any("lora" in key for key in model.state_dict()), name
    tokenizer = AutoTokenizer.from_pretrained(previous)
    assert tokenizer.chat_template == FAMILIES[family].chat_template
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is 1 + 2?"}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1] and torch.isfinite(model(**ids).logits).all()
