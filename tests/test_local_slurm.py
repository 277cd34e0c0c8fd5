"""A real single-node Slurm cluster on localhost, driven through submitit.

Uses the session fixture ``slurm_cluster`` (tests/slurm_fixtures.py). The job functions are
defined inside the tests so cloudpickle ships them by value: the job's Python process does
not have tests/ on its path.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

try:
    from tests.slurm_cluster import LocalSlurmCluster, wait_for_submitit_job
except ModuleNotFoundError:  # tests/ itself on sys.path (pytest's prepend import mode)
    from slurm_cluster import LocalSlurmCluster, wait_for_submitit_job

submitit = pytest.importorskip("submitit")

pytestmark = pytest.mark.slurm

# The fixture also gets wired into tests/conftest.py; a plugin named twice loads once.
pytest_plugins = ["tests.slurm_fixtures"]


def _executor(cluster, folder, **params):
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(
        slurm_partition=cluster.partition, timeout_min=2, cpus_per_task=1, mem_gb=1, **params
    )
    return executor


def test_cluster_node_is_idle_with_machine_resources(slurm_cluster):
    out = slurm_cluster.run_client("sinfo", "-h", "-N", "-o", "%N|%T|%c|%m|%P")
    node, state, cpus, mem, partition = out.strip().split("|")
    assert node == slurm_cluster.nodename
    assert state == "idle"
    assert int(cpus) == slurm_cluster.hardware["CPUs"]
    assert int(mem) == slurm_cluster.hardware["RealMemory"]
    assert partition.rstrip("*") == slurm_cluster.partition
    print(f"\ncluster start took {slurm_cluster.start_seconds:.2f}s")


def test_submitit_job_returns_value_and_sees_environment(slurm_cluster, tmp_path):
    def job_fn(x):
        import os
        import sys

        return {
            "value": x * 2,
            "job_id": os.environ.get("SLURM_JOB_ID"),
            "slurm_conf": os.environ.get("SLURM_CONF"),
            "prefix": sys.prefix,
        }

    executor = _executor(slurm_cluster, tmp_path / "submitit")
    t0 = time.perf_counter()
    job = executor.submit(job_fn, 21)
    (result,) = wait_for_submitit_job(job, timeout=120)
    elapsed = time.perf_counter() - t0
    print(f"\nsubmitit round trip (submit -> result) took {elapsed:.2f}s")

    assert result["value"] == 42
    assert result["job_id"] == str(job.job_id)
    assert result["slurm_conf"] == slurm_cluster.env["SLURM_CONF"]
    assert result["prefix"] == sys.prefix  # the job ran with this (venv) interpreter


def test_submitit_two_tasks_both_run(slurm_cluster, tmp_path):
    def task_fn():
        import os

        import submitit

        env = submitit.JobEnvironment()
        return {
            "global_rank": env.global_rank,
            "local_rank": env.local_rank,
            "num_tasks": env.num_tasks,
            "pid": os.getpid(),
        }

    executor = _executor(slurm_cluster, tmp_path / "submitit", nodes=1, tasks_per_node=2)
    t0 = time.perf_counter()
    job = executor.submit(task_fn)
    results = wait_for_submitit_job(job, timeout=120)
    print(f"\n2-task submitit round trip took {time.perf_counter() - t0:.2f}s")

    assert sorted(r["global_rank"] for r in results) == [0, 1]
    assert sorted(r["local_rank"] for r in results) == [0, 1]
    assert all(r["num_tasks"] == 2 for r in results)
    assert len({r["pid"] for r in results}) == 2


def test_submitit_job_exception_is_reported(slurm_cluster, tmp_path):
    def failing_fn():
        raise ValueError("boom from the job")

    job = _executor(slurm_cluster, tmp_path / "submitit").submit(failing_fn)
    with pytest.raises(submitit.core.utils.FailedJobError, match="boom from the job"):
        wait_for_submitit_job(job, timeout=120)


def test_second_cluster_coexists_and_stops_cleanly(slurm_cluster, tmp_path):
    """Free ports are chosen at start, so a second cluster (or a leftover one) never clashes."""
    second = LocalSlurmCluster(tmp_path / "second")
    with second:
        pids = {pid for group in second.daemon_pids().values() for pid in group}
        assert len(pids) == 3  # munged, slurmctld, slurmd
        assert second.ctld_port != slurm_cluster.ctld_port
        assert "idle" in second.run_client("sinfo", "-h", "-o", "%T")
        munge_dir = second.munge_dir
    print(f"\nsecond cluster: start {second.start_seconds:.2f}s, stop {second.stop_seconds:.2f}s")
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    assert not munge_dir.exists()
    # The session cluster is untouched.
    assert slurm_cluster.run_client("sinfo", "-h", "-o", "%T").strip() == "idle"
