"""rlkit.sweeps.summary on a sweep directory laid out as Hydra + rlkit's submitit launchers
write it: ``<sweep>/<num>/.hydra/{overrides,hydra}.yaml``, the trainer's ``metrics.jsonl`` and
``status.json``, rlkit's JSON records in ``<sweep>/.rlkit/`` and submitit's logs (and
pickles, which the summary never opens) in ``<sweep>/.submitit/<slurm_id>/``.
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
from rlkit.sweeps.records import Submission, append_submissions, update_job_record
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


def _submitit(
    sweep: Path,
    num: int,
    overrides: list[str],
    err: str = "",
    state: str | None = "running",
    error: str | None = None,
    requeues: int = 0,
) -> Path:
    """What rlkit's Slurm launcher and the job leave: records, submitit's logs and pickles."""
    job_id = f"{ARRAY}_{num}"
    folder = sweep / ".submitit" / job_id
    folder.mkdir(parents=True)
    stderr = folder / f"{job_id}_0_log.err"
    append_submissions(sweep, [Submission(job_id, num, overrides, {"tasks_per_node": 1}, [str(stderr)])])
    # submitit's own pickles: never read by the summary
    (folder / f"{job_id}_submitted.pkl").write_bytes(pickle.dumps(("submitted", overrides)))
    if state is None:  # not started: no logs, no record of its own
        return folder
    (folder / f"{job_id}_0_log.out").write_text(
        f"submitit INFO - Starting with JobEnvironment(job_id={job_id}, ...)\n"
    )
    stderr.write_text(err)
    update_job_record(sweep, job_id, state=state, job_num=num, error=error, started=True, requeues=requeues)
    if state in ("completed", "failed"):
        (folder / f"{job_id}_0_result.pkl").write_bytes(pickle.dumps(("success", state)))
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
    sweep = tmp_path / "multirun" / "2025-01-01" / "12-00-00"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra:\n  mode: MULTIRUN\n")
    (sweep / ".submitit" / ARRAY).mkdir(parents=True)  # the array's own folder: script only
    (sweep / ".submitit" / ARRAY / f"{ARRAY}_submission.sh").write_text("#!/bin/bash\n")

    # 0, 1: completed; 1 is the best by eval/accuracy
    overrides = ["algo.beta=0.05", "trainer.lr=1e-3"]
    job = _job_dir(sweep, 0, overrides)
    _metrics(job, _training(0.9, steps=(10, 20, 30, 40)))
    _status(job, "completed", 40)
    _submitit(sweep, 0, overrides, state="completed")
    overrides = ["algo.beta=0.1", "trainer.lr=1e-3"]
    job = _job_dir(sweep, 1, overrides)
    _metrics(job, _training(1.5, steps=(10, 20, 30, 40)))
    _status(job, "completed", 40)
    _submitit(sweep, 1, overrides, state="completed")

    # 2: the trainer caught a divergence and recorded it
    overrides = ["algo.beta=0.2", "trainer.lr=1e-3"]
    job = _job_dir(sweep, 2, overrides)
    _metrics(job, _training(0.5, steps=(10, 20, 30), nan_at=30))
    _status(
        job,
        "failed",
        30,
        error="FloatingPointError: loss is nan at step 30",
        log=str(job / "__main__.log"),
    )
    _submitit(
        sweep, 2, overrides, state="failed", error="FloatingPointError: loss is nan",
        err="Traceback (most recent call last):\nFloatingPointError: loss is nan\n",
    )

    # 3: still running; its last line is half written
    overrides = ["algo.beta=0.05", "trainer.lr=3e-3"]
    job = _job_dir(sweep, 3, overrides)
    _metrics(job, _training(1.2, steps=(10, 20)), torn_tail='{"step": 30, "loss": 0.0')
    _status(job, "running", 20)
    _submitit(sweep, 3, overrides)

    # 4: Hydra ran the job, which raised before the trainer started (no status.json):
    # the job's own record holds the exception, no log has a traceback
    overrides = ["algo.beta=0.1", "trainer.lr=3e-3"]
    _job_dir(sweep, 4, overrides)
    _submitit(
        sweep, 4, overrides, state="failed",
        error="ValueError: trainer.batch_size=3 is not divisible by micro_batch_size=2",
        err="submitit INFO - Job completed successfully\n",
    )

    # 5: killed by Slurm at its time limit while the trainer said "running"
    overrides = ["algo.beta=0.2", "trainer.lr=3e-3"]
    job = _job_dir(sweep, 5, overrides)
    _metrics(job, _training(0.8, steps=(10, 20)))
    _status(job, "running", 20)
    _submitit(
        sweep,
        5,
        overrides,
        err=(
            "submitit WARNING - Bypassing signal SIGTERM\n"
            "slurmstepd-vm: error: *** JOB 13 ON vm CANCELLED AT 2025-01-01T12:10:00 "
            "DUE TO TIME LIMIT ***\n"
            "srun: error: vm: task 0: Terminated\n"
        ),
    )

    # 6: array task still queued: only the launcher's record (and submitit's pickle) exist
    _submitit(sweep, 6, ["algo.beta=0.05", "trainer.lr=1e-2"], state=None)
    return sweep


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
    # no status.json: the error comes from the job's own record
    assert jobs[4].error == (
        "ValueError: trainer.batch_size=3 is not divisible by micro_batch_size=2"
    )
    assert jobs[4].log == str(sweep / ".submitit" / f"{ARRAY}_4" / f"{ARRAY}_4_0_log.err")
    # status.json still says running, but Slurm killed it
    assert jobs[5].error == "Slurm cancelled the job due to time limit"
    assert jobs[5].log.endswith(f"{ARRAY}_5_0_log.err")
    # not started: overrides from the launcher's record
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
    assert "unreadable metrics.jsonl: " in jobs[0].error and "metrics.jsonl line 2: not JSON" in jobs[0].error
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


# ------------------------------------------------------------------ records, not pickles


class _PlantedCode:
    """A pickle that creates ``marker`` when loaded (what an attacker would plant)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


_AUDIT_SUMMARY = """
import sys
unpickled = []
sys.addaudithook(lambda event, args: unpickled.append(args) if event == "pickle.find_class" else None)
from rlkit.sweeps.summary import main
code = main(sys.argv[1:])
print("find_class events:", len(unpickled))
sys.exit(code)
"""


def _run_summary_audited(sweep: Path) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter that counts every class an unpickler looks up."""
    return subprocess.run(
        [sys.executable, "-c", _AUDIT_SUMMARY, str(sweep), "--plot"],
        capture_output=True,
        text=True,
        check=False,
    )


def test_summary_never_unpickles_planted_pickles(sweep: Path, tmp_path: Path) -> None:
    """Pickles planted where submitit keeps its own are left alone; the summary still works."""
    marker = tmp_path / "planted-code-ran"
    payload = pickle.dumps(_PlantedCode(marker))
    pickles = list((sweep / ".submitit").rglob("*.pkl"))
    assert len(pickles) >= 7
    for path in pickles:
        path.write_bytes(payload)
    for num in range(7):  # result pickles for every job, also those that have none
        (sweep / ".submitit" / f"{ARRAY}_{num}" / f"{ARRAY}_{num}_0_result.pkl").write_bytes(payload)

    proc = _run_summary_audited(sweep)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    assert "find_class events: 0" in proc.stdout
    # the table is the one the records give
    assert "7 job(s): 2 completed, 1 running, 1 pending, 3 failed" in proc.stdout


def test_summary_reads_no_file_as_a_pickle(sweep: Path, tmp_path: Path) -> None:
    """Every file of the sweep replaced by a planted pickle: errors on the jobs, no code runs."""
    marker = tmp_path / "planted-code-ran"
    payload = pickle.dumps(_PlantedCode(marker))
    files = [p for p in sweep.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {
        "overrides.yaml", "hydra.yaml", "metrics.jsonl", "status.json", "submitted.jsonl",
        f"{ARRAY}_4.json", f"{ARRAY}_5_0_log.err", f"{ARRAY}_0_submitted.pkl",
    }
    for path in files:
        path.write_bytes(payload)

    proc = _run_summary_audited(sweep)
    assert not marker.exists()
    assert "find_class events: 0" in proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert "unreadable overrides.yaml" in proc.stdout or "unreadable" in (sweep / "summary.csv").read_text()


def test_requeued_jobs_are_counted(sweep: Path) -> None:
    """A job that Slurm requeued: its count is a column and a line of the summary."""
    update_job_record(sweep, f"{ARRAY}_0", state="completed", started=True, requeues=2)
    update_job_record(sweep, f"{ARRAY}_3", state="requeued", requeues=1)
    jobs = _by_num(collect(sweep))
    assert [jobs[n].requeues for n in range(7)] == [2, 0, 0, 1, 0, 0, 0]
    assert jobs[0].status == "completed"
    # status.json still says running; its record says requeued: waiting to run again
    assert jobs[3].status == "pending"
    # the attempt that Slurm stopped recorded its end, but the job will run again
    update_job_record(sweep, f"{ARRAY}_2", state="requeued", requeues=1)
    assert _by_num(collect(sweep))[2].status == "pending"
    update_job_record(sweep, f"{ARRAY}_2", state="failed", error="x")

    text = format_table(list(jobs.values()), "eval/accuracy")
    header = text.splitlines()[0].split()
    assert header[:5] == ["job", "status", "step", "requeues", "overrides"]
    row0 = next(line for line in text.splitlines()[2:] if line.split()[0] == "0")
    assert row0.split()[:4] == ["0", "completed", "40", "2"]
    assert "requeued by Slurm: 2 job(s), 3 time(s) in all" in text
    rows = {row["job"]: row for row in summary_table(list(jobs.values()), "eval/accuracy")}
    assert rows["0"]["requeues"] == 2 and list(rows["0"])[:5] == ["job", "job_id", "status", "step", "requeues"]


def test_a_requeue_in_the_log_is_not_a_failure(sweep: Path) -> None:
    """Slurm appends the logs of a requeued job: only what follows the requeue counts."""
    log = sweep / ".submitit" / f"{ARRAY}_3" / f"{ARRAY}_3_0_log.err"
    requeue = (
        "submitit WARNING - Caught signal SIGUSR2 on vm: this job is timed-out.\n"
        "slurmstepd-vm: error: *** STEP 7_3.0 ON vm CANCELLED AT 2025-01-01T12:10:00 DUE TO JOB REQUEUE ***\n"
        "slurmstepd-vm: error: *** JOB 7_3 ON vm CANCELLED AT 2025-01-01T12:10:00 DUE TO JOB REQUEUE ***\n"
        "srun: error: vm: task 0: Terminated\n"
    )
    log.write_text(requeue)
    update_job_record(sweep, f"{ARRAY}_3", state="running", started=True, requeues=1)
    assert _by_num(collect(sweep))[3].status == "running"
    # the second attempt is killed by the kernel
    log.write_text(requeue + "srun: error: vm: task 0: Killed\n")
    job = _by_num(collect(sweep))[3]
    assert (job.status, job.error, job.log) == ("failed", "Slurm task ended: Killed", str(log))
