"""PPO with a learned value model (RLHF-style: InstructGPT, TRL, OpenRLHF).

Each step: sample ``samples_per_prompt`` completions per prompt and score them; compute,
once, the old policy log-probabilities, the old values and (with ``kl_coef > 0``) the
reference log-probabilities; build per-token rewards (the score at the last completion
token minus ``kl_coef * k1`` at every completion token); GAE (``gamma``, ``lam``) gives
advantages and returns; advantages are whitened over the valid tokens of the whole batch.
Then ``epochs`` x ``minibatches`` updates minimise, per token (token mean over the update),
the clipped policy loss plus ``vf_coef`` times the clipped value loss. The math is in
:mod:`rlkit.algorithms.losses` (``gae``, ``whiten``, ``clipped_policy_loss``,
``clipped_value_loss``, ``kl_estimate``).

The value model
---------------

A separate model, ``AutoModelForTokenClassification`` with one label (model kind
``token_classification``): the Hugging Face-native "scalar per token" head, so any causal
LM checkpoint gives one (the backbone as the policy's, a fresh linear ``score`` head, no
dropout), it saves and loads in the Hugging Face format, LoRA and the backends treat it like
any other model, and a reward model checkpoint (``AutoModelForSequenceClassification``, whose
head is also named ``score`` for Llama-style models) initialises backbone and head
(``value_name_or_path``). A separate model rather than a head on the policy, as in
InstructGPT, TRL and OpenRLHF: value gradients never disturb the policy, and the value
model can start from a reward model. ``V(s_t)`` is read at the position whose next token
is the action, so values line up with ``target_logprobs`` (``[B, T-1]``).

The value model is a trainable module (``trainable_modules``): the trainer optimises it
with the policy (one AdamW, its own parameter group with ``value_lr``, default
``trainer.lr``, following the trainer's learning-rate schedule), clips its gradients on
their own (``value_max_grad_norm``), switches its train/eval mode and keeps its weights and
optimizer state in the sharded checkpoint. ``loss`` returns ``policy_loss + vf_coef *
value_loss``, so one backward fills the gradients of both models; as the two are clipped
and normalised by Adam separately, ``vf_coef`` only rescales the value gradient before
clipping.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rlkit.algorithms.base import LossOutput, StepPlan, TrainableModule, TrainContext
from rlkit.algorithms.config import PPOConfig
from rlkit.algorithms.losses import (
    clipped_policy_loss,
    clipped_value_loss,
    gae,
    kl_estimate,
    masked_mean,
    whiten,
)
from rlkit.algorithms.online import OnlineAlgorithm
from rlkit.data.collate import TokenBatch
from rlkit.models.forward import target_logprobs
from rlkit.models.loading import load_model
from rlkit.models.reference import ReferencePolicy
from rlkit.types import PromptSample


@dataclass
class PPOData:
    """Per-row tensors of one rollout batch (``[N, T-1]`` unless noted), computed once."""

    batch: TokenBatch
    generator_logps: Tensor
    old_logps: Tensor | None
    old_values: Tensor
    advantages: Tensor
    returns: Tensor

    def __len__(self) -> int:
        return len(self.batch)

    def select(self, rows: list[int]) -> PPOData:
        pick = lambda t: None if t is None else t[rows]
        return PPOData(self.batch.select(rows), *(pick(getattr(self, f.name)) for f in dataclasses.fields(self)[1:]))


@dataclass
class PPOMicroBatch:
    data: PPOData

    @property
    def batch(self) -> TokenBatch:
        return self.data.batch


def token_rewards(scores: Tensor, mask: Tensor, kl: Tensor | None = None, kl_coef: float = 0.0) -> Tensor:
    """Per-token rewards ``[B, T]``: ``scores[i]`` at row ``i``'s last valid token, minus
    ``kl_coef * kl`` at every valid token; 0 elsewhere (rows with no valid token get nothing)."""
    rewards = torch.zeros(mask.shape, dtype=torch.float32)
    if kl is not None and kl_coef:
        rewards = rewards - kl_coef * torch.where(mask, kl.float(), torch.zeros_like(rewards))
    last = mask.long().cumsum(-1).argmax(-1)  # the first index of the maximum: the last valid token
    has_tokens = mask.any(-1)
    rows = torch.arange(len(scores))[has_tokens]
    rewards[rows, last[has_tokens]] += scores[has_tokens].float()
    return rewards


def token_values(model: nn.Module, batch: TokenBatch) -> Tensor:
    """``V(s_t)`` ``[B, T-1]``: the head at the position whose next token is target ``t``."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                   position_ids=batch.position_ids, use_cache=False).logits
    values = logits[:, :-1, 0]
    return values.to(torch.promote_types(values.dtype, torch.float32))  # at least float32


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> float:
    """``1 - Var(R - V) / Var(R)`` over valid tokens (1: perfect, 0: no better than a constant)."""
    var_returns = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
    error = returns - values
    var_error = masked_mean((error - masked_mean(error, mask)) ** 2, mask)
    return float(1 - var_error / var_returns) if var_returns > 0 else float("nan")


class PPO(OnlineAlgorithm):
    Config = PPOConfig
    plot_keys = ("reward/mean", "value_loss", "eval/accuracy")

    def __init__(self, config: PPOConfig, ctx: TrainContext):
        super().__init__(config, ctx)
        self.reference = ReferencePolicy(ctx.policy, ctx.backend, ctx.model, config.ref_name_or_path) if config.kl_coef > 0 else None
        # The initial checkpoint; a resumed run's trainer then loads the trained weights.
        value = load_model(ctx.model, "token_classification", path=config.value_name_or_path)
        self.value_model = ctx.backend.wrap(value.to(next(ctx.policy.parameters()).dtype), trainable=True)

    def trainable_modules(self) -> dict[str, TrainableModule]:
        return {**super().trainable_modules(),
                "value": TrainableModule(self.value_model, self.config.value_lr, self.config.value_max_grad_norm)}

    # ---------------------------------------------------------------- rollouts

    def prepare(self, samples: Sequence[PromptSample]) -> StepPlan:
        data, metrics = self.rollout_data(list(samples))
        return StepPlan(self.plan(len(data), lambda rows: self.micro_batches(data, rows)), metrics)

    def micro_batches(self, data: PPOData, rows: list[int]) -> list[PPOMicroBatch]:
        return [PPOMicroBatch(data.select(chunk)) for chunk in self.micro_chunks(rows)]

    def rollout_data(self, prompts: list[PromptSample]) -> tuple[PPOData, dict[str, float]]:
        """Rollouts with old log-probs, old values, advantages and returns, and their metrics."""
        cfg = self.config
        rollouts = self.sample(prompts, cfg.samples_per_prompt, cfg.truncation_penalty)
        batch, metrics = rollouts.batch, rollouts.metrics
        mask = batch.target_mask[:, 1:]
        start = time.perf_counter()
        temperature = cfg.sampling.temperature
        old_logps = None
        if cfg.epochs * cfg.minibatches > 1 or self.reference is not None:
            old_logps = self.no_grad_forward(lambda micro: target_logprobs(self.ctx.policy, micro, temperature)[0], batch)
        old_values = self.no_grad_forward(lambda micro: token_values(self.value_model, micro), batch)
        kl = None
        if self.reference is not None:
            ref_logps = self.no_grad_forward(lambda micro: self.reference.logprobs(micro, temperature), batch)
            kl = kl_estimate(old_logps, ref_logps, kind="k1")
            metrics["kl"] = float(masked_mean(kl, mask))
            metrics["reward/kl_penalty"] = float(-cfg.kl_coef * (kl * mask).sum(-1).mean())
        metrics["time/logprobs"] = time.perf_counter() - start
        rewards = token_rewards(rollouts.rewards, mask, kl, cfg.kl_coef)
        advantages, returns = gae(rewards, old_values, mask, gamma=cfg.gamma, lam=cfg.lam)
        if cfg.whiten_advantages:
            advantages = self.whiten(advantages, mask)
        metrics["returns/mean"] = float(masked_mean(returns, mask))
        metrics["values/mean"] = float(masked_mean(old_values, mask))
        metrics["values/explained_variance"] = explained_variance(old_values, returns, mask)
        return PPOData(batch, rollouts.generator_logps, old_logps, old_values, advantages, returns), metrics

    def whiten(self, advantages: Tensor, mask: Tensor) -> Tensor:
        """Masked whitening over the valid tokens of every rank's rows (unbiased variance)."""
        if self.ctx.backend.dp_size == 1:
            return whiten(advantages, mask)
        mean, variance = self.global_moments(advantages, mask)
        return torch.where(mask, (advantages - mean) / (variance + 1e-8) ** 0.5, torch.zeros_like(advantages))

    # ---------------------------------------------------------------- loss

    def loss(self, micro: PPOMicroBatch, totals: dict[str, float]) -> LossOutput:
        cfg = self.config
        data = micro.data
        logps, mask, entropy = target_logprobs(self.ctx.policy, data.batch, cfg.sampling.temperature, with_entropy=True)
        old = logps.detach() if data.old_logps is None else data.old_logps
        tokens = max(totals["tokens"], 1.0)
        policy_loss, stats = clipped_policy_loss(
            logps, old, data.advantages.to(logps.dtype), mask, eps_low=cfg.eps_low, eps_high=cfg.eps_high,
            dual_clip=cfg.dual_clip, aggregation="token_mean", global_tokens=tokens,
        )
        values = token_values(self.value_model, data.batch)
        value_loss, value_stats = clipped_value_loss(
            values, data.old_values.to(values.dtype), data.returns.to(values.dtype), mask,
            clip_eps=cfg.value_clip, aggregation="token_mean", global_tokens=tokens,
        )
        share = float(mask.sum()) / tokens  # this micro-batch's share of the update's tokens
        metrics = {"policy_loss": policy_loss.item(), "value_loss": value_loss.item()}
        metrics.update({k: float(v) * share for k, v in {**stats, **value_stats}.items()})
        metrics.update(self.token_metrics(logps, data.generator_logps, entropy, mask, tokens))
        return LossOutput(policy_loss + cfg.vf_coef * value_loss, metrics)
