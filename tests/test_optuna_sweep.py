"""Optuna sweeps (hydra-optuna-sweeper): the job returns its final eval metric, TPE picks the
trials, and the trial table/plot show them in order with the best so far."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")

REPO = Path(__file__).resolve().parents[1]

#: The dpo_optuna preset shrunk to seconds per trial: 1-digit pairs whose wrong answers are
#: off by 10-20 (learnable from scratch in a few steps), objective eval/loss (minimised).
TINY_DPO = [
    "+sweep=dpo_optuna", "data.digits=1", "data.train_size=200", "data.eval_size=32", "data.min_wrong_offset=10",
    "data.max_wrong_offset=20", "trainer.max_steps=6", "trainer.batch_size=16", "trainer.micro_batch_size=32",
    "trainer.eval_samples=32", "trainer.save_every=0", "trainer.warmup_steps=0", "logger=[jsonl]",
    "trainer.log_samples=0", "sweep_summary.metric=eval/loss", "hydra.sweeper.direction=minimize",
]


def sweep(sweep_dir: Path, *overrides: str, env=None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "rlkit", "-m", *TINY_DPO, f"hydra.sweep.dir={sweep_dir}", *overrides]
    return subprocess.run(command, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=900)


def check_trials(sweep_dir: Path, n_trials: int) -> list[dict]:
    """The trial table agrees with the jobs, Optuna's result and itself."""
    rows = list(csv.DictReader((sweep_dir / "optuna_trials.csv").open()))
    assert [int(r["trial"]) for r in rows] == list(range(n_trials))
    assert all(r["status"] == "completed" for r in rows)
    values = [float(r["eval/loss"]) for r in rows]
    best = [float(r["best_so_far"]) for r in rows]
    assert best == [min(values[: i + 1]) for i in range(n_trials)]
    for i, row in enumerate(rows):  # each trial's value is its job's final eval/loss, with its sampled lr
        overrides = yaml.safe_load((sweep_dir / str(i) / ".hydra" / "overrides.yaml").read_text())
        assert f"trainer.lr={row['trainer.lr']}" in overrides
    assert len({r["trainer.lr"] for r in rows}) == n_trials
    result = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert result["best_value"] == pytest.approx(min(values))
    assert (sweep_dir / "optuna_trials.png").read_bytes()[:4] == b"\x89PNG"
    return rows


@pytest.mark.slow
@pytest.mark.slurm
def test_tpe_sweep_over_lr_on_slurm(slurm_cluster, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    result = sweep(
        sweep_dir, "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=3",
        "hydra.sweeper.sampler.n_startup_trials=3",  # the second batch is TPE's
        "hydra/launcher=submitit_slurm", f"hydra.launcher.partition={slurm_cluster.partition}",
        "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=10",
        env=slurm_cluster.env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = check_trials(sweep_dir, 6)
    values = [float(r["eval/loss"]) for r in rows]
    assert min(values) < max(values)  # the best trial beats the worst
    assert "Optuna trials (minimising eval/loss):" in result.stdout
    assert list((sweep_dir / ".submitit").iterdir()), "the trials did not run as Slurm jobs"


@pytest.mark.slow
def test_two_trials_with_the_basic_launcher(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    result = sweep(sweep_dir, "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1", "trainer.max_steps=2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check_trials(sweep_dir, 2)


def test_presets_search_with_optuna_and_a_bad_expression_fails_in_one_line(compose, tmp_path: Path) -> None:
    from hydra import compose as hydra_compose, initialize_config_module

    from rlkit.config import register_with_hydra

    register_with_hydra()
    for preset, metric, algo in (("dpo_optuna", "eval/pref_accuracy", "dpo"), ("grpo_optuna", "eval/accuracy", "grpo")):
        with initialize_config_module(config_module="rlkit.conf", version_base="1.3"):
            cfg = hydra_compose("config", overrides=[f"+sweep={preset}"], return_hydra_config=True)
        assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper") and cfg.hydra.sweeper.direction == "maximize"
        assert "trainer.lr" in cfg.hydra.sweeper.params and cfg.sweep_summary.metric == metric
        assert cfg.algo.name == algo and cfg.hydra.callbacks.optuna_trials.metric == metric

    bad = sweep(tmp_path / "bad", 'hydra.sweeper.params={trainer.lr: "tag(log, intervl(1e-4, 1e-2))"}')
    assert bad.returncode != 0
    assert "Error parsing override 'trainer.lr=tag(log, intervl(1e-4, 1e-2))'" in bad.stderr + bad.stdout
    assert "Unknown function 'intervl'" in bad.stderr + bad.stdout


def test_job_returns_the_sweep_metric() -> None:
    from omegaconf import OmegaConf

    from rlkit.__main__ import objective

    metrics = {"loss": 0.3, "eval/loss": 0.5, "eval/accuracy": 0.25}
    assert objective(metrics, OmegaConf.create({"sweep_summary": {"metric": "eval/accuracy"}})) == 0.25
    assert objective(metrics, OmegaConf.create({"sweep_summary": {"metric": None}})) == 0.5
    assert objective({"loss": 1.0}, OmegaConf.create({})) is None
    with pytest.raises(KeyError, match="sweep_summary.metric=eval/acc is not a final metric of this run"):
        objective(metrics, OmegaConf.create({"sweep_summary": {"metric": "eval/acc"}}))
