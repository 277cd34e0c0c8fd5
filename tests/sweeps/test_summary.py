"""rlkit.sweeps.summary on a sweep directory laid out as Hydra + hydra-submitit-launcher
write it: ``<sweep>/<num>/.hydra/{overrides,hydra}.yaml``, the trainer's ``metrics.jsonl`` and
``status.json``, and submitit's ``<sweep>/.submitit/<slurm_id>/`` logs and pickles.
"""

from __future__ import annotations

import csv
import json
import math
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlkit.sweeps import summary
from rlkit.sweeps.summary import JobResult, collect, format_table, plot_metric, summary_table

ARRAY = "7"  # the Slurm array job id


# ------------------------------------------------------------------ fake sweep builders


def _job_dir(sweep: Path, num: int, overrides: list[str], slurm: bool = True) -> Path:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    job_id = f"{ARRAY}_{num}" if slurm else f"job_id_for_{num}"
    hydra_cfg = {
        "hydra": {
            "job": {
                "name": "__main__",
                "id": job_id,
                "num": num,
                "override_dirname": ",".join(overrides),
            }
        }
    }
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra_cfg))
    (job / ".hydra" / "config.yaml").write_text("trainer:\n  max_steps: 100\n")
    (job / "__main__.log").write_text("[INFO] - starting\n")
    return job


def _metrics(job: Path, records: list[dict], torn_tail: str | None = None) -> None:
    with (job / "metrics.jsonl").open("w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        if torn_tail is not None:
            f.write(torn_tail)  # a killed run's last, unfinished line


def _status(
    job: Path, status: str, step: int, error: str | None = None, log: str | None = None
) -> None:
    (job / "status.json").write_text(
        json.dumps({"status": status, "step": step, "error": error, "log": log})
    )


def _submitit(sweep: Path, num: int, err: str = "", result=None, submitted=None) -> Path:
    job_id = f"{ARRAY}_{num}"
    folder = sweep / ".submitit" / job_id
    folder.mkdir(parents=True)
    (folder / f"{job_id}_submitted.pkl").write_bytes(pickle.dumps(submitted))
    (folder / f"{job_id}_0_log.out").write_text(
        f"submitit INFO - Starting with JobEnvironment(job_id={job_id}, ...)\n"
    )
    (folder / f"{job_id}_0_log.err").write_text(err)
    if result is not None:
        (folder / f"{job_id}_0_result.pkl").write_bytes(pickle.dumps(result))
    return folder


def _training(lr_scale: float, steps=(10, 20, 30), nan_at=None) -> list[dict]:
    records = []
    for step in steps:
        loss = None if step == nan_at else round(2.0 / (step * lr_scale), 4)
        records.append({"step": step, "loss": loss, "lr": 0.001})
        if step % 20 == 0:  # eval every 20 steps
            records.append(
                {
                    "step": step,
                    "eval/accuracy": round(min(1.0, step * lr_scale / 40), 4),
                    "eval/loss": round(1.0 / (step * lr_scale), 4),
                }
            )
    return records


@pytest.fixture()
def sweep(tmp_path: Path) -> Path:
    """Seven jobs of `algo.beta=... trainer.lr=...` in every state a sweep can hold."""
    from hydra.core.utils import JobReturn, JobStatus

    sweep = tmp_path / "multirun" / "2025-01-01" / "12-00-00"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra:\n  mode: MULTIRUN\n")
    (sweep / ".submitit" / ARRAY).mkdir(parents=True)  # the array's own folder: script only
    (sweep / ".submitit" / ARRAY / f"{ARRAY}_submission.sh").write_text("#!/bin/bash\n")

    # 0, 1: completed; 1 is the best by eval/accuracy
    job = _job_dir(sweep, 0, ["algo.beta=0.05", "trainer.lr=1e-3"])
    _metrics(job, _training(0.9, steps=(10, 20, 30, 40)))
    _status(job, "completed", 40)
    _submitit(sweep, 0)
    job = _job_dir(sweep, 1, ["algo.beta=0.1", "trainer.lr=1e-3"])
    _metrics(job, _training(1.5, steps=(10, 20, 30, 40)))
    _status(job, "completed", 40)
    _submitit(sweep, 1)

    # 2: the trainer caught a divergence and recorded it
    job = _job_dir(sweep, 2, ["algo.beta=0.2", "trainer.lr=1e-3"])
    _metrics(job, _training(0.5, steps=(10, 20, 30), nan_at=30))
    _status(
        job,
        "failed",
        30,
        error="FloatingPointError: loss is nan at step 30",
        log=str(job / "__main__.log"),
    )
    _submitit(sweep, 2, err="Traceback (most recent call last):\nFloatingPointError: loss is nan\n")

    # 3: still running; its last line is half written
    job = _job_dir(sweep, 3, ["algo.beta=0.05", "trainer.lr=3e-3"])
    _metrics(job, _training(1.2, steps=(10, 20)), torn_tail='{"step": 30, "loss": 0.0')
    _status(job, "running", 20)
    _submitit(sweep, 3)

    # 4: Hydra ran the job, which raised before the trainer started (no status.json):
    # the launcher's JobReturn holds the exception, no log has a traceback
    job = _job_dir(sweep, 4, ["algo.beta=0.1", "trainer.lr=3e-3"])
    ret = JobReturn(overrides=["algo.beta=0.1", "trainer.lr=3e-3"])
    ret.return_value = ValueError("trainer.batch_size=3 is not divisible by micro_batch_size=2")
    ret.status = JobStatus.FAILED
    _submitit(sweep, 4, result=("success", ret), err="submitit INFO - Job completed successfully\n")

    # 5: killed by Slurm at its time limit while the trainer said "running"
    job = _job_dir(sweep, 5, ["algo.beta=0.2", "trainer.lr=3e-3"])
    _metrics(job, _training(0.8, steps=(10, 20)))
    _status(job, "running", 20)
    _submitit(
        sweep,
        5,
        err=(
            "submitit WARNING - Bypassing signal SIGTERM\n"
            "slurmstepd-vm: error: *** JOB 13 ON vm CANCELLED AT 2025-01-01T12:10:00 "
            "DUE TO TIME LIMIT ***\n"
        ),
    )

    # 6: array task still queued: only submitit's pickle exists
    pending = _PickledSubmission(["algo.beta=0.05", "trainer.lr=1e-2"], 6)
    _submitit(sweep, 6, submitted=pending)
    (sweep / ".submitit" / f"{ARRAY}_6" / f"{ARRAY}_6_0_log.out").unlink()
    (sweep / ".submitit" / f"{ARRAY}_6" / f"{ARRAY}_6_0_log.err").unlink()
    return sweep


class _PickledSubmission:
    """Stands in for submitit's DelayedSubmission: ``.args`` as the Hydra launcher passes."""

    def __init__(self, overrides: list[str], num: int) -> None:
        self.args = (overrides, "hydra.sweep.dir", num, f"job_id_for_{num}", {})


def _by_num(results: list[JobResult]) -> dict[int, JobResult]:
    return {r.job_num: r for r in results}


# ------------------------------------------------------------------------------ collect


def test_collect_reads_every_job_and_state(sweep: Path) -> None:
    results = collect(sweep)
    assert [r.job_num for r in results] == [0, 1, 2, 3, 4, 5, 6]
    jobs = _by_num(results)
    assert {n: r.status for n, r in jobs.items()} == {
        0: "completed",
        1: "completed",
        2: "failed",
        3: "running",
        4: "failed",
        5: "failed",
        6: "pending",
    }
    assert jobs[1].overrides == ["algo.beta=0.1", "trainer.lr=1e-3"]
    assert jobs[1].job_id == f"{ARRAY}_1"
    assert jobs[1].job_dir == sweep / "1"
    assert jobs[1].label == "algo.beta=0.1 trainer.lr=1e-3"

    # the trainer's own record
    assert jobs[2].error == "FloatingPointError: loss is nan at step 30"
    assert jobs[2].log == str(sweep / "2" / "__main__.log")
    assert jobs[2].step == 30
    # no status.json: the error comes from Hydra's JobReturn in submitit's result
    assert jobs[4].error == (
        "ValueError: trainer.batch_size=3 is not divisible by micro_batch_size=2"
    )
    assert jobs[4].log == str(sweep / ".submitit" / f"{ARRAY}_4" / f"{ARRAY}_4_0_log.err")
    # status.json still says running, but Slurm killed it
    assert jobs[5].error == "Slurm cancelled the job due to time limit"
    assert jobs[5].log.endswith(f"{ARRAY}_5_0_log.err")
    # not started: overrides recovered from the submission
    assert jobs[6].job_dir is None
    assert jobs[6].overrides == ["algo.beta=0.05", "trainer.lr=1e-2"]
    assert jobs[6].metrics == {}


def test_final_metrics_are_the_last_value_of_each_key(sweep: Path) -> None:
    jobs = _by_num(collect(sweep))
    # eval/* is logged every 20 steps, loss every 10: each keeps its own last value
    assert jobs[0].metrics == {
        "loss": 0.0556,
        "lr": 0.001,
        "eval/accuracy": 0.9,
        "eval/loss": 0.0278,
    }
    assert jobs[0].step == 40
    assert jobs[1].metrics["eval/accuracy"] == pytest.approx(1.0)
    assert jobs[3].metrics["eval/accuracy"] == pytest.approx(0.6)
    # a diverged loss (written as null) is nan, not the last finite value
    assert math.isnan(jobs[2].metrics["loss"])
    assert jobs[2].metrics["eval/accuracy"] == pytest.approx(0.25)
    # the torn line of the running job is ignored
    assert jobs[3].metrics["loss"] == pytest.approx(round(2.0 / 24, 4))
    assert jobs[3].step == 20


def test_collect_reports_broken_files_on_the_job(sweep: Path) -> None:
    with (sweep / "0" / "metrics.jsonl").open("r+") as f:
        lines = f.readlines()
        lines.insert(1, "{not json\n")
        f.seek(0)
        f.writelines(lines)
    (sweep / "1" / "status.json").write_text("{")
    jobs = _by_num(collect(sweep))
    assert "unreadable metrics.jsonl: line 2" in jobs[0].error
    assert jobs[0].status == "completed"
    assert "unreadable status.json" in jobs[1].error


def test_local_multirun_without_submitit(tmp_path: Path) -> None:
    """The basic launcher: no Slurm ids, no .submitit; no status.json -> unknown."""
    sweep = tmp_path / "sweep"
    job = _job_dir(sweep, 0, ["trainer.lr=1e-3"], slurm=False)
    _metrics(job, _training(1.0))
    _status(job, "completed", 30)
    _job_dir(sweep, 1, ["trainer.lr=1e-2"], slurm=False)
    results = collect(sweep)
    assert [(r.job_num, r.job_id, r.status) for r in results] == [
        (0, None, "completed"),
        (1, None, "unknown"),
    ]


def test_collect_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="sweep directory not found"):
        collect(tmp_path / "nope")


# ------------------------------------------------------------------------------- tables


def test_summary_table_sorts_best_first_and_missing_last(sweep: Path) -> None:
    results = collect(sweep)
    rows = summary_table(results, "eval/accuracy")  # accuracy: descending inferred
    assert [r["job"] for r in rows][:5] == ["1", "0", "3", "5", "2"]
    assert {r["job"] for r in rows[5:]} == {"4", "6"}  # no eval/accuracy
    assert list(rows[0])[:9] == [
        "job",
        "job_id",
        "status",
        "step",
        "overrides",
        "algo.beta",
        "trainer.lr",
        "eval/accuracy",
        "eval/loss",
    ]
    assert rows[0]["algo.beta"] == "0.1" and rows[0]["trainer.lr"] == "1e-3"
    assert rows[-1]["eval/accuracy"] is None

    # losses ascend by default; the direction can be forced
    by_loss = summary_table(results, "eval/loss")
    assert [r["job"] for r in by_loss][:2] == ["1", "0"]
    assert summary_table(results, "eval/loss", descending=True)[0]["job"] == "2"
    asc = summary_table(results, "eval/accuracy", descending=False)
    assert asc[0]["job"] == "2"

    # nan sorts with the missing values, after every real number
    by_train_loss = summary_table(results, "loss")
    assert by_train_loss[0]["job"] == "1"
    assert "2" in {r["job"] for r in by_train_loss[-3:]}


def test_infer_descending() -> None:
    assert summary.infer_descending("eval/accuracy")
    assert summary.infer_descending("eval/reward_mean")
    assert not summary.infer_descending("eval/loss")
    assert not summary.infer_descending("train/kl")
    assert not summary.infer_descending("eval/perplexity")


def test_write_csv_round_trips(sweep: Path, tmp_path: Path) -> None:
    results = collect(sweep)
    path = summary.write_csv(results, tmp_path / "out" / "summary.csv", sort_by="eval/accuracy")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 7
    assert rows[0]["job"] == "1"
    assert float(rows[0]["eval/accuracy"]) == pytest.approx(1.0)
    assert rows[0]["status"] == "completed" and rows[0]["error"] == ""
    failed = {r["job"]: r for r in rows if r["status"] == "failed"}
    assert set(failed) == {"2", "4", "5"}
    assert failed["4"]["error"].startswith("ValueError: trainer.batch_size=3")
    assert failed["2"]["eval/accuracy"] == "0.25" and failed["2"]["loss"] == "nan"
    assert rows[-1]["overrides"] in {
        "algo.beta=0.1 trainer.lr=3e-3",
        "algo.beta=0.05 trainer.lr=1e-2",
    }


def test_format_table_is_aligned_and_lists_failures(sweep: Path) -> None:
    text = format_table(collect(sweep), "eval/accuracy")
    lines = text.splitlines()
    header, rule = lines[0], lines[1]
    assert header.split()[:5] == ["job", "status", "step", "overrides", "eval/accuracy"]
    assert set(rule.replace(" ", "")) == {"-"}
    table = lines[2:9]
    assert len(table) == 7
    # fixed-width: each column starts at the same offset on every line
    status_col = header.index("status")
    assert all(line[status_col:].split()[0] in summary.STATUSES for line in table)
    overrides_col = header.index("overrides")
    assert [line[overrides_col:].split()[0] for line in table[:2]] == [
        "algo.beta=0.1",
        "algo.beta=0.05",
    ]
    assert table[0].split()[:2] == ["1", "completed"]
    assert "7 job(s): 2 completed, 1 running, 1 pending, 3 failed" in text

    failed = text[text.index("Failed jobs:") :]
    assert "job 2: algo.beta=0.2 trainer.lr=1e-3" in failed
    assert "error: FloatingPointError: loss is nan at step 30" in failed
    assert f"log:   {sweep / '2' / '__main__.log'}" in failed
    assert "job 4: algo.beta=0.1 trainer.lr=3e-3" in failed
    assert "error: Slurm cancelled the job due to time limit" in failed
    assert "job 0:" not in failed


def test_format_table_clips_long_overrides(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    job = _job_dir(sweep, 0, [f"model.layer_{i}.dropout=0.1" for i in range(10)], slurm=False)
    _metrics(job, _training(1.0))
    _status(job, "completed", 30)
    text = format_table(collect(sweep), "eval/accuracy", overrides_width=40)
    assert "..." in text.splitlines()[2]
    assert max(len(line) for line in text.splitlines()[:3]) < 120


# --------------------------------------------------------------------------------- plot


def test_plot_metric_writes_png(sweep: Path, tmp_path: Path) -> None:
    out = plot_metric(collect(sweep), "eval/accuracy", tmp_path / "plots" / "acc.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_plot_metric_no_job_has_it(sweep: Path, tmp_path: Path) -> None:
    out = plot_metric(collect(sweep), "eval/unknown", tmp_path / "empty.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_module_import_is_light() -> None:
    code = (
        "import sys, rlkit.sweeps.summary; "
        "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------- CLI


def test_main_writes_csv_plot_and_prints_table(sweep: Path, capsys) -> None:
    assert summary.main([str(sweep), "--metric", "eval/accuracy", "--plot"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[4] == "eval/accuracy"
    assert "Failed jobs:" in out and "algo.beta=0.2 trainer.lr=1e-3" in out
    assert (sweep / "summary.csv").is_file()
    assert (sweep / "summary_eval_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    with (sweep / "summary.csv").open() as f:
        assert next(csv.DictReader(f))["job"] == "1"


def test_main_ascending_and_default_metric(sweep: Path, capsys) -> None:
    assert summary.main([str(sweep), "--ascending"]) == 0  # metric: first eval/* one
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    assert "eval/accuracy ^" in header
    assert out.splitlines()[2].split()[:2] == ["2", "failed"]
    assert not list(sweep.glob("*.png"))


def test_main_as_module_subprocess(sweep: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rlkit.sweeps.summary", str(sweep), "--metric", "eval/loss"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[2].split()[:2] == ["1", "completed"]


def test_main_without_jobs(tmp_path: Path, capsys) -> None:
    assert summary.main([str(tmp_path)]) == 2
    assert "no Hydra job directories" in capsys.readouterr().err
    assert summary.main([str(tmp_path / "missing")]) == 2
