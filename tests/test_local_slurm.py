"""A real single-node Slurm cluster on localhost, driven through submitit.

Uses the session fixture ``slurm_cluster`` (tests/slurm_fixtures.py). The job functions are
defined inside the tests so cloudpickle ships them by value: the job's Python process does
not have tests/ on its path.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

try:
    from tests import slurm_cluster as slurm_cluster_module
except ModuleNotFoundError:  # tests/ itself on sys.path (pytest's prepend import mode)
    import slurm_cluster as slurm_cluster_module

LocalSlurmCluster = slurm_cluster_module.LocalSlurmCluster
wait_for_submitit_job = slurm_cluster_module.wait_for_submitit_job

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


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


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
        assert not _running(pid), f"daemon {pid} still running after stop()"
    assert not munge_dir.exists()
    # The session cluster is untouched.
    assert slurm_cluster.run_client("sinfo", "-h", "-o", "%T").strip() == "idle"


def test_killed_job_is_seen_as_failed_by_submitit(slurm_cluster, tmp_path):
    """The sacct stand-in lets submitit see a job that died without a result (no hang)."""

    def killed_fn():
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)

    job = _executor(slurm_cluster, tmp_path / "submitit").submit(killed_fn)
    # A busy machine (CI runs other tests beside these) can be slow to start it.
    deadline = time.monotonic() + 180
    while not job.done(force_check=True):
        assert time.monotonic() < deadline, f"submitit never saw job {job.job_id} end"
        time.sleep(0.5)
    assert job.state == "FAILED"
    assert "Killed" in (job.stderr() or "")

    out = subprocess.run(
        ["sacct", "-o", "JobID,State,NodeList", "--parsable2", "-j", str(job.job_id)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[0] == "JobID|State|NodeList"
    assert out[1] == f"{job.job_id}|FAILED|{slurm_cluster.nodename}"
    # Any other sacct call goes to the real one, which has no accounting here.
    real_sacct = subprocess.run(["sacct", "-j", str(job.job_id)], capture_output=True, check=False)
    assert real_sacct.returncode != 0


def test_missing_binaries_point_to_the_install_script(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(slurm_cluster_module, "_SBIN", ())
    with pytest.raises(
        slurm_cluster_module.SlurmNotInstalledError, match="scripts/install_slurm.sh"
    ):
        slurm_cluster_module.find_slurm_binaries()
    with pytest.raises(slurm_cluster_module.SlurmNotInstalledError):
        LocalSlurmCluster(tmp_path / "c").start()


def test_failed_start_reports_daemon_logs_and_cleans_up(tmp_path):
    """A node slurmd cannot honour (more CPUs than the machine) never gets idle."""
    cluster = LocalSlurmCluster(tmp_path / "bad", start_timeout=4)
    cluster.hardware = {"CPUs": 4096, "RealMemory": 1024}
    with pytest.raises(slurm_cluster_module.SlurmStartError) as info:
        cluster.start()
    message = str(info.value)
    assert "timed out" in message and "idle" in message
    assert "--- slurmctld (" in message and "--- slurmd (" in message
    assert cluster.munge_dir is None  # removed
    assert all(not pids for pids in cluster.daemon_pids().values())
