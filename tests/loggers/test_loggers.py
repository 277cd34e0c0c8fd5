"""The built-in loggers write what they are given, where a user and the trainer expect it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rlkit.loggers.base import RunInfo
from rlkit.loggers.console import ConsoleLogger
from rlkit.loggers.jsonl import JsonlLogger, read_metrics, truncate_after
from rlkit.loggers.plot import Series, plot_metrics, plot_runs
from rlkit.loggers.tensorboard import TensorBoardLogger
from rlkit.loggers.wandb import ID_FILE, WandbLogger


@pytest.fixture
def run(tmp_path: Path) -> RunInfo:
    return RunInfo(run_dir=tmp_path / "run", name="test-run", total_steps=4, config={"lr": 1e-3})


def log_steps(logger, steps) -> None:
    for step in steps:
        logger.log({"loss": 1.0 / step, "reward/mean": np.float32(step)}, step=np.int64(step))
    logger.close()


def test_jsonl_writes_one_valid_line_per_call(run: RunInfo) -> None:
    logger = JsonlLogger(JsonlLogger.Config(), run)
    logger.log({"loss": np.float64(0.5), "reward/mean": np.float32(1.5)}, step=np.int64(1))
    logger.log({"loss": float("nan")}, step=2)
    logger.close()

    lines = (run.run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"step": 1, "loss": 0.5, "reward/mean": 1.5},
        {"step": 2, "loss": None},  # strict JSON: no NaN literal
    ]
    assert list(json.loads(lines[0])) == ["step", "loss", "reward/mean"]
    records = read_metrics(run.run_dir / "metrics.jsonl")
    assert records[0] == {"step": 1, "loss": 0.5, "reward/mean": 1.5}
    assert math.isnan(records[1]["loss"])


def test_jsonl_truncate_after_then_resume(run: RunInfo) -> None:
    path = run.run_dir / "metrics.jsonl"
    log_steps(JsonlLogger(JsonlLogger.Config(), run), range(1, 6))
    with path.open("a") as f:
        f.write('{"step": 6, "lo')  # a write cut short by a kill

    truncate_after(path, 3)
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3]
    assert not path.with_name(path.name + ".tmp").exists()

    log_steps(JsonlLogger(JsonlLogger.Config(), run), [4, 5])  # the resumed run
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3, 4, 5]

    truncate_after(run.run_dir / "missing.jsonl", 3)  # nothing to do
    assert not (run.run_dir / "missing.jsonl").exists()


def test_tensorboard_scalars_read_back(run: RunInfo) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log_steps(TensorBoardLogger(TensorBoardLogger.Config(), run), [1, 2, 4])

    events = EventAccumulator(str(run.run_dir / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"loss", "reward/mean"}
    rewards = [(e.step, e.value) for e in events.Scalars("reward/mean")]
    assert rewards == [(1, 1.0), (2, 2.0), (4, 4.0)]
    assert [e.value for e in events.Scalars("loss")] == pytest.approx([1.0, 0.5, 0.25])


@pytest.mark.slow  # two wandb sessions, each starting wandb's service: 2-6 s
def test_wandb_offline_run_and_resume(run: RunInfo, tmp_path: Path, monkeypatch) -> None:
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    artifact = tmp_path / "plot.png"
    artifact.write_bytes(b"not really a png")

    logger = WandbLogger(WandbLogger.Config(), run)
    logger.log({"rlkit_first_metric": 0.25}, step=1)
    logger.log_artifact(artifact)
    logger.close()
    run_id = (run.run_dir / ID_FILE).read_text().strip()

    resumed = WandbLogger(WandbLogger.Config(), run)
    assert resumed.wandb_run.id == run_id
    resumed.log({"rlkit_resumed_metric": 0.5}, step=2)
    resumed.close()

    # One offline run directory per session, each with its history in run-<id>.wandb.
    sessions = [f.read_bytes() for f in run.run_dir.glob(f"wandb/offline-run-*/run-{run_id}.wandb")]
    assert len(sessions) == 2
    assert any(b"rlkit_first_metric" in data for data in sessions)
    assert any(b"rlkit_resumed_metric" in data for data in sessions)


@pytest.mark.parametrize("disable", [False, True])
def test_console_bar_and_eval_lines(run: RunInfo, capsys, disable: bool) -> None:
    logger = ConsoleLogger(ConsoleLogger.Config(every=2, disable=disable), run)
    for step in range(1, 5):
        metrics = {"loss": 0.123456, "other": 1.0}
        if step == 3:
            metrics["eval/accuracy"] = 0.75
        logger.log(metrics, step=step)
    logger.close()

    out, err = capsys.readouterr()
    assert out == "step 3: eval/accuracy=0.75\n"
    if disable:
        assert err == ""
    else:
        assert "4/4" in err and "loss=0.1235 eval/accuracy=0.75" in err and "other" not in err


def test_plot_writes_png(run: RunInfo, tmp_path: Path) -> None:
    logger = JsonlLogger(JsonlLogger.Config(), run)
    for step in range(1, 5):
        logger.log({"reward/mean": step / 4, **({"eval/accuracy": 0.5} if step % 2 else {})}, step)
    logger.close()

    out = plot_metrics(
        run.run_dir / "metrics.jsonl",
        ["reward/mean", "eval/accuracy", "never_logged"],
        tmp_path / "plots" / "metrics.png",
        title="test",
    )
    assert out == tmp_path / "plots" / "metrics.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runs_share_one_step_axis(tmp_path: Path) -> None:
    from matplotlib.image import imread

    sft = Series("sft", [{"step": 0, "eval/accuracy": 0.0}, {"step": 600, "eval/accuracy": 0.4}])
    grpo = Series("grpo", [{"step": 0, "eval/accuracy": 0.4}, {"step": 80, "eval/accuracy": 0.7, "reward/mean": 0.5}],
                  first_step=600)
    out = plot_runs([sft, grpo], ["eval/accuracy", "reward/mean"], tmp_path / "pipeline.png")
    assert imread(out).shape[:2] == (440, 700)  # two 2.2-inch subplots, 7 inches wide, at 100 dpi
    with pytest.raises(ValueError, match="at least one metric key"):
        plot_runs([sft], [], tmp_path / "none.png")


def test_jsonl_samples_one_file_per_evaluation(run: RunInfo) -> None:
    logger = JsonlLogger(JsonlLogger.Config(), run)
    rows = [{"prompt": "1+1=", "completion": "2", "answer": "2", "correct": True},
            {"prompt": "2+2=", "completion": "5\n", "answer": "4", "correct": False}]
    logger.log_samples(rows, step=np.int64(3))
    logger.log_samples(rows[:1], step=3)  # a resumed run repeats the step: the file is replaced
    logger.close()
    lines = (run.run_dir / "samples" / "step_3.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows[:1]
    assert [p.name for p in (run.run_dir / "samples").iterdir()] == ["step_3.jsonl"]
