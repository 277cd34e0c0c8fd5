"""Pipelines: stages hand their final model to the next one; finished stages are kept."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from rlkit.config import StageConfig
from rlkit.pipeline import stage_overrides


def test_stage_reads_the_previous_final_model(tmp_path):
    stage = StageConfig(name="grpo", overrides=["algo=grpo"])
    assert stage_overrides(stage, tmp_path / "0-sft" / "final", ["trainer.seed=3"]) == [
        "algo=grpo", "trainer.seed=3", f"model.name_or_path={tmp_path / '0-sft' / 'final'}",
    ]
    own = StageConfig(name="rm", overrides=["algo=rm", "model.name_or_path=/models/base"])
    assert stage_overrides(own, tmp_path, []) == ["algo=rm", "model.name_or_path=/models/base"]


@pytest.mark.slow
def test_sft_grpo_pipeline_hands_over_models_and_resumes(tmp_path):
    command = [
        sys.executable, "-m", "rlkit", "pipeline=sft_grpo", f"hydra.run.dir={tmp_path}", "logger=[jsonl]",
        "trainer.max_steps=2", "trainer.batch_size=8", "trainer.micro_batch_size=64", "trainer.eval_samples=4",
        "eval.samples=4", "eval.max_new_tokens=4", "data.train_size=300", "data.eval_size=8",
    ]
    first = subprocess.run(command, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    sft, grpo, evaluation = tmp_path / "0-sft", tmp_path / "1-grpo", tmp_path / "2-eval"
    for stage in (sft, grpo):
        assert json.loads((stage / "status.json").read_text())["status"] == "completed"
        assert (stage / "final" / "model.safetensors").exists()
    assert OmegaConf.load(grpo / "config.yaml").model.name_or_path == str(sft / "final")
    assert OmegaConf.load(grpo / "config.yaml").algo.name == "grpo"
    assert json.loads((evaluation / "eval.json").read_text())["model"] == str(grpo / "final")
    assert "stage results (held-out)" in first.stdout

    sft_weights = (sft / "final" / "model.safetensors").stat().st_mtime_ns
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("already completed; not training again") == 2
    assert (sft / "final" / "model.safetensors").stat().st_mtime_ns == sft_weights
