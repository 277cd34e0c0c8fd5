"""rlkit's Slurm launcher on the local cluster: requeue at the time limit, resource checks
before submitting, and jobs that could never start.

The requeue sweep uses a time limit of 2 minutes. slurmctld looks at time limits every 30 s
and sends the warning signal at the first look that is less than ``signal_delay_s`` + 30 s
before the end; with ``signal_delay_s=1`` each attempt runs 89-119 s before submitit requeues
it (the hard kill would come at 120-150 s). Slurm's shortest limit, 1 minute, left an attempt
29 s, too little on a machine busy with other tests (CI runs them beside these) to start,
resume and train a step. The test cluster lets a requeued job start
again after 10 s (``AuthInfo=cred_expire``) instead of Slurm's 120 s.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from rlkit.sweeps.records import read_job_records, read_submissions
from rlkit.sweeps.slurm_resources import Request, check_request, query_partition
from rlkit.sweeps.summary import collect
from tests.sweeps.test_slurm_sweeps import TINY, show, slurm_sweep

pytest.importorskip("submitit")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

#: A job far longer than any attempt: only the requeue limit ends it.
ENDLESS = 1_000_000


@pytest.fixture(scope="module")
def requeue_sweep(slurm_cluster, tiny_model_dir, tmp_path_factory):
    """An endless job with a 2-minute limit and one requeue allowed."""
    sweep_dir = tmp_path_factory.mktemp("slurm-requeue") / "sweep"
    tiny = [o for o in TINY if not o.startswith(("trainer.max_steps=", "trainer.save_every="))]
    proc = slurm_sweep(
        slurm_cluster, sweep_dir, f"trainer.max_steps={ENDLESS}",
        tiny=[*tiny, "trainer.save_every=5"],
        launcher={"timeout_min": 2, "signal_delay_s": 1, "max_num_timeout": 1},
        timeout=600,
    )
    print(proc.stdout[proc.stdout.find("Sweep summary") :])
    return sweep_dir, proc


def test_time_limit_requeues_and_resumes_until_max_num_timeout(requeue_sweep):
    sweep_dir, proc = requeue_sweep
    assert proc.returncode == 1, show(proc)
    (job,) = collect(sweep_dir)
    assert job.status == "failed", show(proc)
    # The signal may land while a checkpoint is written: the error then names that write too.
    assert job.error.endswith("UncompletedJobError: Job not requeued because: timed-out too many times."), job.error
    # max_num_timeout=1: requeued once, started twice, then stopped by submitit
    assert job.requeues == 1
    record = read_job_records(sweep_dir)[job.job_id]
    assert (record.starts, record.requeues, record.state) == (2, 1, "failed")
    folder = sweep_dir / ".submitit" / job.job_id
    script = (folder / f"{job.job_id}_submission.sh").read_text()
    assert "#SBATCH --time=2" in script and "#SBATCH --signal=USR2@1" in script
    out = (folder / f"{job.job_id}_0_log.out").read_text()  # Slurm appends on requeue
    assert out.count("- Starting with JobEnvironment") == 2
    # Slurm's requeue ends the first attempt at once, sometimes before submitit logs
    # "Requeued job": count the signals it logged before asking for the requeue instead
    # (submitit's own lines; Hydra's log handler repeats each one).
    signals = [line for line in out.splitlines() if line.startswith("submitit WARNING") and "timed-out" in line]
    assert len(signals) == 2, out
    assert "Job not requeued because: timed-out too many times" in out

    # The summary printed at the end counts the requeue.
    summary = proc.stdout[proc.stdout.index("Sweep summary") :]
    header = summary.splitlines()[1].split()
    assert header[:5] == ["job", "status", "step", "requeues", "overrides"]
    assert summary.splitlines()[3].split()[:4] == ["0", "failed", str(job.step), "1"]
    assert "requeued by Slurm: 1 job(s), 1 time(s) in all" in summary
    assert "timed-out too many times" in summary[summary.index("Failed jobs:") :]

    # The second attempt resumed from the first one's latest checkpoint and trained on.
    resumed = re.findall(r"resumed from \S+/checkpoints/step_(\d+) \(step (\d+)\)", out)
    if not resumed:
        first = out[: out.index("Requeued job")]
        pytest.skip(  # a machine too busy to reach step 5 within 89 s: say so, do not pass
            "the first attempt saved no checkpoint before Slurm's signal (last lines: "
            + " | ".join(first.strip().splitlines()[-3:]) + ")"
        )
    resumed_step = int(resumed[0][1])
    assert len(resumed) == 1 and resumed_step > 0 and resumed_step % 5 == 0
    steps = [
        json.loads(line)["step"]
        for line in (job.job_dir / "metrics.jsonl").read_text().splitlines()
        if "loss" in json.loads(line)
    ]
    assert steps == list(range(1, len(steps) + 1))  # no step lost or logged twice
    assert steps[-1] > resumed_step
    status = json.loads((job.job_dir / "status.json").read_text())
    assert status["status"] == "failed" and status["step"] > resumed_step


def _queue(cluster) -> list[str]:
    return cluster.run_client("squeue", "-h", "-t", "all", "-o", "%i").split()


def test_a_request_no_node_can_run_stops_before_submitting(slurm_cluster, tmp_path):
    """rlkit's default request (4 CPUs, 8 GB per CPU) where nodes are smaller: one line."""
    cpus, mem_gb = slurm_cluster.hardware["CPUs"], slurm_cluster.hardware["RealMemory"] // 1024
    # the preset's defaults when they are too big here (as on a 2-CPU machine), else bigger
    launcher = {"cpus_per_task": None if cpus < 4 else 2 * cpus, "mem_gb": None, "timeout_min": None}
    asked = 4 if cpus < 4 else 2 * cpus
    before = _queue(slurm_cluster)
    sweep_dir = tmp_path / "sweep"
    proc = slurm_sweep(slurm_cluster, sweep_dir, "trainer.lr=1e-3,3e-3", launcher=launcher)
    assert proc.returncode == 1, show(proc)
    fixes = f"Set hydra.launcher.cpus_per_task={cpus}"
    if asked * 8 > mem_gb:
        fixes += f" hydra.launcher.mem_gb={mem_gb}"
    message = next(line for line in proc.stderr.splitlines() if "can never start" in line)
    print(message)
    assert message.endswith(
        f"can never start on partition '{slurm_cluster.partition}': {asked} CPUs per node "
        f"({asked} per task x 1 tasks) > {cpus}"
        + (f"; {asked * 8} GB per node > {mem_gb} GB" if asked * 8 > mem_gb else "")
        + f". {fixes}"
    )
    assert "job(s) 0,1 (1 task(s) x" in message
    assert _queue(slurm_cluster) == before  # nothing submitted
    assert not (sweep_dir / ".submitit").exists()
    assert "Sweep summary" not in proc.stdout

    proc = slurm_sweep(slurm_cluster, sweep_dir, "trainer.lr=1e-3", launcher={"partition": "nope"})
    assert proc.returncode == 1
    assert (
        f"Slurm partition 'nope' does not exist (partitions: {slurm_cluster.partition}): "
        f"set hydra.launcher.partition={slurm_cluster.partition}"
    ) in proc.stderr, show(proc)


def test_the_check_is_quick(slurm_cluster):
    """What the check adds to a submission: two `scontrol` calls and arithmetic."""
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        partition = query_partition(None)
        assert check_request(Request(cpus_per_task=1, mem_gb=1, timeout_min=10), partition) is None
        times.append(time.perf_counter() - t0)
    assert partition.name == slurm_cluster.partition and partition.nodes[0].cpus == slurm_cluster.hardware["CPUs"]
    print(f"\nresource check: median {sorted(times)[2] * 1000:.0f} ms over 5 (min {min(times) * 1000:.0f} ms)")
    assert sorted(times)[2] < 2.0


def test_a_job_stuck_pending_is_reported_and_cancelled(slurm_cluster, tmp_path):
    """Unchecked, a request too big for every node pends (PartitionConfig) forever: the
    launcher reports it, cancels the sweep and fails instead of waiting."""
    cpus = slurm_cluster.hardware["CPUs"]
    sweep_dir = tmp_path / "sweep"
    proc = slurm_sweep(
        slurm_cluster, sweep_dir, "trainer.lr=1e-3",
        launcher={"cpus_per_task": cpus + 1, "check_resources": False, "give_up_pending_s": 0},
        timeout=120,
    )
    assert proc.returncode == 1, show(proc)
    (submission,) = read_submissions(sweep_dir).values()
    job_id = submission.job_id
    assert re.search(
        rf"Slurm job {job_id} \(job #0\) stayed pending for \d+s \(PartitionConfig\); cancelled "
        r"the sweep's unfinished jobs",
        proc.stderr,
    ), show(proc)
    assert slurm_cluster.run_client("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T").split() == ["CANCELLED"]
    (result,) = collect(sweep_dir)
    assert result.status == "failed" and "PartitionConfig" in result.error
    assert "1 job(s): 1 failed" in proc.stdout


def test_a_job_waiting_for_a_drained_node_is_reported(slurm_cluster, tmp_path):
    """The request fits the node, but the node was drained: the job cannot start until an
    administrator resumes it. The check lets it through (the node may come back); the wait
    reports it and gives up after give_up_pending_s (0 here)."""
    node = slurm_cluster.nodename
    slurm_cluster.run_client("scontrol", "update", f"nodename={node}", "state=drain", "reason=rlkit-test")
    try:
        proc = slurm_sweep(
            slurm_cluster, tmp_path / "sweep", "trainer.lr=1e-3", launcher={"give_up_pending_s": 0},
            timeout=120,
        )
    finally:
        slurm_cluster.run_client("scontrol", "update", f"nodename={node}", "state=resume")
    assert proc.returncode == 1, show(proc)
    message = next(line for line in proc.stderr.splitlines() if "stayed pending" in line)
    print(message)
    assert re.search(
        r"\(job #0\) stayed pending for \d+s \((ReqNodeNotAvail|Resources; its request can never "
        r"start: partition '\w+' has no node in service)",
        message,
    ), message
