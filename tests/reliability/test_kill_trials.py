"""Runs interrupted at random points -- many during checkpoint writes -- and rerun.

One run directory is interrupted again and again, each rerun resuming from what the last
one left: first killed before its first checkpoint (and a torn line left at the end of
metrics.jsonl), then stopped with SIGTERM as Slurm stops a job, then ``KILL_TRIALS``
SIGKILLs, every other one fired while a checkpoint is being written. Each trial asserts
that the rerun resumed from the newest complete checkpoint and lost no more than
``save_every`` completed steps; at the end every step is logged exactly once and the final
weights equal those of the uninterrupted reference run.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from pathlib import Path

import pytest
import torch

from tests.reliability import runner
from tests.reliability.conftest import (
    MAX_STEPS,
    SAVE_EVERY,
    argv,
    checkpoint_steps,
    final_weights,
    metric_records,
    status,
    train_steps,
)

KILL_TRIALS = 10


def logged_step(run_dir: Path) -> int:
    """The last training step in metrics.jsonl (complete lines only)."""
    if not (run_dir / "metrics.jsonl").exists():
        return 0
    steps = [r["step"] for r in metric_records(run_dir, allow_torn_last_line=True) if "loss" in r]
    return max(steps, default=0)


def staging_dirs(run_dir: Path) -> list[str]:
    """Checkpoints (and the final model) being written: hidden ``.tmp-<name>-<pid>`` directories."""
    return [p.name for d in (run_dir, run_dir / "checkpoints") if d.is_dir() for p in d.iterdir()
            if p.name.startswith(".tmp-")]


def metrics_inode(run_dir: Path) -> int | None:
    try:
        return (run_dir / "metrics.jsonl").stat().st_ino
    except FileNotFoundError:
        return None


def wait_until(condition, process, timeout: float = 240) -> bool:
    """Poll ``condition`` every 5 ms while ``process`` lives; False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if not process.is_alive():
            return False
        time.sleep(0.005)
    raise TimeoutError("trigger not reached")


def resumed_step(log: Path) -> int:
    """The step a start resumed from (0: it started from scratch), from its output."""
    found = re.findall(r"resumed from \S+ \(step (\d+)\)", log.read_text())
    return int(found[0]) if found else 0


@pytest.mark.slow
def test_interrupted_runs_resume_and_end_equal_to_an_uninterrupted_run(tmp_path, reference):
    rng = random.Random(12)
    run_dir = tmp_path / "run"
    plans = ["before first checkpoint", "sigterm"] + ["during checkpoint write", "at a random step"] * (KILL_TRIALS // 2)
    during_write = 0
    for trial, plan in enumerate(plans):
        newest = max(checkpoint_steps(run_dir), default=0)
        log = tmp_path / f"start-{trial}.log"
        stale = metrics_inode(run_dir)
        process = runner.start(argv(run_dir), log)
        # Every start rewrites metrics.jsonl (cut back to its checkpoint) before training:
        # steps logged by an earlier start must not fire this one's trigger.
        assert wait_until(lambda: metrics_inode(run_dir) not in (None, stale), process), log.read_text()[-2000:]
        if plan == "before first checkpoint":
            fired = wait_until(lambda: logged_step(run_dir) >= 2, process)
        elif plan == "during checkpoint write":
            # This start's own staging directory (the name ends with its PID), not one left before.
            fired = wait_until(lambda: any(d.endswith(f"-{process.pid}") for d in staging_dirs(run_dir)), process)
            time.sleep(rng.uniform(0, 0.03))
        else:  # a step before the next checkpoint but one, so that every start makes progress
            target = rng.randint(newest + 1, min(newest + 2 * SAVE_EVERY - 1, MAX_STEPS - 2))
            fired = wait_until(lambda: logged_step(run_dir) >= target, process)
            time.sleep(rng.uniform(0, 0.2))
        assert fired, f"trial {trial} ({plan}): the run ended before its trigger:\n{log.read_text()[-2000:]}"
        os.kill(process.pid, signal.SIGTERM if plan == "sigterm" else signal.SIGKILL)
        process.join(60)

        # The start resumed from the newest complete checkpoint left by the one before.
        assert resumed_step(log) == newest, f"trial {trial}: {log.read_text()[-2000:]}"
        if plan == "sigterm":
            assert process.exitcode not in (0, None)
            record = status(run_dir)
            assert record["status"] == "failed" and "SIGTERM" in record["error"], record
        else:
            assert process.exitcode == -signal.SIGKILL
        during_write += bool(staging_dirs(run_dir))
        # No completed step is lost beyond save_every: the next start resumes from here.
        lost = logged_step(run_dir) - max(checkpoint_steps(run_dir), default=0)
        assert 0 <= lost <= SAVE_EVERY, f"trial {trial}: {lost} steps would be trained again"
        status(run_dir)  # valid JSON whenever the process died
        if plan == "before first checkpoint":
            assert checkpoint_steps(run_dir) == []
            with (run_dir / "metrics.jsonl").open("a") as f:
                f.write('{"step": 3, "lo')  # the torn last line of a write cut short

    log = tmp_path / "start-final.log"
    newest = max(checkpoint_steps(run_dir))
    assert runner.run(argv(run_dir), log) == 0, log.read_text()[-3000:]
    assert resumed_step(log) == newest
    assert status(run_dir)["status"] == "completed"
    assert train_steps(run_dir) == list(range(1, MAX_STEPS + 1))  # each exactly once
    losses = {r["step"]: r["loss"] for r in metric_records(run_dir) if "loss" in r}
    assert losses == {r["step"]: r["loss"] for r in metric_records(reference) if "loss" in r}
    expected = final_weights(reference)
    weights = final_weights(run_dir)
    assert weights.keys() == expected.keys()
    assert all(torch.equal(weights[k], expected[k]) for k in expected)
    assert staging_dirs(run_dir) == []
    print(f"{len(plans)} interruptions ({KILL_TRIALS} SIGKILL), {during_write} of them during a checkpoint write")
    assert during_write >= 2, "too few kills landed inside a checkpoint write to test them"
