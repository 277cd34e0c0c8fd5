"""Held-out evaluation shared by all algorithms: answer accuracy by decoding, and pass@k."""

from __future__ import annotations

from math import comb
from typing import Sequence

from rlkit.generators.base import Generator
from rlkit.rewards.math import answers_match, extract_answer
from rlkit.types import Prompt, SamplingParams


def is_correct(text: str, answer: str) -> bool:
    predicted = extract_answer(text)
    return predicted is not None and answers_match(predicted, answer)


def greedy_accuracy(
    generator: Generator, prompts: Sequence[Prompt], answers: Sequence[str], max_new_tokens: int
) -> float:
    """Fraction of prompts whose greedy completion states the reference answer."""
    if not prompts:
        return float("nan")
    completions = generator.generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens))
    return sum(is_correct(c.text, a) for c, a in zip(completions, answers)) / len(prompts)


def pass_at_k(num_samples: int, num_correct: int, k: int) -> float:
    """Unbiased pass@k (Chen et al., 2021): ``1 - C(n - c, k) / C(n, k)``."""
    if k > num_samples:
        raise ValueError(f"pass@{k} needs at least {k} samples per prompt, got {num_samples}")
    if num_samples - num_correct < k:
        return 1.0
    return 1.0 - comb(num_samples - num_correct, k) / comb(num_samples, k)
