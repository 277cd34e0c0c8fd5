"""`python -m rlkit pipeline=sft_grpo_tools`, run once with short stages: SFT on a mix of
calculator and direct demonstrations, GRPO in the calculator environment, evaluation in it.

The stages are cut to GRPO_STEPS steps each (the preset's full run takes ~10 min of CPU
time), so this checks what the pipeline does, not what it learns: the README's section on
`env=` gives the full run's figures. How observation tokens are masked is checked on real
episodes in test_rollout.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlkit.loggers.jsonl import read_metrics

pytestmark = pytest.mark.slow

ENV_METRICS = ("env/turns", "env/tool_calls", "env/tool_errors", "env/episode_reward", "env/truncated")
GRPO_STEPS = 4
EVAL_PROMPTS = 16


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("tools") / "run"
    result = subprocess.run(
        [sys.executable, "-m", "rlkit", "pipeline=sft_grpo_tools", f"hydra.run.dir={run_dir}", "logger=[jsonl]",
         f"trainer.max_steps={GRPO_STEPS}", f"trainer.eval_samples={EVAL_PROMPTS}", f"eval.samples={EVAL_PROMPTS}"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "held-out accuracy after each stage" in result.stdout
    return run_dir


def test_every_grpo_step_logs_the_episode_metrics_and_generator_logprobs_match(pipeline):
    steps = [r for r in read_metrics(pipeline / "1-grpo" / "metrics.jsonl") if "reward/mean" in r]
    assert len(steps) == GRPO_STEPS
    for record in steps:
        assert all(key in record for key in ENV_METRICS), record
        assert 1.0 <= record["env/turns"] <= 3.0
        # Observation tokens are not scored, and the assistant's tokens are the generator's:
        # the trainer's log-probs of them equal the generator's.
        assert record["mismatch/logprob_abs_diff"] < 1e-3


def test_the_evaluation_stage_reports_success_turns_and_pass_at_k(pipeline):
    record = json.loads((pipeline / "2-eval" / "eval.json").read_text())
    assert record["model"] == str(pipeline / "1-grpo" / "final")
    assert record["pass@4"] >= record["pass@1"] and record["success"] == record["accuracy"]
    assert record["prompts"] == EVAL_PROMPTS and 1.0 <= record["env/turns"] <= 3.0 and "env/tool_call_share" in record
    last = sorted((pipeline / "1-grpo" / "samples").glob("step_*.jsonl"))[-1]
    rows = [json.loads(line) for line in last.read_text().splitlines()]
    assert rows and all({"turns", "tool_calls"} <= row.keys() for row in rows)
