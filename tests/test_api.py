"""The Python API: compose and train from a notebook with in-memory rows and a Python reward,
twice in one process; bad input fails in one line before training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import rlkit
from rlkit.data.base import DataError

SMALL = ["trainer.batch_size=4", "trainer.micro_batch_size=8", "trainer.eval_every=0", "trainer.save_every=0",
         "trainer.warmup_steps=0", "trainer.eval_max_new_tokens=4", "logger=[jsonl]"]
SUMS = [{"prompt": f"{a}+{b}=", "completion": str(a + b), "answer": str(a + b)} for a in range(4) for b in range(4)]


def test_compose_gives_the_typed_config() -> None:
    config = rlkit.compose(["algo=dpo", "trainer.lr=0.5"])
    assert config.trainer.lr == 0.5 and config.algo["name"] == "dpo"
    assert rlkit.compose().trainer.lr != 0.5  # a second composition starts afresh
    with pytest.raises(Exception, match="max_stepz"):
        rlkit.compose(["trainer.max_stepz=3"])


def test_train_twice_in_one_process_with_rows_and_a_python_reward(tmp_path: Path) -> None:
    from datasets import Dataset
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    sft = rlkit.train(["algo=sft", "trainer.max_steps=2", *SMALL], dataset=SUMS[:12], eval_dataset=SUMS[12:],
                      run_dir=tmp_path / "sft")
    assert sft.completed().status == "completed" and (sft.final / "model.safetensors").exists()

    def exact(sample, completion):
        return {"exact": float(completion.text.strip() == sample.answer), "short": 0.1 * (len(completion.text) < 3)}

    prompts = Dataset.from_list([{"prompt": r["prompt"], "answer": r["answer"]} for r in SUMS])
    # Inside a Hydra app (GlobalHydra initialised), as a notebook cell after `hydra.initialize`.
    with initialize_config_module(config_module="rlkit.conf", version_base="1.3"):
        grpo = rlkit.train(["algo=grpo", "trainer.max_steps=1", "algo.group_size=2", "algo.sampling.max_new_tokens=4",
                            f"model.name_or_path={sft.final}", "trainer.log_samples=2", *SMALL],
                           reward_fn=exact, dataset=prompts.select(range(12)), eval_dataset=prompts.select(range(12, 16)),
                           run_dir=tmp_path / "grpo")
        assert GlobalHydra.instance().is_initialized()  # the caller's Hydra is back
    assert grpo.completed().status == "completed"

    config = (grpo.run_dir / "config.yaml").read_text()
    assert "function: tests.test_api:test_train_twice_in_one_process_with_rows_and_a_python_reward.<locals>.exact" in config
    rows = [json.loads(line) for line in (grpo.run_dir / "samples" / "step_1.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and {"reward/exact", "reward/short"} <= set(rows[0])
    assert all(r["reward"] == pytest.approx(r["reward/exact"] + r["reward/short"]) for r in rows)
    records = [json.loads(line) for line in grpo.metrics.read_text().splitlines()]
    assert "reward/exact" in records[-1] or any("reward/exact" in r for r in records)

    # What the run recorded about itself: manifest, model card, resource figures.
    manifest = json.loads((grpo.run_dir / "manifest.json").read_text())
    assert set(manifest["inputs"]) == {"data.train", "data.eval", "model"}
    assert manifest["inputs"]["model"]["path"] == str(sft.final.resolve())
    assert manifest["sessions"][-1]["status"] == "completed"
    card = (grpo.final / "README.md").read_text()
    assert "post-trained with **GRPO**" in card and "library_name: transformers" in card
    steps = [r for r in records if "loss" in r]
    assert steps and all(0 < r["sys/rss_gb"] < 64 and r["sys/cpu_percent"] >= 0 for r in steps)
    assert not any(math.isnan(r["loss"]) for r in steps)


def test_bad_input_fails_in_one_line_before_training(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"^reward_fn: expected a function \(sample, completion\) -> float"):
        rlkit.train(["algo=grpo"], reward_fn=3, dataset=SUMS, run_dir=tmp_path / "a")
    missing = [*SUMS[:2], {"prompt": "1+1="}]
    with pytest.raises(DataError, match=r"^dataset, row 3: missing field\(s\) 'completion'"):
        rlkit.train(["algo=sft"], dataset=missing, run_dir=tmp_path / "b")
    with pytest.raises(TypeError, match="^eval_dataset: expected a list of dicts or a datasets.Dataset, got str"):
        rlkit.train(["algo=sft"], dataset=SUMS, eval_dataset="eval.jsonl", run_dir=tmp_path / "c")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b" / "metrics.jsonl").exists()
