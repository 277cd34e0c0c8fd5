"""Held-out evaluation in an environment: success rate, turns, tool use and pass@k.

An episode succeeds when the judge (``Reward.is_correct``: the configured reward, or the
math verifier) says its final answer is correct; for samples without a reference answer,
when its score (environment rewards plus the reward's score) reaches 1, e.g. every unit
test passing. ``accuracy`` counts the judged episodes only, as single-turn evaluation does.
"""

from __future__ import annotations

from dataclasses import replace
from statistics import fmean
from typing import Any, Optional, Sequence

from rlkit.trainer.evaluation import pass_at_k
from rlkit.environments.rollout import Episode, EpisodeRunner, episode_metrics, episode_scores
from rlkit.types import PromptSample, SamplingParams


def successes(episodes: Sequence[Episode], scores: Sequence[float], judge: Any) -> list[Optional[bool]]:
    """Per episode: judged correct, or (no verdict) score >= 1."""
    verdicts = []
    for episode, score in zip(episodes, scores):
        verdict = None if judge is None or episode.failed else judge.is_correct(episode.sample, episode.completion())
        verdicts.append((False if episode.failed else score >= 1.0) if verdict is None else bool(verdict))
    return verdicts


def evaluate_episodes(
    runner: EpisodeRunner,
    samples: Sequence[PromptSample],
    reward: Any,
    judge: Any,
    max_new_tokens: int,
    k: int = 1,
    sampling: SamplingParams | None = None,
) -> dict[str, float]:
    """Greedy episodes: ``success``, ``accuracy`` (judged samples), ``reward`` and the
    ``env/...`` metrics of :func:`~rlkit.environments.rollout.episode_metrics`; with ``k > 1``
    also ``pass@1`` and ``pass@k`` of ``k`` sampled episodes per prompt."""
    greedy = runner.run(samples, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens))
    scores, _ = episode_scores(greedy, reward)
    verdicts = successes(greedy, scores, judge)
    metrics = {"success": fmean(verdicts), "reward": fmean(scores), **episode_metrics(greedy)}
    judged = [v for e, v in zip(greedy, verdicts) if e.sample.answer is not None]
    if judged and judge is not None:
        metrics["accuracy"] = fmean(judged)
    if k > 1:
        sampled = runner.run(samples, replace(sampling or SamplingParams(), n=k, max_new_tokens=max_new_tokens))
        sampled_scores, _ = episode_scores(sampled, reward)
        correct = [0] * len(samples)
        for episode, verdict in zip(sampled, successes(sampled, sampled_scores, judge)):
            correct[episode.sample_index] += verdict
        metrics["pass@1"] = fmean(pass_at_k(k, c, 1) for c in correct)
        metrics[f"pass@{k}"] = fmean(pass_at_k(k, c, k) for c in correct)
    return metrics
