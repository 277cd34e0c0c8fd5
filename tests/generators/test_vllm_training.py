"""Whole GRPO runs with generator=vllm: in the trainer's process, and one engine per Ray
generator actor (cluster=split), through an actor's death. Run in .venv-vllm."""

from __future__ import annotations

from statistics import fmean

import pytest

pytest.importorskip("vllm")

from tests.cluster.conftest import FORMAT_GRPO, ray_cluster, step_rows  # noqa: E402,F401 (a fixture)
from tests.cluster.test_driver import kill_when  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

#: A small KV cache per engine (several engines share this machine's memory), and 2 heads of 32
#: dimensions in the small model (vLLM's CPU attention has no kernel for 16).
VLLM = ("generator=vllm", "generator.cpu_kvcache_space_gib=0.25", "model.tiny.num_heads=2")


def gain(rows: list[dict]) -> float:
    """Mean reward of the last five steps minus that of the first five."""
    return fmean(r["reward/mean"] for r in rows[-5:]) - fmean(r["reward/mean"] for r in rows[:5])


def test_grpo_with_vllm_learns_the_format_reward(compose, tmp_path):
    """The test of tests/cluster/test_driver.py with the engine in the trainer's process: the
    reward rises as with generator=hf, and after every weight sync the engine scores its tokens
    as the trainer does."""
    from rlkit.launch import train

    steps = 20
    train(compose([*FORMAT_GRPO, *VLLM, f"trainer.max_steps={steps}"]), tmp_path)
    rows = step_rows(tmp_path)
    assert len(rows) == steps
    print(f"reward gain with vllm: {gain(rows):.3f}; mismatch per step:", [r["mismatch/logprob_abs_diff"] for r in rows])
    assert gain(rows) > 0.2
    assert max(r["mismatch/logprob_abs_diff"] for r in rows) < 1e-3
    assert all(r["time/weight_sync"] > 0 for r in rows)


@pytest.mark.ray
def test_split_cluster_with_two_vllm_actors_survives_a_generator_death(compose, ray_cluster, tmp_path):  # noqa: F811
    """cluster=split with 2 generator actors, each hosting an engine; actor 0 is killed after
    step 2: Ray restarts it (a new engine), the trainer sends it the current weights, and the
    run finishes with generator and trainer log-probs still in agreement."""
    from rlkit.launch import train

    steps = 5
    killer = kill_when(tmp_path, 2, "-generator-0", ray_cluster)
    train(compose([*FORMAT_GRPO, *VLLM, f"trainer.max_steps={steps}", "cluster=split", "cluster.generators=2"]),
          tmp_path)
    killer.join(timeout=1)
    rows = step_rows(tmp_path)
    assert len(rows) == steps
    assert rows[-1]["generator/restarts"] >= 1
    # Stale weights on the restarted engine would show here (see test_vllm_generator.py).
    assert max(r["mismatch/logprob_abs_diff"] for r in rows) < 1e-3
