"""A Ray cluster shared by the tests of this package, and the settings of their short runs."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

#: A smaller built-in model than the default, so that runs take seconds.
SMALL_MODEL = ("model.tiny.hidden_size=64", "model.tiny.intermediate_size=128", "model.tiny.num_layers=2")
#: GRPO on a reward the random tiny model earns ~15% of the time at first (completions that
#: start with a space), which it learns within ~20 steps; two-token completions keep steps short.
FORMAT_GRPO = (
    "algo=grpo", "reward=format", "reward.pattern='^ '", "data.eval_size=40", *SMALL_MODEL,
    "trainer.batch_size=16", "algo.group_size=8", "trainer.micro_batch_size=128", "trainer.lr=3e-3",
    "trainer.warmup_steps=0", "trainer.schedule=constant", "trainer.eval_every=0", "trainer.save_every=0",
    "trainer.eval_samples=4", "trainer.eval_max_new_tokens=2", "algo.sampling.max_new_tokens=2", "logger=[jsonl]",
)


def step_rows(run_dir: Path) -> list[dict]:
    """The training steps' rows of a run's metrics.jsonl."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "reward/mean" in r]


@contextmanager
def local_ray(num_cpus: int):
    """A local Ray with ``num_cpus`` logical CPUs and a temp dir of its own, shut down and
    removed on exit."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    temp_dir = tempfile.mkdtemp(prefix="rlkit-test-ray-")
    ray.init(num_cpus=num_cpus, num_gpus=0, namespace="rlkit", include_dashboard=False, _temp_dir=temp_dir)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray for this test session (runs join it instead of starting their own):
    4 logical CPUs on this 2-core machine, so that a trainer and up to 3 generators fit."""
    with local_ray(num_cpus=4) as ray:
        yield ray
