"""`python -m rlkit pipeline=sft_grpo_tools`, run once: SFT on a mix of calculator and
direct demonstrations, GRPO in the calculator environment, evaluation in it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlkit.loggers.jsonl import read_metrics

pytestmark = pytest.mark.slow

ENV_METRICS = ("env/turns", "env/tool_calls", "env/tool_errors", "env/episode_reward", "env/truncated")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("tools") / "run"
    result = subprocess.run(
        [sys.executable, "-m", "rlkit", "pipeline=sft_grpo_tools", f"hydra.run.dir={run_dir}", "logger=[jsonl]"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "held-out accuracy after each stage" in result.stdout
    return run_dir


def grpo_evaluations(run_dir: Path) -> tuple[dict, dict]:
    evaluations = [r for r in read_metrics(run_dir / "1-grpo" / "metrics.jsonl") if "eval/accuracy" in r]
    return evaluations[0], evaluations[-1]


# Issue 17's target, not met yet: measured on 2026-12-01 (load 9-12 on 2 cores), held-out
# accuracy went 0.01 -> 0.00 and the tool-call share 0.26 -> 0.34. After 600 SFT steps the tiny
# model calls the tool but copies the operands and the result imprecisely (<calc>17*858</calc>
# for 17 * 807), so GRPO sees almost no correct episode to reinforce. strict: a preset that
# reaches the target turns these into failures until the marks go.
NOT_YET = pytest.mark.xfail(strict=True, reason="the sft_grpo_tools preset does not reach the issue's target yet")


@NOT_YET
def test_grpo_raises_held_out_accuracy_by_at_least_0_2(pipeline):
    before, after = grpo_evaluations(pipeline)
    assert after["eval/accuracy"] - before["eval/accuracy"] >= 0.2, (before, after)


@NOT_YET
def test_the_share_of_episodes_that_call_the_tool_rises(pipeline):
    before, after = grpo_evaluations(pipeline)
    assert after["eval/env/tool_call_share"] > before["eval/env/tool_call_share"] + 0.2, (before, after)
    assert after["eval/env/tool_errors"] < 0.1


def test_every_grpo_step_logs_the_episode_metrics_and_generator_logprobs_match(pipeline):
    steps = [r for r in read_metrics(pipeline / "1-grpo" / "metrics.jsonl") if "reward/mean" in r]
    assert len(steps) == 20
    for record in steps:
        assert all(key in record for key in ENV_METRICS), record
        assert 1.0 <= record["env/turns"] <= 3.0
        # Observation tokens are not scored, and the assistant's tokens are the generator's:
        # the trainer's log-probs of them equal the generator's.
        assert record["mismatch/logprob_abs_diff"] < 1e-3
    assert any(record["env/tool_calls"] > 0 for record in steps)


def test_observation_tokens_of_the_trained_model_are_masked_out_of_the_loss(pipeline):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlkit.algorithms.rollout import layout
    from rlkit.data.arithmetic import ArithmeticTask
    from rlkit.environments.calculator import CalculatorConfig, CalculatorEnvironment
    from rlkit.environments.rollout import EpisodeRunner
    from rlkit.generators.config import HFGeneratorConfig
    from rlkit.generators.hf import HFGenerator
    from rlkit.types import SampleKind, SamplingParams

    final = pipeline / "1-grpo" / "final"
    model, tokenizer = AutoModelForCausalLM.from_pretrained(final), AutoTokenizer.from_pretrained(final)
    samples = ArithmeticTask(ArithmeticTask.Config(digits=3, operations=["*"], eval_size=8)).load("eval", SampleKind.PROMPT)
    runner = EpisodeRunner(CalculatorEnvironment(CalculatorConfig()), HFGenerator(HFGeneratorConfig(), model, tokenizer), tokenizer)
    episodes = [e for e in runner.run(samples, SamplingParams(temperature=0.0, max_new_tokens=24)) if e.tool_calls]
    assert episodes
    batch, _ = layout(tokenizer, [e.sample for e in episodes], [e.completion() for e in episodes])
    for row, episode in enumerate(episodes):
        start = len(episode.prompt_ids)
        targets = batch.target_mask[row, start : start + len(episode.token_ids)]
        observation = [t for t, scored in zip(episode.token_ids, targets.tolist()) if not scored]
        result = next(m.content for m in episode.messages if m.role == "tool")
        assert tokenizer.decode(observation).startswith(f"<|end|><|tool|>{result}<|end|><|assistant|>")
        assert torch.equal(targets, torch.tensor(episode.loss_mask))


def test_the_evaluation_stage_reports_success_turns_and_pass_at_k(pipeline):
    record = json.loads((pipeline / "2-eval" / "eval.json").read_text())
    assert record["model"] == str(pipeline / "1-grpo" / "final")
    assert record["pass@4"] >= record["pass@1"] and record["success"] == record["accuracy"]
    assert record["prompts"] == 100 and 1.0 <= record["env/turns"] <= 3.0 and record["env/tool_call_share"] > 0
    last = sorted((pipeline / "1-grpo" / "samples").glob("step_*.jsonl"))[-1]
    rows = [json.loads(line) for line in last.read_text().splitlines()]
    # Logged sample completions are whole conversations: the call, the tool's result, the answer.
    assert rows and all({"turns", "tool_calls"} <= row.keys() for row in rows)
    assert any("\ntool: " in row["completion"] for row in rows)
