"""The multirun callback (rlkit.sweeps.callback): the summary at the end of a sweep, also
when a job failed, and failures recorded in the job's status.json."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra.core.utils import JobReturn, JobStatus

from rlkit.sweeps import callback as callback_module
from rlkit.sweeps.callback import SweepSummary, record_failure

REPO = Path(__file__).resolve().parents[2]


def _job(sweep: Path, num: int, overrides: list[str], eval_acc: float | None) -> Path:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if eval_acc is not None:
        (job / "metrics.jsonl").write_text(
            json.dumps({"step": 0, "eval/accuracy": 0.0}) + "\n"
            + json.dumps({"step": 5, "loss": 1.0}) + "\n"
            + json.dumps({"step": 5, "eval/accuracy": eval_acc}) + "\n"
        )
        (job / "status.json").write_text(json.dumps({"status": "completed", "step": 5, "error": None, "metrics": {}}))
    return job


def _failed(job_dir: Path, exc: BaseException) -> tuple[SimpleNamespace, JobReturn]:
    config = SimpleNamespace(hydra=SimpleNamespace(runtime=SimpleNamespace(output_dir=str(job_dir))))
    ret = JobReturn()
    ret.status, ret.return_value = JobStatus.FAILED, exc
    return config, ret


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001 - a real traceback
        return caught


class FakeAtexit:
    """Stands in for the atexit module (running the real exit hooks would end pytest's)."""

    def __init__(self) -> None:
        self.hooks: list = []

    def register(self, fn) -> None:
        self.hooks.append(fn)

    def unregister(self, fn) -> None:
        self.hooks = [h for h in self.hooks if h != fn]


def test_summary_once_at_multirun_end(tmp_path, capsys, monkeypatch):
    exits = FakeAtexit()
    monkeypatch.setattr(callback_module, "atexit", exits)
    sweep = tmp_path / "sweep"
    _job(sweep, 0, ["trainer.lr=1e-3"], 0.25)
    _job(sweep, 1, ["trainer.lr=3e-3"], 0.75)
    callback = SweepSummary(metric="eval/accuracy", plot=True)
    callback.on_multirun_start(SimpleNamespace(hydra=SimpleNamespace(sweep=SimpleNamespace(dir=str(sweep)))))
    assert exits.hooks == [callback.summarise]  # runs at exit if Hydra never calls on_multirun_end
    callback.on_multirun_end(None)
    out = capsys.readouterr().out
    assert f"Sweep summary: {sweep}" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["0"], ["1"])]
    assert [r[:4] for r in rows] == [["1", "completed", "5", "trainer.lr=3e-3"], ["0", "completed", "5", "trainer.lr=1e-3"]]
    with (sweep / "summary.csv").open() as f:
        assert [r["eval/accuracy"] for r in csv.DictReader(f)] == ["0.75", "0.25"]
    assert (sweep / "summary_eval_accuracy.png").is_file()
    # Already summarised: the exit hook is gone and a second call prints nothing.
    assert exits.hooks == []
    assert callback.summarise() is None
    assert capsys.readouterr().out == ""


def test_summary_at_exit_when_a_job_failed(tmp_path, capsys, monkeypatch):
    exits = FakeAtexit()
    monkeypatch.setattr(callback_module, "atexit", exits)
    sweep = tmp_path / "sweep"
    _job(sweep, 0, ["trainer.lr=1e-3"], 0.25)
    _job(sweep, 1, ["trainer.lr=3e-3"], None)
    record_failure(sweep / "1", "ValueError: bad", sweep / "1" / "__main__.log")
    callback = SweepSummary(plot=False)
    callback.on_multirun_start(SimpleNamespace(hydra=SimpleNamespace(sweep=SimpleNamespace(dir=str(sweep)))))
    (hook,) = exits.hooks  # Hydra raised before on_multirun_end; the interpreter exits
    hook()
    out = capsys.readouterr().out
    assert "2 job(s): 1 completed, 1 failed" in out and "error: ValueError: bad" in out
    assert exits.hooks == []


def test_disabled_and_ascending(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    _job(sweep, 0, ["trainer.lr=1e-3"], 0.25)
    _job(sweep, 1, ["trainer.lr=3e-3"], 0.75)
    config = SimpleNamespace(hydra=SimpleNamespace(sweep=SimpleNamespace(dir=str(sweep))))
    off = SweepSummary(enabled=False)
    off.on_multirun_start(config)
    off.on_multirun_end(config)
    assert capsys.readouterr().out == "" and not (sweep / "summary.csv").exists()
    asc = SweepSummary(metric="eval/accuracy", descending=False, plot=False)
    asc.on_multirun_start(config)
    assert asc.summarise() == 0
    out = capsys.readouterr().out
    assert "eval/accuracy ^" in out and not list(sweep.glob("*.png"))
    assert [line.split()[0] for line in out.splitlines() if line.split()[:1] in (["0"], ["1"])] == ["0", "1"]


def test_failed_job_is_recorded_with_traceback(tmp_path, monkeypatch):
    for key in ("RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    job = tmp_path / "job"
    job.mkdir()
    SweepSummary().on_job_end(*_failed(job, _raised(FileNotFoundError("/nonexistent/train.jsonl"))))
    status = json.loads((job / "status.json").read_text())
    assert status["status"] == "failed" and status["step"] == 0
    assert status["error"] == "FileNotFoundError: /nonexistent/train.jsonl"
    log = Path(status["log"])
    assert log.parent == job  # error.log here: pytest's logging has no FileHandler
    assert "Traceback" in log.read_text() and "_raised" in log.read_text()


def test_the_trainers_record_is_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("SLURM_PROCID", raising=False)
    job = tmp_path / "job"
    job.mkdir()
    (job / "status.json").write_text(json.dumps({"status": "failed", "step": 7, "error": "FloatingPointError: nan", "metrics": {}}))
    SweepSummary().on_job_end(*_failed(job, _raised(RuntimeError("wrapped"))))
    status = json.loads((job / "status.json").read_text())
    assert (status["status"], status["step"], status["error"]) == ("failed", 7, "FloatingPointError: nan")
    assert status["log"]
    # a run that completed is left alone (it failed after training; it must not be redone)
    done = {"status": "completed", "step": 5, "error": None, "metrics": {"eval/loss": 1.0}}
    (job / "status.json").write_text(json.dumps(done))
    record_failure(job, "RuntimeError: late", job / "x.log")
    assert json.loads((job / "status.json").read_text()) == done


def test_only_the_first_task_writes(tmp_path, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("SLURM_PROCID", "1")
    job = tmp_path / "job"
    job.mkdir()
    SweepSummary().on_job_end(*_failed(job, _raised(ValueError("x"))))
    assert not (job / "status.json").exists()
    ok = JobReturn()
    ok.status = JobStatus.COMPLETED
    monkeypatch.setenv("SLURM_PROCID", "0")
    SweepSummary().on_job_end(SimpleNamespace(), ok)  # a job that succeeded: nothing to do
    assert not (job / "status.json").exists()


@pytest.mark.slow
def test_basic_launcher_summary_after_a_failed_job(tiny_model_dir, tmp_path):
    """Hydra skips on_multirun_end when a job failed; the summary comes all the same."""
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "rlkit", "-m", "algo=sft", "trainer.max_steps=2", "trainer.batch_size=8",
        "trainer.micro_batch_size=8", "trainer.eval_every=0", "trainer.eval_samples=8", "trainer.save_every=0",
        "data.train_size=64", "data.eval_size=8", "logger=[jsonl]", "data.digits=2,0",
        "sweep_summary.metric=eval/loss", f"hydra.sweep.dir={sweep}",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "data.digits must be >= 1, got 0" in proc.stderr
    out = proc.stdout
    print(out)
    assert f"Sweep summary: {sweep}" in out
    assert "2 job(s): 1 completed, 1 failed" in out
    failed = out[out.index("Failed jobs:") :]
    assert "data.digits=0" in failed and "error: ValueError: data.digits must be >= 1, got 0" in failed
    assert f"log:   {sweep / '1' / '__main__.log'}" in failed
    assert "Traceback" in (sweep / "1" / "__main__.log").read_text()
    with (sweep / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["job"], r["status"], r["data.digits"]) for r in rows] == [("0", "completed", "2"), ("1", "failed", "0")]
    metrics = [json.loads(line) for line in (sweep / "0" / "metrics.jsonl").read_text().splitlines()]
    assert float(rows[0]["eval/loss"]) == pytest.approx(metrics[-1]["eval/loss"])
    assert (sweep / "summary_eval_loss.png").is_file()
