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


def test_an_algo_on_the_command_line_runs_alone(tmp_path):
    """The default is the SFT -> GRPO pipeline, but ``algo=sft`` asks for one SFT run."""
    command = [
        sys.executable, "-m", "rlkit", "algo=sft", f"hydra.run.dir={tmp_path}", "logger=[jsonl]",
        "trainer.max_steps=1", "trainer.batch_size=4", "trainer.micro_batch_size=4", "trainer.eval_every=0",
        "trainer.eval_samples=2", "trainer.eval_max_new_tokens=2", "data.train_size=16", "data.eval_size=2",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "final" / "model.safetensors").exists()
    assert not (tmp_path / "0-sft").exists() and "stage" not in result.stdout


@pytest.mark.slow
def test_default_command_sft_then_grpo_raises_accuracy(tmp_path):
    """``python -m rlkit`` as shipped: SFT, then GRPO with the math verifier, then evaluation.

    Measured on 2 cores (README): held-out greedy accuracy 0.410 after SFT, 0.615 after GRPO.
    """
    result = subprocess.run([sys.executable, "-m", "rlkit", f"hydra.run.dir={tmp_path}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    sft = json.loads((tmp_path / "0-sft" / "status.json").read_text())["metrics"]["eval/accuracy"]
    grpo = json.loads((tmp_path / "1-grpo" / "status.json").read_text())["metrics"]["eval/accuracy"]
    evaluation = json.loads((tmp_path / "2-eval" / "eval.json").read_text())
    assert 0.2 <= sft <= 0.6, "SFT is meant to leave the model mediocre"
    assert grpo >= sft + 0.15 and grpo >= 0.5
    assert evaluation["model"] == str(tmp_path / "1-grpo" / "final")
    assert evaluation["accuracy"] == pytest.approx(grpo) and evaluation["pass@8"] >= grpo
    assert f"held-out accuracy after each stage: sft {sft:.3f} -> grpo {grpo:.3f}" in result.stdout
    assert (tmp_path / "pipeline.png").read_bytes().startswith(b"\x89PNG")
