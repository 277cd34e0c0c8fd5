"""A trainer rank that dies ends the run (non-zero exit, clear error, status.json) and the
same command resumes it from its last checkpoint -- through the real command line, with
the local Ray that rlkit starts and stops itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster.conftest import FORMAT_GRPO, step_rows

pytestmark = pytest.mark.ray


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_dead_trainer_rank_ends_the_run_and_the_rerun_resumes(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "rlkit", "pipeline=none", *FORMAT_GRPO, "trainer.max_steps=6",
               "trainer.save_every=2", "cluster=split", "cluster.generators=1", f"hydra.run.dir={run_dir}"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a Ray of its own
    env["OMP_NUM_THREADS"] = "1"

    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoint = run_dir / "checkpoints" / "step_00000002"
    deadline = time.monotonic() + 240
    while not checkpoint.exists():
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    trainers = [p for p in descendants(first.pid) if "TrainerWorker" in cmdline(p)]
    assert trainers, "the trainer actor's process was not found"
    for pid in trainers:
        os.kill(pid, signal.SIGKILL)
    output = first.communicate(timeout=120)[0]
    assert first.returncode != 0, output
    assert "rank 0 of 1 failed" in output and "trainer actor died" in output, output[-3000:]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and status["error"].startswith("rank 0:"), status
    for saved in (run_dir / "checkpoints").glob("step_*"):
        assert (saved / "trainer_state.pt").exists(), f"incomplete checkpoint {saved}"
    before = {r["step"]: r for r in step_rows(run_dir)}

    second = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=300, check=False)
    assert second.returncode == 0, second.stdout[-3000:]
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
    rows = step_rows(run_dir)
    assert [r["step"] for r in rows] == list(range(1, 7))
    # Steps up to the checkpoint were not trained again: their rows (timings included) are unchanged.
    assert rows[0] == before[1] and rows[1] == before[2]
