"""Sweeps on a real (local, single-node) Slurm cluster through hydra-submitit-launcher.

Each test runs ``python -m rlkit -m ... hydra/launcher=submitit_slurm`` as a user would, in
a subprocess that talks to the session's private cluster (``slurm_cluster`` fixture:
SLURM_CONF and the sacct stand-in come with the inherited environment, RLKIT_CACHE is the
session's). Jobs are tiny: 4 steps of SFT on 200 arithmetic samples, 1 CPU each.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlkit.sweeps.summary import collect

pytest.importorskip("submitit")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

TINY = [
    "algo=sft",
    "trainer.max_steps=4",
    "trainer.batch_size=16",
    "trainer.micro_batch_size=16",
    "trainer.warmup_steps=0",
    "trainer.eval_every=0",
    "trainer.eval_samples=16",
    "trainer.save_every=2",
    "data.train_size=200",
    "data.eval_size=16",
    "logger=[jsonl]",
]


#: hydra.launcher settings of the tests' jobs (1 CPU, 2 GB); None keeps rlkit's preset.
LAUNCHER = {"cpus_per_task": 1, "mem_gb": 2, "timeout_min": 10}


def slurm_sweep(
    cluster,
    sweep_dir: Path,
    *overrides: str,
    timeout: float = 420,
    launcher: dict | None = None,
    tiny: list[str] = TINY,
) -> subprocess.CompletedProcess:
    """``python -m rlkit -m`` on the cluster; the jobs get 1 CPU and 2 GB each by default."""
    settings = {"partition": cluster.partition, **LAUNCHER, **(launcher or {})}
    cmd = [
        sys.executable, "-m", "rlkit", "-m", *tiny,
        "hydra/launcher=submitit_slurm",
        *(f"hydra.launcher.{key}={value}" for key, value in settings.items() if value is not None),
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]
    env = {**os.environ, **cluster.env, "HYDRA_FULL_ERROR": "0"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    print(f"\n`{' '.join(overrides)}` took {time.perf_counter() - t0:.1f}s (exit {proc.returncode})")
    return proc


def last_values(metrics_path: Path) -> dict[str, float]:
    final: dict[str, float] = {}
    for line in metrics_path.read_text().splitlines():
        final.update({k: v for k, v in json.loads(line).items() if k != "step"})
    return final


def job_dir(sweep_dir: Path, num: int) -> Path:
    return sweep_dir / str(num)


def show(proc: subprocess.CompletedProcess) -> str:
    return f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"


#: A model directory that does not exist: a config that composes, a job that fails on the node.
MISSING_MODEL = "/nonexistent/model"
#: 4 jobs: (cosine, tiny), (cosine, missing), (constant, tiny), (constant, missing).
GRID = ("trainer.lr=1e-3", "trainer.schedule=cosine,constant", f"model.name_or_path=builtin:tiny,{MISSING_MODEL}")
MISSING_ERROR = f"FileNotFoundError: model.name_or_path: directory not found: {MISSING_MODEL}"


@pytest.fixture(scope="module")
def failing_sweep(slurm_cluster, tiny_model_dir, tmp_path_factory):
    """4 jobs as one Slurm array; the two with a missing model directory fail in their job."""
    sweep_dir = tmp_path_factory.mktemp("slurm-sweep") / "sweep"
    proc = slurm_sweep(slurm_cluster, sweep_dir, *GRID)
    return sweep_dir, proc


def test_sweep_runs_as_a_job_array_and_summarises(failing_sweep):
    sweep_dir, proc = failing_sweep
    # One job failed: Hydra re-raises its error at the end, after every job has finished.
    assert proc.returncode == 1, show(proc)
    assert MISSING_ERROR.split(": ", 1)[1] in proc.stderr, show(proc)

    results = {r.job_num: r for r in collect(sweep_dir)}
    assert sorted(results) == [0, 1, 2, 3]
    assert {n: r.status for n, r in results.items()} == {0: "completed", 1: "failed", 2: "completed", 3: "failed"}
    array_ids = {r.job_id.split("_")[0] for r in results.values()}
    assert len(array_ids) == 1 and all(re.fullmatch(r"\d+_\d", r.job_id) for r in results.values())
    for num, r in results.items():
        assert r.job_dir == job_dir(sweep_dir, num)  # every run dir under the sweep dir
        assert (sweep_dir / ".submitit" / r.job_id).is_dir()
    # Resources followed the run's config: one task (backend=single), what the test asked.
    script = next((sweep_dir / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --ntasks-per-node=1" in script and "#SBATCH --cpus-per-task=1" in script
    assert "#SBATCH --mem=2GB" in script and "#SBATCH --time=10" in script

    # The table printed at the end and summary.csv hold each job's own final metrics.
    with (sweep_dir / "summary.csv").open() as f:
        rows = {row["job"]: row for row in csv.DictReader(f)}
    for num in (0, 2):
        own = last_values(job_dir(sweep_dir, num) / "metrics.jsonl")
        assert results[num].metrics == own
        assert {"eval/accuracy", "eval/loss", "loss"} <= set(own)
        for key, value in own.items():
            assert float(rows[str(num)][key]) == pytest.approx(value, rel=1e-9, abs=1e-12) or (
                math.isnan(value) and rows[str(num)][key] == "nan"
            )
        assert rows[str(num)]["status"] == "completed"
        assert rows[str(num)]["trainer.schedule"] == ("cosine" if num == 0 else "constant")
    out = proc.stdout
    assert f"Sweep summary: {sweep_dir}" in out
    table = out[out.index("job  status") :]
    eval_loss = {n: f"{results[n].metrics['eval/loss']:.4g}" for n in (0, 2)}
    for num, schedule in ((0, "cosine"), (2, "constant")):
        line = next(l for l in table.splitlines() if l.split()[:1] == [str(num)])
        assert line.split()[1:4] == ["completed", "4", f"trainer.schedule={schedule}"]
        assert eval_loss[num] in line.split()
    assert (sweep_dir / "summary_eval_accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_failed_job_is_reported_with_overrides_and_log(failing_sweep):
    sweep_dir, proc = failing_sweep
    failed = proc.stdout[proc.stdout.index("Failed jobs:") :]
    assert "job 1: " in failed and f"model.name_or_path={MISSING_MODEL}" in failed
    assert f"error: {MISSING_ERROR}" in failed
    log = Path(re.search(r"log:\s+(\S+)", failed).group(1))
    assert log == job_dir(sweep_dir, 1) / "__main__.log"
    assert "Traceback" in log.read_text() and MISSING_ERROR in log.read_text()
    status = json.loads((job_dir(sweep_dir, 1) / "status.json").read_text())
    assert status["status"] == "failed" and status["log"] == str(log)


def test_rerun_resumes_unfinished_jobs_and_keeps_finished_ones(slurm_cluster, failing_sweep):
    sweep_dir, first = failing_sweep
    assert "Sweep summary" in first.stdout, show(first)
    done, cut = job_dir(sweep_dir, 0), job_dir(sweep_dir, 2)
    done_metrics = (done / "metrics.jsonl").read_bytes()
    done_final_mtime = (done / "final" / "model.safetensors").stat().st_mtime_ns
    before = [json.loads(line) for line in (cut / "metrics.jsonl").read_text().splitlines()]
    # Job 2 as a job killed after step 3 leaves it: a checkpoint at step 2 (not the one the
    # finished run took at its last step), no final model.
    assert (cut / "checkpoints" / "step_00000002").is_dir()
    shutil.rmtree(cut / "checkpoints" / "step_00000004")
    shutil.rmtree(cut / "final")
    (cut / "status.json").write_text(json.dumps({"status": "running", "step": 3, "error": None, "metrics": {}}))

    proc = slurm_sweep(slurm_cluster, sweep_dir, *GRID)
    assert proc.returncode == 1, show(proc)

    results = {r.job_num: r for r in collect(sweep_dir)}
    assert {n: r.status for n, r in results.items()} == {0: "completed", 1: "failed", 2: "completed", 3: "failed"}
    # Finished: not trained again.
    assert (done / "metrics.jsonl").read_bytes() == done_metrics
    assert (done / "final" / "model.safetensors").stat().st_mtime_ns == done_final_mtime
    assert "already completed; not training again" in (done / "__main__.log").read_text() + _task_logs(sweep_dir, results[0].job_id)
    # Interrupted: resumed from step 2, so the initial evaluation and steps 1-2 are not
    # repeated; it ends where an uninterrupted run ends (the RNG is restored).
    after = [json.loads(line) for line in (cut / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in after] == [r["step"] for r in before]
    assert after[:3] == before[:3]
    assert after[-1]["eval/loss"] == pytest.approx(before[-1]["eval/loss"], rel=1e-4)
    assert "resumed from" in _task_logs(sweep_dir, results[2].job_id)
    assert (cut / "final" / "model.safetensors").is_file()
    # One row per job, though the first submission's folders are still there.
    assert len(list((sweep_dir / ".submitit").glob("*_2"))) == 2
    assert proc.stdout.count("4 job(s): 2 completed, 2 failed") == 1


def _task_logs(sweep_dir: Path, job_id: str) -> str:
    return "".join(p.read_text() for p in (sweep_dir / ".submitit" / job_id).glob("*_log.*"))


def test_each_resource_shape_is_one_array(slurm_cluster, tiny_model_dir, tmp_path):
    """backend.nproc_per_node=1,2 -> tasks_per_node 1 and 2: two arrays, one summary. In
    the 2-task job each Slurm task is one DDP rank."""
    sweep_dir = tmp_path / "sweep"
    proc = slurm_sweep(
        slurm_cluster, sweep_dir, "backend=ddp", "backend.nproc_per_node=1,2", "backend.device=cpu"
    )
    assert proc.returncode == 0, show(proc)

    results = {r.job_num: r for r in collect(sweep_dir)}
    assert {n: r.status for n, r in results.items()} == {0: "completed", 1: "completed"}, show(proc)
    timing = next(line for line in proc.stdout.splitlines() if "resource request(s)" in line)
    print(timing)  # what resolving each job's resources and checking them took
    assert "2 job(s), 2 resource request(s): resolved in" in timing
    assert "checked against the partition in" in timing
    # one submission each (submitit submits a one-job array as a plain job)
    ids = [results[0].job_id, results[1].job_id]
    assert ids[0] != ids[1] and all(re.fullmatch(r"\d+", i) for i in ids)
    for job_id, tasks in zip(ids, (1, 2)):
        script = (sweep_dir / ".submitit" / job_id / f"{job_id}_submission.sh").read_text()
        assert f"#SBATCH --ntasks-per-node={tasks}" in script
        assert "#SBATCH --mem=2GB" in script
    assert proc.stdout.count("2 job(s): 2 completed") == 1  # one summary for both arrays

    result = results[1]
    folder = sweep_dir / ".submitit" / result.job_id
    # Two tasks ran (one log pair each), as ranks 0 and 1 of one process group.
    assert sorted(p.name for p in folder.glob("*_log.out")) == [f"{result.job_id}_0_log.out", f"{result.job_id}_1_log.out"]
    # Rank 0 alone logs and reports (two independent runs would both have).
    rank0, rank1 = (folder / f"{result.job_id}_{i}_log.out" for i in (0, 1))
    assert "held-out metrics" in rank0.read_text() and "held-out metrics" not in rank1.read_text()
    steps = [json.loads(line)["step"] for line in (result.job_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3, 4, 4]
    config = (result.job_dir / ".hydra" / "config.yaml").read_text()
    assert "nproc_per_node: 2" in config
    metrics = last_values(result.job_dir / "metrics.jsonl")
    assert result.metrics == metrics and metrics["eval/loss"] < 7
    assert (result.job_dir / "final" / "model.safetensors").is_file()
