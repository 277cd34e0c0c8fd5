"""Rollouts for online RL: sample completions, score them, lay them out as tensors.

Shared by GRPO and PPO. Completion token ids come from the generator as they were
sampled (never re-tokenised from text), so the trainer scores exactly those tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Optional

import torch
from torch import Tensor

from rlkit.algorithms.base import TrainContext
from rlkit.data.collate import TokenBatch, TokenizedSample, collate
from rlkit.data.templates import encode_prompt
from rlkit.environments.rollout import EpisodeRunner, episode_metrics, episode_scores
from rlkit.rewards.base import Reward
from rlkit.trainer.evaluation import accuracy
from rlkit.types import Completion, PromptSample, RewardOutput, SamplingParams


@dataclass
class Rollouts:
    """``len(completions)`` rows: ``samples[i]`` is the prompt ``completions[i]`` answers."""

    samples: list[PromptSample]
    completions: list[Completion]
    rewards: Tensor
    batch: TokenBatch
    #: The generator's log-probabilities, aligned with ``target_logprobs`` (``[N, T-1]``).
    generator_logps: Tensor
    metrics: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.completions)


def sample_rollouts(
    ctx: TrainContext, prompts: Sequence[PromptSample], params: SamplingParams, truncation_penalty: float = 0.0,
    episodes: Optional[EpisodeRunner] = None,
) -> Rollouts:
    """Generate ``params.n`` completions per prompt and score them; with ``episodes``,
    ``params.n`` multi-turn episodes per prompt in its environment.

    ``truncation_penalty`` is added to the reward of completions cut at ``max_new_tokens``.
    """
    start = time.perf_counter()
    # Full weights and no cross-rank communication while each rank decodes its own prompts.
    with ctx.backend.generation_model(ctx.policy):
        if episodes is not None:
            played = episodes.run(prompts, params)
            completions = [e.completion() for e in played]
        else:
            completions = ctx.generator.generate([s.prompt for s in prompts], params)
    generated = time.perf_counter()
    if ctx.samples is not None and episodes is None:
        upcoming = ctx.samples.upcoming
        ctx.generator.prefetch(lambda k: [s.prompt for s in upcoming(k)], params)
    samples = [prompts[c.prompt_index] for c in completions]
    if episodes is not None:
        scores, scored = episode_scores(played, ctx.reward)
        scored = scored or RewardOutput(scores)
    else:
        scored = ctx.reward(samples, completions)
        scores = scored.scores
    scored_at = time.perf_counter()
    rewards = torch.tensor(scores, dtype=torch.float32)
    truncated = torch.tensor([c.truncated for c in completions])
    rewards = rewards + truncation_penalty * truncated.float()
    batch, generator_logps = layout(ctx.tokenizer, samples, completions)
    metrics = rollout_metrics(samples, completions, scored, rewards, ctx.judge)
    if episodes is not None:
        metrics.update(episode_metrics(played))
    metrics.update({"time/generate": generated - start, "time/reward": scored_at - generated})
    metrics.update(ctx.generator.metrics())
    return Rollouts(samples, completions, rewards, batch, generator_logps, metrics)


@torch.no_grad()
def in_chunks(fn: Callable[[TokenBatch], Tensor], batch: TokenBatch, size: int, device: torch.device) -> Tensor:
    """``fn`` (a no-grad forward pass, e.g. old or reference log-probabilities) over
    ``batch`` in micro-batches of ``size`` rows on ``device``, concatenated on the CPU."""
    return torch.cat([fn(batch.select(slice(i, i + size)).to(device)).cpu() for i in range(0, len(batch), size)])


def layout(tokenizer, samples: Sequence[PromptSample], completions: Sequence[Completion]) -> tuple[TokenBatch, Tensor]:
    """Right-padded prompt + completion rows, and the generator's log-probs at the targets.

    Tokens outside a completion's ``loss_mask`` (environment observations) are not targets."""
    prompt_ids = {}
    rows = []
    for sample, completion in zip(samples, completions):
        key = id(sample)
        if key not in prompt_ids:
            prompt_ids[key] = encode_prompt(tokenizer, sample.prompt)
        ids = prompt_ids[key]
        rows.append(TokenizedSample(tuple(ids) + tuple(completion.token_ids), len(ids)))
    batch = collate(rows, tokenizer.pad_token_id)
    logps = torch.zeros(batch.input_ids.shape[0], batch.input_ids.shape[1] - 1)
    for row, (tokenized, completion) in enumerate(zip(rows, completions)):
        start = tokenized.prompt_length - 1  # target index t scores input_ids[t + 1]
        logps[row, start : start + len(completion.logprobs)] = torch.tensor(completion.logprobs)
        if completion.loss_mask is not None:
            first = tokenized.prompt_length
            batch.target_mask[row, first : first + len(completion.loss_mask)] &= torch.tensor(completion.loss_mask)
    return batch, logps


def rollout_metrics(
    samples: Sequence[PromptSample], completions: Sequence[Completion], scored: RewardOutput, rewards: Tensor,
    judge: Optional[Reward] = None,
) -> dict[str, float]:
    metrics = {
        "reward/mean": float(rewards.mean()),
        "reward/std": float(rewards.std()) if len(rewards) > 1 else 0.0,
        "reward/failures": float(scored.failures),
        "completion/length": fmean(len(c.token_ids) for c in completions),
        "completion/truncated": fmean(c.truncated for c in completions),
    }
    for name, values in scored.parts.items():
        metrics[f"reward/{name}"] = fmean(values)
    judged = accuracy(judge, samples, completions)
    if judged is not None:
        metrics["accuracy"] = judged
    return metrics
