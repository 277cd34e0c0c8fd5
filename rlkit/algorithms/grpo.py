"""GRPO and its relatives (Dr. GRPO, DAPO, GSPO, RLOO, REINFORCE++-baseline).

Each step: sample ``group_size`` completions per prompt, score them, compute group-relative
advantages, then run ``epochs`` x ``minibatches`` clipped policy-gradient updates, with an
optional KL penalty to a frozen reference. The math is in :mod:`rlkit.algorithms.losses`.

Common recipes as config:

* GRPO (DeepSeekMath): baseline=mean scale=group aggregation=seq_mean_token_mean kl_beta>0
* Dr. GRPO: scale=none aggregation=seq_mean_token_sum_norm
* DAPO: eps_high=0.28 dynamic_sampling=true truncation=penalty aggregation=token_mean
* GSPO: level=sequence (with much smaller eps_low/eps_high, e.g. 3e-4/4e-4)
* RLOO: baseline=loo scale=none;  REINFORCE++-baseline: baseline=mean scale=batch
* off-policy rollouts (cluster.async_rollouts=true): off_policy=ratio (clip against the
  behaviour policy) or off_policy=tis (truncated importance weights, decoupled PPO)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from rlkit.algorithms.base import LossOutput, StepPlan, TrainContext
from rlkit.algorithms.config import GRPOConfig
from rlkit.algorithms.losses import aggregate, clipped_policy_loss, group_advantages, kl_estimate
from rlkit.algorithms.online import OnlineAlgorithm
from rlkit.algorithms.rollout import Rollouts, layout
from rlkit.data.collate import TokenBatch
from rlkit.models.forward import target_logprobs
from rlkit.models.reference import ReferencePolicy
from rlkit.types import PromptSample

@dataclass
class PolicyMicroBatch:
    batch: TokenBatch
    advantages: Tensor
    generator_logps: Tensor
    old_logps: Optional[Tensor]
    ref_logps: Optional[Tensor]


class GRPO(OnlineAlgorithm):
    Config = GRPOConfig
    plot_keys = ("reward/mean", "accuracy", "eval/accuracy")

    def __init__(self, config: GRPOConfig, ctx: TrainContext):
        super().__init__(config, ctx)
        self.reference = ReferencePolicy(ctx.policy, ctx.backend, ctx.model, config.ref_name_or_path) if config.kl_beta > 0 else None

    @classmethod
    def stale_rollouts_problem(cls, config: GRPOConfig) -> Optional[str]:
        return "set algo.off_policy=ratio or algo.off_policy=tis" if config.off_policy == "none" else None

    # ---------------------------------------------------------------- rollouts

    def prepare(self, samples: Sequence[PromptSample]) -> StepPlan:
        cfg = self.config
        rollouts = self.rollouts(list(samples))
        advantages = self.advantages(rollouts.rewards)
        if cfg.truncation == "mask":
            truncated = torch.tensor([c.truncated for c in rollouts.completions])
            rollouts.batch.target_mask[truncated] = False
        start = time.perf_counter()
        temperature = cfg.sampling.temperature
        old_logps = None
        if cfg.epochs * cfg.minibatches > 1:
            old_logps = self.no_grad_forward(lambda micro: target_logprobs(self.ctx.policy, micro, temperature)[0],
                                             rollouts.batch)
        ref_logps = self.no_grad_forward(lambda micro: self.reference.logprobs(micro, temperature),
                                         rollouts.batch) if self.reference else None
        rollouts.metrics["time/logprobs"] = time.perf_counter() - start
        updates = self.plan(len(rollouts), lambda rows: self.micro_batches(rollouts, rows, advantages, old_logps, ref_logps))
        return StepPlan(updates, rollouts.metrics)

    def rollouts(self, prompts: list[PromptSample]) -> Rollouts:
        """Rollouts for ``prompts``; with dynamic sampling, groups without signal are replaced."""
        cfg = self.config
        penalty = cfg.truncation_penalty if cfg.truncation == "penalty" else 0.0
        rollouts = self.sample(prompts, cfg.group_size, penalty)
        if not cfg.dynamic_sampling:
            return rollouts
        kept = self.informative_groups(rollouts)
        rounds = 1
        while len(kept) < len(prompts) and rounds < cfg.max_sampling_rounds and self.ctx.samples:
            kept += self.informative_groups(self.sample(self.ctx.samples.draw(), cfg.group_size, penalty))
            rounds += 1
        kept = kept[: len(prompts)] or self.all_groups(rollouts)
        merged = merge_groups(self.ctx.tokenizer, kept)
        merged.metrics.update(rollouts.metrics)  # the first round's metrics describe the policy
        merged.metrics["sampling/rounds"] = float(rounds)
        merged.metrics["sampling/kept_groups"] = len(kept) / len(prompts)
        return merged

    def informative_groups(self, rollouts: Rollouts) -> list[tuple[Rollouts, list[int]]]:
        g = self.config.group_size
        return [(rollouts, list(range(i, i + g))) for i in range(0, len(rollouts), g)
                if rollouts.rewards[i : i + g].std() > 0]

    def all_groups(self, rollouts: Rollouts) -> list[tuple[Rollouts, list[int]]]:
        g = self.config.group_size
        return [(rollouts, list(range(i, i + g))) for i in range(0, len(rollouts), g)]

    def advantages(self, rewards: Tensor) -> Tensor:
        cfg = self.config
        if cfg.scale != "batch" or self.ctx.backend.dp_size == 1:
            return group_advantages(rewards, cfg.group_size, baseline=cfg.baseline, scale=cfg.scale)
        centred = group_advantages(rewards, cfg.group_size, baseline=cfg.baseline, scale="none")
        _, variance = self.global_moments(rewards)  # the batch std over all ranks' rewards
        return centred / (variance**0.5 + 1e-6)

    def micro_batches(self, rollouts: Rollouts, rows: list[int], advantages: Tensor,
                      old_logps: Optional[Tensor], ref_logps: Optional[Tensor]) -> list[PolicyMicroBatch]:
        return [
            PolicyMicroBatch(
                batch=rollouts.batch.select(chunk),
                advantages=advantages[chunk],
                generator_logps=rollouts.generator_logps[chunk],
                old_logps=None if old_logps is None else old_logps[chunk],
                ref_logps=None if ref_logps is None else ref_logps[chunk],
            )
            for chunk in self.micro_chunks(rows)
        ]

    # ---------------------------------------------------------------- loss

    def loss(self, micro: PolicyMicroBatch, totals: dict[str, float]) -> LossOutput:
        cfg = self.config
        logps, mask, entropy = target_logprobs(self.ctx.policy, micro.batch, cfg.sampling.temperature, with_entropy=True)
        old = logps.detach() if micro.old_logps is None else micro.old_logps
        weights = None
        if cfg.off_policy == "ratio":
            old = micro.generator_logps
        elif cfg.off_policy == "tis":
            weights = torch.exp((old - micro.generator_logps).clamp(max=20.0)).clamp(max=cfg.tis_cap)
        scale = dict(global_tokens=totals["tokens"], global_sequences=totals["sequences"],
                     max_length=cfg.sampling.max_new_tokens)
        loss, stats = clipped_policy_loss(
            logps, old, micro.advantages, mask, eps_low=cfg.eps_low, eps_high=cfg.eps_high,
            dual_clip=cfg.dual_clip, level=cfg.level, aggregation=cfg.aggregation, token_weights=weights, **scale,
        )
        tokens = max(totals["tokens"], 1.0)
        metrics = {"policy_loss": loss.item(), **{k: float(v) * float(mask.sum()) / tokens for k, v in stats.items()}}
        if self.reference is not None:
            kl = aggregate(kl_estimate(logps, micro.ref_logps, kind=cfg.kl_estimator), mask, mode=cfg.aggregation, **scale)
            loss = loss + cfg.kl_beta * kl
            metrics["kl"] = kl.item()
        if weights is not None:
            metrics["tis_weight"] = float((weights * mask).sum()) / tokens
        metrics.update(self.token_metrics(logps, micro.generator_logps, entropy, mask, tokens))
        return LossOutput(loss, metrics)


def merge_groups(tokenizer: Any, groups: list[tuple[Rollouts, list[int]]]) -> Rollouts:
    """One Rollouts from chosen rows of several (dynamic sampling)."""
    samples = [r.samples[i] for r, rows in groups for i in rows]
    completions = [r.completions[i] for r, rows in groups for i in rows]
    rewards = torch.cat([r.rewards[rows] for r, rows in groups])
    batch, generator_logps = layout(tokenizer, samples, completions)
    return Rollouts(samples, completions, rewards, batch, generator_logps)
