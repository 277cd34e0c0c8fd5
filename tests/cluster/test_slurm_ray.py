"""scripts/slurm_ray.sbatch on the local Slurm cluster: the job starts a Ray head with srun
(with the custom resources it is given), runs GRPO on it through cluster.address, and leaves
no Ray behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.conftest import FORMAT_GRPO, step_rows
from tests.cluster.test_trainer_group import cmdline

pytestmark = [pytest.mark.slurm, pytest.mark.ray]  # starts its own Ray inside the job

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "slurm_ray.sbatch"


def test_sbatch_script_runs_a_ray_cluster_run(slurm_cluster, tmp_path):
    from rlkit.backends.distributed import free_port

    run_dir = tmp_path / "run"
    output = tmp_path / "job.out"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(slurm_cluster.env, RLKIT_PYTHON=sys.executable, RLKIT_RAY_PORT=str(free_port()),
               RAY_AUTH_MODE="disabled", OMP_NUM_THREADS="1", RLKIT_RAY_HEAD_RESOURCES='{"trainer_node": 1}')
    cpus = os.cpu_count() or 1
    job = subprocess.run(
        ["sbatch", "--wait", "--nodes=1", f"--cpus-per-task={cpus}", f"--output={output}", f"--chdir={tmp_path}",
         str(SCRIPT), "pipeline=none", *FORMAT_GRPO, "trainer.max_steps=3", "cluster=split", "cluster.generators=1",
         f"cluster.trainer.cpus={cpus / 2}", f"cluster.generator.cpus={cpus / 2}",
         "cluster.trainer.resources={trainer_node: 1}", f"hydra.run.dir={run_dir}"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    log = output.read_text() if output.exists() else ""
    assert job.returncode == 0, f"{job.stdout}\n{job.stderr}\n{log[-4000:]}"
    assert "ray head on" in log
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed", log[-4000:]
    assert len(step_rows(run_dir)) == 3
    # The trainer went where the head's custom resource (RLKIT_RAY_HEAD_RESOURCES) let it.
    trainer = next(json.loads(line) for line in (run_dir / "placement.jsonl").read_text().splitlines()
                   if "-trainer-0" in line)
    assert trainer["resources"] == {"trainer_node": 1}
    # Ray's processes ended with the job's srun steps, and its session files are gone.
    job_id = job.stdout.split()[-1]
    temp_dir = f"/tmp/rlkit-ray-{job_id}"
    leftovers = [cmdline(int(pid)) for pid in os.listdir("/proc") if pid.isdigit() and temp_dir in cmdline(int(pid))]
    assert not leftovers, leftovers
    assert not Path(temp_dir).exists()
