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
from typing import Optional, Sequence

import torch
from torch import Tensor

from rlkit.algorithms.base import Algorithm, LossOutput, StepPlan, TrainContext
from rlkit.algorithms.config import GRPOConfig
from rlkit.algorithms.losses import aggregate, clipped_policy_loss, group_advantages, kl_estimate
from rlkit.algorithms.rollout import Rollouts, in_chunks, layout, sample_rollouts
from rlkit.data.collate import TokenBatch
from rlkit.models.forward import target_logprobs
from rlkit.models.reference import ReferencePolicy
from rlkit.trainer.evaluation import evaluate_prompts
from rlkit.types import PromptSample, SampleKind


@dataclass
class Denominators:
    """Global sizes of one optimizer update (all micro-batches, all ranks)."""

    tokens: float
    sequences: float
    max_length: int


@dataclass
class PolicyMicroBatch:
    batch: TokenBatch
    advantages: Tensor
    generator_logps: Tensor
    old_logps: Optional[Tensor]
    ref_logps: Optional[Tensor]
    totals: Denominators


class GRPO(Algorithm):
    Config = GRPOConfig
    sample_kind = SampleKind.PROMPT
    plot_keys = ("reward/mean", "accuracy", "eval/accuracy")

    def __init__(self, config: GRPOConfig, ctx: TrainContext):
        super().__init__(config, ctx)
        if ctx.reward is None:
            raise ValueError("algo=grpo needs a reward: add e.g. reward=math")
        self.reference = ReferencePolicy(ctx.policy, ctx.backend, ctx.model, config.ref_name_or_path) if config.kl_beta > 0 else None

    # ---------------------------------------------------------------- rollouts

    def prepare(self, samples: Sequence[PromptSample]) -> StepPlan:
        cfg = self.config
        rollouts = self.rollouts(list(samples))
        advantages = self.advantages(rollouts.rewards)
        if cfg.truncation == "mask":
            truncated = torch.tensor([c.truncated for c in rollouts.completions])
            rollouts.batch.target_mask[truncated] = False
        start = time.perf_counter()
        old_logps = self.logprobs_of(self.ctx.policy, rollouts.batch) if cfg.epochs * cfg.minibatches > 1 else None
        ref_logps = self.reference_logprobs(rollouts.batch) if self.reference else None
        rollouts.metrics["time/logprobs"] = time.perf_counter() - start
        updates = []
        generator = torch.Generator().manual_seed(int(torch.randint(2**31, (1,))))
        for _ in range(cfg.epochs):
            order = torch.randperm(len(rollouts), generator=generator) if cfg.epochs * cfg.minibatches > 1 else torch.arange(len(rollouts))
            for rows in order.chunk(cfg.minibatches):
                updates.append(self.micro_batches(rollouts, rows.tolist(), advantages, old_logps, ref_logps))
        return StepPlan(updates, rollouts.metrics)

    def rollouts(self, prompts: list[PromptSample]) -> Rollouts:
        """Rollouts for ``prompts``; with dynamic sampling, groups without signal are replaced."""
        cfg = self.config
        params = cfg.sampling.params(cfg.group_size)
        penalty = cfg.truncation_penalty if cfg.truncation == "penalty" else 0.0
        rollouts = sample_rollouts(self.ctx, prompts, params, penalty)
        if not cfg.dynamic_sampling:
            return rollouts
        kept = self.informative_groups(rollouts)
        rounds = 1
        while len(kept) < len(prompts) and rounds < cfg.max_sampling_rounds and self.ctx.draw_samples:
            more = sample_rollouts(self.ctx, self.ctx.draw_samples(), params, penalty)
            kept += self.informative_groups(more)
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
        if cfg.scale != "batch" or self.ctx.backend.world_size == 1:
            return group_advantages(rewards, cfg.group_size, baseline=cfg.baseline, scale=cfg.scale)
        centred = group_advantages(rewards, cfg.group_size, baseline=cfg.baseline, scale="none")
        # The batch std over all ranks' rewards (unbiased, as torch.std).
        n = self.ctx.backend.all_reduce_sum(float(len(rewards)))
        total = self.ctx.backend.all_reduce_sum(float(rewards.sum()))
        squares = self.ctx.backend.all_reduce_sum(float((rewards**2).sum()))
        variance = max(0.0, (squares - total**2 / n) / max(n - 1, 1))
        return centred / (variance**0.5 + 1e-6)

    def logprobs_of(self, model, batch: TokenBatch) -> Tensor:
        temperature = self.config.sampling.temperature
        return in_chunks(lambda micro: target_logprobs(model, micro, temperature)[0], batch,
                         self.ctx.trainer.micro_batch_size, self.ctx.backend.device)

    def reference_logprobs(self, batch: TokenBatch) -> Tensor:
        temperature = self.config.sampling.temperature
        return in_chunks(lambda micro: self.reference.logprobs(micro, temperature), batch,
                         self.ctx.trainer.micro_batch_size, self.ctx.backend.device)

    def micro_batches(self, rollouts: Rollouts, rows: list[int], advantages: Tensor,
                      old_logps: Optional[Tensor], ref_logps: Optional[Tensor]) -> list[PolicyMicroBatch]:
        mask = rollouts.batch.target_mask[rows, 1:]
        backend = self.ctx.backend
        totals = Denominators(
            tokens=backend.all_reduce_sum(float(mask.sum())),
            sequences=backend.all_reduce_sum(float((mask.sum(-1) > 0).sum())),
            max_length=self.config.sampling.max_new_tokens,
        )
        size = self.ctx.trainer.micro_batch_size
        return [
            PolicyMicroBatch(
                batch=rollouts.batch.select(chunk),
                advantages=advantages[chunk],
                generator_logps=rollouts.generator_logps[chunk],
                old_logps=None if old_logps is None else old_logps[chunk],
                ref_logps=None if ref_logps is None else ref_logps[chunk],
                totals=totals,
            )
            for chunk in (rows[i : i + size] for i in range(0, len(rows), size))
        ]

    # ---------------------------------------------------------------- loss

    def loss(self, micro: PolicyMicroBatch) -> LossOutput:
        cfg = self.config
        device = self.ctx.backend.device
        batch = micro.batch.to(device)
        logps, mask, entropy = target_logprobs(self.ctx.policy, batch, cfg.sampling.temperature, with_entropy=True)
        old = logps.detach() if micro.old_logps is None else micro.old_logps.to(device)
        generator_logps = micro.generator_logps.to(device)
        weights = None
        if cfg.off_policy == "ratio":
            old = generator_logps
        elif cfg.off_policy == "tis":
            weights = torch.exp((old - generator_logps).clamp(max=20.0)).clamp(max=cfg.tis_cap)
        totals = micro.totals
        scale = dict(global_tokens=totals.tokens, global_sequences=totals.sequences, max_length=totals.max_length)
        policy_loss, stats = clipped_policy_loss(
            logps, old, micro.advantages.to(device), mask, eps_low=cfg.eps_low, eps_high=cfg.eps_high,
            dual_clip=cfg.dual_clip, level=cfg.level, aggregation=cfg.aggregation, token_weights=weights, **scale,
        )
        loss = policy_loss
        share = float(mask.sum()) / max(totals.tokens, 1.0)  # this micro-batch's share of the update's tokens
        metrics = {"loss": loss.item(), "policy_loss": policy_loss.item()}
        metrics.update({k: float(v) * share for k, v in stats.items()})
        if self.reference is not None:
            kl = aggregate(kl_estimate(logps, micro.ref_logps.to(device), kind=cfg.kl_estimator), mask,
                           mode=cfg.aggregation, **scale)
            loss = loss + cfg.kl_beta * kl
            metrics["loss"] = loss.item()
            metrics["kl"] = kl.item()
        metrics["entropy"] = float((entropy * mask).sum()) / max(totals.tokens, 1.0)
        if weights is not None:
            metrics["tis_weight"] = float((weights * mask).sum()) / max(totals.tokens, 1.0)
        mismatch = (logps.detach() - generator_logps).abs()
        metrics["mismatch/logprob_abs_diff"] = float((mismatch * mask).sum()) / max(totals.tokens, 1.0)
        return LossOutput(loss, metrics)

    # ---------------------------------------------------------------- evaluation

    def evaluate(self, samples: Sequence[PromptSample]) -> dict[str, float]:
        return evaluate_prompts(self.ctx.generator, samples, self.ctx.reward, self.ctx.trainer.eval_max_new_tokens,
                                k=self.config.eval_k, sampling=self.config.sampling.params(self.config.eval_k))


def merge_groups(tokenizer, groups: list[tuple[Rollouts, list[int]]]) -> Rollouts:
    """One Rollouts from chosen rows of several (dynamic sampling)."""
    samples = [r.samples[i] for r, rows in groups for i in rows]
    completions = [r.completions[i] for r, rows in groups for i in rows]
    rewards = torch.cat([r.rewards[rows] for r, rows in groups])
    batch, generator_logps = layout(tokenizer, samples, completions)
    return Rollouts(samples, completions, rewards, batch, generator_logps)
