"""rlkit's submitit_local launcher: jobs in parallel processes here, recorded as JSON."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlkit.sweeps.records import read_job_records, read_submissions
from rlkit.sweeps.summary import collect
from tests.sweeps.test_slurm_sweeps import REPO, TINY, show

pytest.importorskip("submitit")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

pytestmark = pytest.mark.slow


def test_local_sweep_records_each_job(tiny_model_dir, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable, "-m", "rlkit", "-m", *TINY, "hydra/launcher=submitit_local",
            f"hydra.sweep.dir={sweep_dir}", "model.name_or_path=builtin:tiny,/nonexistent/model",
        ],
        cwd=REPO, env={**os.environ, "HYDRA_FULL_ERROR": "0"},
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 1, show(proc)
    results = {r.job_num: r for r in collect(sweep_dir)}
    assert {n: r.status for n, r in results.items()} == {0: "completed", 1: "failed"}, show(proc)
    assert "model.name_or_path: directory not found: /nonexistent/model" in results[1].error
    # the launcher's and the jobs' own records, keyed by submitit's job id (a process id here)
    submissions = read_submissions(sweep_dir)
    records = read_job_records(sweep_dir)
    assert sorted(s.job_num for s in submissions.values()) == [0, 1]
    assert {records[r.job_id].state for r in results.values()} == {"completed", "failed"}
    assert all(records[r.job_id].starts == 1 and records[r.job_id].requeues == 0 for r in results.values())
    assert "2 job(s): 1 completed, 1 failed" in proc.stdout
