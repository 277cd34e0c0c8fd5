"""Fault injection through the command line: concurrent starts, a full disk, NaN losses,
damaged and tampered checkpoints, hung rewards. Each case ends in a named error or a
correct recovery, with ``status.json`` and ``metrics.jsonl`` valid JSON throughout."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.reliability import runner
from tests.reliability.conftest import (
    MAX_STEPS,
    all_finite,
    argv,
    checkpoint_steps,
    final_weights,
    metric_records,
    status,
    train_steps,
)

pytestmark = pytest.mark.slow


def wait_for(condition, process, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.is_alive(), f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.01)


def same_weights(run_dir: Path, reference: Path) -> bool:
    weights, expected = final_weights(run_dir), final_weights(reference)
    return weights.keys() == expected.keys() and all(torch.equal(weights[k], expected[k]) for k in expected)


@pytest.fixture(scope="module")
def killed_after_two_checkpoints(tmp_path_factory) -> Path:
    """A run directory SIGKILLed after its checkpoints at steps 4 and 8 (copy it before use)."""
    run_dir = tmp_path_factory.mktemp("killed") / "run"
    process = runner.start(argv(run_dir), run_dir.parent / "log.txt")
    wait_for(lambda: (run_dir / "checkpoints" / "step_00000008").exists(), process, "the step-8 checkpoint")
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    assert checkpoint_steps(run_dir) == [4, 8]
    return run_dir


def copy_of(run_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run_dir, target)
    return target


# ------------------------------------------------------------------ one writer per run directory


def test_second_run_on_the_same_directory_fails_at_once_naming_the_first(tmp_path, reference):
    run_dir = tmp_path / "run"
    first = runner.start(argv(run_dir), tmp_path / "first.log")
    wait_for(lambda: (run_dir / "status.json").exists(), first, "status.json")
    # The first run would finish its second of training before a fresh interpreter has
    # imported torch; suspended, it holds the lock exactly as a busy run does.
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = runner.run_subprocess(argv(run_dir), timeout=240)  # exactly what a second shell runs
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.returncode != 0, second.stdout
    assert f"is in use by PID {first.pid} on host {socket.gethostname()}" in second.stderr
    first.join(240)
    assert first.exitcode == 0, (tmp_path / "first.log").read_text()[-3000:]
    assert status(run_dir)["status"] == "completed"
    assert train_steps(run_dir) == list(range(1, MAX_STEPS + 1))  # each step logged once
    assert same_weights(run_dir, reference)


# ------------------------------------------------------------------ non-finite losses

#: The first update moves the weights by ~1e30: the next forward pass overflows to NaN.
NAN = ["trainer.lr=1e30", "trainer.warmup_steps=0"]


def test_nan_loss_stops_the_run_at_that_step_keeping_good_checkpoints(tmp_path):
    run_dir = tmp_path / "run"
    assert runner.run(argv(run_dir, *NAN, "trainer.save_every=1"), tmp_path / "log") != 0
    record = status(run_dir)  # strict JSON: no NaN literals
    assert record["status"] == "failed"
    assert "non-finite" in record["error"] and f"at step {record['step'] + 1}" in record["error"], record
    records = metric_records(run_dir)  # strict JSON too
    assert max(r["step"] for r in records) <= record["step"]  # nothing logged from the bad step
    assert not (run_dir / "final").exists()
    assert checkpoint_steps(run_dir) == list(range(1, record["step"] + 1))[-2:]  # every good one, kept
    for step in checkpoint_steps(run_dir):
        assert all_finite(load_file(run_dir / "checkpoints" / f"step_{step:08d}" / "model.safetensors"))


def test_nan_batches_can_be_skipped_and_are_counted(tmp_path):
    run_dir = tmp_path / "run"
    log = tmp_path / "log"
    assert runner.run(argv(run_dir, *NAN, "trainer.on_nonfinite=skip"), log) == 0, log.read_text()[-3000:]
    assert status(run_dir)["status"] == "completed"
    skipped = [r["nonfinite/skipped"] for r in metric_records(run_dir) if "nonfinite/skipped" in r]
    assert skipped and skipped[-1] > 0
    assert all_finite(final_weights(run_dir))


# ------------------------------------------------------------------ damaged and tampered checkpoints


def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, killed_after_two_checkpoints, reference):
    run_dir = copy_of(killed_after_two_checkpoints, tmp_path)
    shard = run_dir / "checkpoints" / "step_00000008" / "dcp" / "__0_0.distcp"
    shard.write_bytes(shard.read_bytes()[:1000])
    log = tmp_path / "log"
    assert runner.run(argv(run_dir), log) == 0, log.read_text()[-3000:]
    output = log.read_text()
    assert output.count("is unusable") == 1
    assert f"checkpoint step_00000008 is unusable: {shard} is truncated" in output
    assert "resumed from" in output and "(step 4)" in output
    assert train_steps(run_dir) == list(range(1, MAX_STEPS + 1))
    assert same_weights(run_dir, reference)


class Planted:
    """Unpickling this creates ``path``: proof that code from the run directory ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mknod, (self.path,))


def plant_in_trainer_state(checkpoint: Path, marker: Path) -> Path:
    target = checkpoint / "trainer_state.pt"
    torch.save({"step": 8, "planted": Planted(marker)}, target)
    return target


def plant_in_metadata(checkpoint: Path, marker: Path) -> Path:
    target = checkpoint / "dcp" / ".metadata"
    target.write_bytes(pickle.dumps(Planted(marker)))
    return target


def plant_in_shard(checkpoint: Path, marker: Path) -> Path:
    """A well-formed sharded checkpoint whose optimizer state holds the planted object."""
    import torch.distributed.checkpoint as dcp

    from rlkit.backends.safe_dcp import load_metadata

    directory = checkpoint / "dcp"
    metadata = load_metadata(directory / ".metadata")
    state = {}
    for fqn, meta in metadata.state_dict_metadata.items():
        if hasattr(meta, "size"):
            state[fqn] = torch.zeros(meta.size, dtype=meta.properties.dtype)
        else:
            state[fqn] = 0.0
    state["optimizer.param_groups.0.lr"] = Planted(marker)
    shutil.rmtree(directory)
    dcp.save(state, checkpoint_id=str(directory))
    return directory / "__0_0.distcp"


@pytest.mark.parametrize("plant", [plant_in_trainer_state, plant_in_metadata, plant_in_shard])
def test_planted_pickle_runs_nothing_and_the_error_names_the_file(tmp_path, killed_after_two_checkpoints, plant):
    run_dir = copy_of(killed_after_two_checkpoints, tmp_path)
    marker = tmp_path / "code-ran"
    planted = plant(run_dir / "checkpoints" / "step_00000008", marker)
    assert runner.run(argv(run_dir), tmp_path / "log") != 0
    assert not marker.exists()
    record = status(run_dir)
    assert record["status"] == "failed" and str(planted) in record["error"], record
    assert "refusing to unpickle" in record["error"]


# ------------------------------------------------------------------ a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 1.75 MiB tmpfs: room for two of the run's checkpoints (~0.75 MiB each), not a third."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1792k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_during_a_checkpoint_leaves_a_resumable_run(tmp_path, small_disk, reference):
    run_dir = small_disk / "run"
    log = tmp_path / "log"
    assert runner.run(argv(run_dir), log) != 0
    record = status(run_dir)
    assert record["status"] == "failed" and "No space left on device" in record["error"], record
    leftovers = [p for p in [*run_dir.iterdir(), *(run_dir / "checkpoints").iterdir()] if p.name.startswith(".tmp-")]
    assert leftovers == []
    assert checkpoint_steps(run_dir), "no checkpoint fitted at all: the disk is too small for the test"
    metric_records(run_dir, allow_torn_last_line=True)

    # Space is freed (the tmpfs grows): the same command resumes and finishes.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    assert runner.run(argv(run_dir), log) == 0, log.read_text()[-3000:]
    assert status(run_dir)["status"] == "completed"
    assert train_steps(run_dir) == list(range(1, MAX_STEPS + 1))
    assert same_weights(run_dir, reference)


# ------------------------------------------------------------------ hung rewards

GRPO = ["algo=grpo", "reward=callable", "reward.function=tests.reliability.hung_reward:hangs_on_every_fifth_call",
        "algo.group_size=2", "algo.sampling.max_new_tokens=4", "trainer.batch_size=4", "trainer.micro_batch_size=8",
        "trainer.max_steps=3", "trainer.save_every=0", "trainer.eval_samples=4"]


def test_hung_reward_is_abandoned_and_scored_zero(tmp_path):
    run_dir = tmp_path / "run"
    log = tmp_path / "log"
    code = runner.run(argv(run_dir, *GRPO, "reward.sample_timeout_s=0.5", "reward.on_error=zero"), log, timeout=240)
    assert code == 0, log.read_text()[-3000:]
    failures = [r["reward/failures"] for r in metric_records(run_dir) if "reward/failures" in r]
    assert len(failures) == 3 and sum(failures) >= 3  # one hang in every five calls, 8 calls a step


def test_hung_reward_fails_the_run_naming_the_limit(tmp_path):
    run_dir = tmp_path / "run"
    assert runner.run(argv(run_dir, *GRPO, "reward.timeout_s=1"), tmp_path / "log", timeout=240) != 0
    record = status(run_dir)
    assert record["status"] == "failed" and "RewardTimeout" in record["error"] and "reward.timeout_s=1" in record["error"]
