"""Held-out evaluation shared by all algorithms: answer accuracy by decoding, and pass@k."""

from __future__ import annotations

from dataclasses import replace
from math import comb
from statistics import fmean
from typing import Sequence

from rlkit.generators.base import Generator
from rlkit.rewards.base import Reward
from rlkit.rewards.math import answer_key, answers_match, extract_answer, majority_answer
from rlkit.types import Completion, Prompt, PromptSample, SamplingParams


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


def majority_vote(completions: Sequence[Completion]) -> Completion | None:
    """maj@k's pick: the first of ``completions`` stating the answer most of them state
    (answers equal in value vote together); None when none states an answer."""
    majority = majority_answer([c.text for c in completions])
    if majority is None:
        return None
    key = answer_key(majority)
    return next(c for c in completions if (a := extract_answer(c.text)) is not None and answer_key(a) == key)


def evaluate_prompts(
    generator: Generator,
    samples: Sequence[PromptSample],
    reward: Reward | None,
    max_new_tokens: int,
    k: int = 1,
    sampling: SamplingParams | None = None,
) -> dict[str, float]:
    """Greedy ``accuracy`` (and ``reward`` when a reward is given) on held-out prompts; with
    ``k > 1``, also ``pass@k`` and ``maj@k`` (the majority answer's correctness) from ``k``
    samples per prompt drawn with ``sampling``."""
    prompts = [s.prompt for s in samples]
    greedy = generator.generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens))
    metrics: dict[str, float] = {}
    answered = [(s, c) for s, c in zip(samples, greedy) if s.answer is not None]
    if answered:
        metrics["accuracy"] = fmean(is_correct(c.text, s.answer) for s, c in answered)
    if reward is not None:
        metrics["reward"] = fmean(reward(list(samples), greedy).scores)
    if k > 1 and answered:
        params = replace(sampling or SamplingParams(), n=k, max_new_tokens=max_new_tokens)
        sampled = generator.generate(prompts, params)
        correct = [0] * len(samples)
        for c in sampled:
            correct[c.prompt_index] += is_correct(c.text, samples[c.prompt_index].answer or "")
        scored = [correct[i] for i, s in enumerate(samples) if s.answer is not None]
        metrics["pass@1"] = fmean(pass_at_k(k, c, 1) for c in scored)
        metrics[f"pass@{k}"] = fmean(pass_at_k(k, c, k) for c in scored)
        by_prompt: list[list[Completion]] = [[] for _ in samples]
        for c in sampled:
            by_prompt[c.prompt_index].append(c)
        voted = [(s, majority_vote(by_prompt[i])) for i, s in enumerate(samples) if s.answer is not None]
        metrics[f"maj@{k}"] = fmean(v is not None and is_correct(v.text, s.answer) for s, v in voted)
    return metrics
