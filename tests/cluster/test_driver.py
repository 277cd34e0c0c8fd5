"""Whole runs on Ray: GRPO with generator and trainer actors learns as one process does,
in split and colocated placements, and asynchronously through a generator's death."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from statistics import fmean

import pytest

from tests.cluster.conftest import FORMAT_GRPO, step_rows

pytestmark = pytest.mark.ray


def gain(rows: list[dict]) -> float:
    """Mean reward of the last five steps minus that of the first five."""
    return fmean(r["reward/mean"] for r in rows[-5:]) - fmean(r["reward/mean"] for r in rows[:5])


def test_grpo_with_two_generators_learns_like_one_process(compose, ray_cluster, tmp_path):
    from rlkit.launch import train

    steps = 20
    common = [*FORMAT_GRPO, f"trainer.max_steps={steps}"]
    train(compose(common), tmp_path / "single")
    train(compose([*common, "cluster=split", "cluster.generators=2"]), tmp_path / "ray")
    single, ray = step_rows(tmp_path / "single"), step_rows(tmp_path / "ray")
    assert len(single) == len(ray) == steps
    print(f"reward gain: one process {gain(single):.3f}, Ray {gain(ray):.3f}")
    assert gain(single) > 0.2 and gain(ray) > 0.2
    assert gain(ray) > 0.5 * gain(single)
    # After every weight push the generators score their tokens as the trainer does.
    assert max(r["mismatch/logprob_abs_diff"] for r in ray) < 1e-4
    assert all(r["time/weight_sync"] > 0 for r in ray)


def test_colocated_placement_with_two_ddp_ranks(compose, ray_cluster, tmp_path):
    """Two trainer ranks (torch.distributed in Ray actors), each sharing its bundle with a generator."""
    from rlkit.launch import train

    train(compose([*FORMAT_GRPO, "trainer.max_steps=3", "cluster=colocated", "backend=ddp",
                   "backend.nproc_per_node=2", "backend.device=cpu"]), tmp_path)
    rows = step_rows(tmp_path)
    assert len(rows) == 3
    assert max(r["mismatch/logprob_abs_diff"] for r in rows) < 1e-4
    assert (tmp_path / "final" / "config.json").exists()


def kill_when(run_dir: Path, after_steps: int, suffix: str, ray) -> threading.Thread:
    """A thread that kills this run's actor named ``*<suffix>`` once ``after_steps`` steps are logged."""

    def kill() -> None:
        metrics = run_dir / "metrics.jsonl"
        while not metrics.exists() or len(step_rows(run_dir)) < after_steps:
            time.sleep(0.05)
        name = next(a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].endswith(suffix))
        ray.kill(ray.get_actor(name, namespace="rlkit"), no_restart=False)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_async_rollouts_stay_within_the_staleness_bound_through_a_generator_death(compose, ray_cluster, tmp_path):
    """Asynchronous rollouts, and generator 0 killed after step 2 (most likely while it samples
    the next step's prompts, as generation overlaps training): Ray restarts it, the trainer
    sends it the current weights, its prompts are sampled again, and the run finishes."""
    from rlkit.launch import train

    steps = 8
    killer = kill_when(tmp_path, 2, "-generator-0", ray_cluster)
    train(compose([*FORMAT_GRPO, f"trainer.max_steps={steps}", "cluster=split", "cluster.generators=2",
                   "cluster.async_rollouts=true", "cluster.max_staleness=1", "algo.off_policy=tis"]), tmp_path)
    killer.join(timeout=1)
    rows = step_rows(tmp_path)
    assert len(rows) == steps
    assert rows[-1]["generator/restarts"] >= 1
    staleness = [r["async/staleness"] for r in rows]
    print("staleness per step:", staleness)
    assert max(staleness) <= 1
    # The first step has nothing prefetched; afterwards each step's rollouts were sampled
    # (at least in part) while the previous step trained, by the weights from before its update.
    assert rows[0]["async/prefetched"] == 0 and staleness[0] == 0
    assert all(r["async/prefetched"] == 1 for r in rows[1:])
    assert all(s == 1 for s in staleness[1:])
    assert all(r["mismatch/logprob_abs_diff"] > 0 for r in rows[1:])  # off-policy by one update
    assert all(0 < r["tis_weight"] <= 2.0 for r in rows)
