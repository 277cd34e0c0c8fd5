"""Evaluation: the unbiased pass@k estimator and scoring a checkpoint."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest

from rlkit.rewards.math import MathVerifier
from rlkit.trainer.evaluation import accuracy, pass_at_k
from rlkit.types import Completion, PromptSample


@pytest.mark.parametrize("n, c, k", [(8, 0, 1), (8, 1, 1), (8, 3, 4), (5, 5, 2), (6, 2, 6), (10, 4, 3)])
def test_pass_at_k_is_the_probability_that_k_draws_without_replacement_hit(n, c, k):
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    expected = sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_needs_k_samples():
    with pytest.raises(ValueError, match="at least 4 samples"):
        pass_at_k(3, 1, 4)


def completion(text):
    return Completion(prompt_index=0, token_ids=[], text=text, logprobs=[], truncated=False)


def test_accuracy_counts_the_judges_verdicts():
    judge = MathVerifier(MathVerifier.Config())
    samples = [PromptSample("q", answer="12"), PromptSample("q", answer="12"), PromptSample("q")]
    completions = [completion("The answer is \\boxed{12}."), completion("no idea"), completion("12")]
    assert accuracy(judge, samples, completions) == 0.5  # no verdict without a reference answer
    assert accuracy(judge, samples[2:], completions[2:]) is None
    assert accuracy(None, samples, completions) is None


@pytest.mark.slow
def test_evaluate_command_scores_a_checkpoint(tmp_path, tiny_model_dir):
    result = subprocess.run(
        [sys.executable, "-m", "rlkit.evaluate", f"model.name_or_path={tiny_model_dir}", "reward=math",
         "eval.samples=6", "eval.k=4", "eval.max_new_tokens=4", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "eval.json").read_text())
    assert record["prompts"] == 6 and record["model"] == str(tiny_model_dir)
    assert {"accuracy", "reward", "pass@1", "pass@4", "maj@4"} <= set(record)
    assert 0.0 <= record["maj@4"] <= record["pass@4"]
    assert 0.0 <= record["pass@1"] <= record["pass@4"] <= 1.0
