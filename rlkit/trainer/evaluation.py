"""Held-out evaluation shared by all algorithms: accuracy of greedy completions, pass@k, maj@k.

Correctness is the judge's verdict (``Reward.is_correct``: the configured reward, or the
math verifier by default), counted over the samples it gives verdicts on (those with a
reference answer; for ``reward=python``, those with unit tests). maj@k's vote groups
completions by their final answer as the math verifier reads it, over samples with a
reference answer.
"""

from __future__ import annotations

from dataclasses import replace
from math import comb
from statistics import fmean
from typing import Optional, Sequence

from rlkit.generators.base import Generator
from rlkit.rewards.base import Reward
from rlkit.rewards.math import answer_key, extract_answer, majority_answer
from rlkit.types import Completion, PromptSample, SamplingParams


def accuracy(judge: Optional[Reward], samples: Sequence[PromptSample], completions: Sequence[Completion]) -> Optional[float]:
    """Fraction of ``completions[i]`` judged correct for ``samples[i]``, over the pairs the
    judge gives a verdict on; None when it gives none."""
    if judge is None:
        return None
    verdicts = [v for v in (judge.is_correct(s, c) for s, c in zip(samples, completions)) if v is not None]
    return fmean(verdicts) if verdicts else None


def greedy_accuracy(generator: Generator, samples: Sequence[PromptSample], judge: Reward, max_new_tokens: int) -> Optional[float]:
    """Accuracy of greedy completions of the samples with something to judge them by: a
    reference answer, or metadata (a code task's unit tests)."""
    answered = [s for s in samples if s.answer is not None or getattr(s, "metadata", None)]
    if not answered:
        return None
    greedy = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    return accuracy(judge, answered, generator.generate([s.prompt for s in answered], greedy))


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
    reward: Optional[Reward],
    judge: Optional[Reward],
    max_new_tokens: int,
    k: int = 1,
    sampling: SamplingParams | None = None,
) -> dict[str, float]:
    """Greedy ``accuracy`` (judged) and ``reward`` (when a reward is given) on held-out
    prompts; with ``k > 1``, also ``pass@k`` and ``maj@k`` (the majority answer's
    correctness) from ``k`` samples per prompt drawn with ``sampling``."""
    prompts = [s.prompt for s in samples]
    greedy = generator.generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens))
    metrics: dict[str, float] = {}
    verdicts = [None if judge is None else judge.is_correct(s, c) for s, c in zip(samples, greedy)]
    judged = [i for i, verdict in enumerate(verdicts) if verdict is not None]
    if judged:
        metrics["accuracy"] = fmean(bool(verdicts[i]) for i in judged)
    if reward is not None:
        metrics["reward"] = fmean(reward(list(samples), greedy).scores)
    if k > 1 and judged:
        params = replace(sampling or SamplingParams(), n=k, max_new_tokens=max_new_tokens)
        sampled = generator.generate(prompts, params)
        correct = [0] * len(samples)
        for c in sampled:
            correct[c.prompt_index] += bool(judge.is_correct(samples[c.prompt_index], c))
        scored = [correct[i] for i in judged]
        metrics["pass@1"] = fmean(pass_at_k(k, c, 1) for c in scored)
        metrics[f"pass@{k}"] = fmean(pass_at_k(k, c, k) for c in scored)
        by_prompt: list[list[Completion]] = [[] for _ in samples]
        for c in sampled:
            by_prompt[c.prompt_index].append(c)
        voted = [(samples[i], majority_vote(by_prompt[i])) for i in judged if samples[i].answer is not None]
        if voted:
            metrics[f"maj@{k}"] = fmean(v is not None and bool(judge.is_correct(s, v)) for s, v in voted)
    return metrics
