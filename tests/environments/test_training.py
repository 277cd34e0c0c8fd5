"""GRPO and PPO train on episodes of env=calculator (one short run each), and an environment
is enough on its own: without reward= the episode score is the environment's rewards."""

from __future__ import annotations

import pytest

import rlkit
from rlkit.loggers.jsonl import read_metrics

SHORT = ["env=calculator", "data.digits=3", "data.operations=[*]", "data.train_size=64", "data.eval_size=4",
         "trainer.max_steps=1", "trainer.batch_size=4", "trainer.micro_batch_size=32", "trainer.eval_samples=4",
         "trainer.eval_max_new_tokens=8", "trainer.log_samples=2", "algo.sampling.max_new_tokens=8",
         "trainer.save_every=0", "logger=[jsonl]"]


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_online_algorithms_train_on_episodes(tmp_path, algo):
    outputs = rlkit.train([f"algo={algo}", "reward=math", *SHORT], run_dir=tmp_path / algo)
    step = next(r for r in read_metrics(outputs.metrics) if "reward/mean" in r)
    for key in ("env/turns", "env/tool_calls", "env/tool_errors", "env/episode_reward", "env/truncated"):
        assert key in step
    evaluation = [r for r in read_metrics(outputs.metrics) if "eval/success" in r]
    assert len(evaluation) == 2 and "eval/env/tool_call_share" in evaluation[-1]
    assert outputs.completed().status == "completed"


def test_an_environment_alone_scores_episodes(tmp_path):
    outputs = rlkit.train(["algo=grpo", *SHORT], run_dir=tmp_path / "alone")
    step = next(r for r in read_metrics(outputs.metrics) if "reward/mean" in r)
    assert step["reward/mean"] == step["env/episode_reward"] == 0.0
