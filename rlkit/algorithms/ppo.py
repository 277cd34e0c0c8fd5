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

The loop owns only the policy's optimizer. The value model has its own AdamW, built here
(``value_lr``, default ``trainer.lr``, following the trainer's learning-rate schedule);
``loss`` returns ``policy_loss + vf_coef * value_loss``, so the loop's backward fills the
gradients of both models, and ``after_update`` clips (``value_max_grad_norm``) and steps
the value optimizer. With separate Adam optimizers ``vf_coef`` only rescales the value
gradient before clipping. ``state_dict`` holds the value model's weights, its optimizer
state and the step count, so a resumed run continues exactly.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from rlkit.algorithms.base import Algorithm, LossOutput, StepPlan, TrainContext
from rlkit.algorithms.config import PPOConfig
from rlkit.algorithms.grpo import Denominators
from rlkit.algorithms.losses import (
    clipped_policy_loss,
    clipped_value_loss,
    gae,
    kl_estimate,
    masked_mean,
    whiten,
)
from rlkit.algorithms.rollout import in_chunks, sample_rollouts
from rlkit.data.collate import TokenBatch
from rlkit.models.forward import target_logprobs
from rlkit.models.loading import load_model
from rlkit.models.reference import ReferencePolicy
from rlkit.trainer.evaluation import evaluate_prompts
from rlkit.trainer.optim import build_optimizer, lr_factor
from rlkit.types import PromptSample, SampleKind


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
    totals: Denominators


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


class PPO(Algorithm):
    Config = PPOConfig
    sample_kind = SampleKind.PROMPT
    plot_keys = ("reward/mean", "value_loss", "eval/accuracy")

    def __init__(self, config: PPOConfig, ctx: TrainContext):
        super().__init__(config, ctx)
        if ctx.reward is None:
            raise ValueError("algo=ppo needs a reward: add e.g. reward=math")
        self.reference = ReferencePolicy(ctx.policy, ctx.backend, ctx.model, config.ref_name_or_path) if config.kl_coef > 0 else None
        self.value_model = ctx.backend.wrap(self._load_value_model(), trainable=True)
        self.value_optimizer = build_optimizer(self.value_model, self._value_trainer_config())
        self.steps = 0

    def _load_value_model(self) -> nn.Module:
        # The initial checkpoint (after a resume, load_state_dict restores the trained weights).
        value = load_model(self.ctx.model, "token_classification", path=self.config.value_name_or_path)
        return value.to(next(self.ctx.policy.parameters()).dtype)

    def _value_trainer_config(self):
        lr = self.config.value_lr if self.config.value_lr is not None else self.ctx.trainer.lr
        return dataclasses.replace(self.ctx.trainer, lr=lr)

    # ---------------------------------------------------------------- rollouts

    def prepare(self, samples: Sequence[PromptSample]) -> StepPlan:
        cfg = self.config
        for group in self.value_optimizer.param_groups:  # the trainer's schedule, at this step
            group["lr"] = self._value_trainer_config().lr * lr_factor(self.steps, self.ctx.trainer)
        self.steps += 1
        data, metrics = self.rollout_data(list(samples))
        updates = []
        several = cfg.epochs * cfg.minibatches > 1
        generator = torch.Generator().manual_seed(int(torch.randint(2**31, (1,))))
        for _ in range(cfg.epochs):
            order = torch.randperm(len(data), generator=generator) if several else torch.arange(len(data))
            for rows in order.chunk(cfg.minibatches):
                updates.append(self.micro_batches(data, rows.tolist()))
        return StepPlan(updates, metrics)

    def rollout_data(self, prompts: list[PromptSample]) -> tuple[PPOData, dict[str, float]]:
        """Rollouts with old log-probs, old values, advantages and returns, and their metrics."""
        cfg = self.config
        rollouts = sample_rollouts(self.ctx, prompts, cfg.sampling.params(cfg.samples_per_prompt), cfg.truncation_penalty)
        batch, metrics = rollouts.batch, rollouts.metrics
        mask = batch.target_mask[:, 1:]
        start = time.perf_counter()
        size, device, temperature = self.ctx.trainer.micro_batch_size, self.ctx.backend.device, cfg.sampling.temperature
        old_logps = None
        if cfg.epochs * cfg.minibatches > 1 or self.reference is not None:
            old_logps = in_chunks(lambda micro: target_logprobs(self.ctx.policy, micro, temperature)[0], batch, size, device)
        self.value_model.eval()
        old_values = in_chunks(lambda micro: token_values(self.value_model, micro), batch, size, device)
        kl = None
        if self.reference is not None:
            ref_logps = in_chunks(lambda micro: self.reference.logprobs(micro, temperature), batch, size, device)
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
        backend = self.ctx.backend
        if backend.dp_size == 1:
            return whiten(advantages, mask)
        n = backend.all_reduce_sum(float(mask.sum()))
        mean = backend.all_reduce_sum(float((advantages * mask).sum())) / max(n, 1.0)
        squares = backend.all_reduce_sum(float((((advantages - mean) * mask) ** 2).sum()))
        variance = squares / max(n - 1, 1.0)
        return torch.where(mask, (advantages - mean) / (variance + 1e-8) ** 0.5, torch.zeros_like(advantages))

    def micro_batches(self, data: PPOData, rows: list[int]) -> list[PPOMicroBatch]:
        mask = data.batch.target_mask[rows, 1:]
        backend = self.ctx.backend
        totals = Denominators(
            tokens=backend.all_reduce_sum(float(mask.sum())),
            sequences=backend.all_reduce_sum(float((mask.sum(-1) > 0).sum())),
            max_length=self.config.sampling.max_new_tokens,
        )
        size = self.ctx.trainer.micro_batch_size
        return [PPOMicroBatch(data.select(rows[i : i + size]), totals) for i in range(0, len(rows), size)]

    # ---------------------------------------------------------------- loss

    def loss(self, micro: PPOMicroBatch) -> LossOutput:
        cfg = self.config
        device = self.ctx.backend.device
        data = micro.data
        batch = data.batch.to(device)
        logps, mask, entropy = target_logprobs(self.ctx.policy, batch, cfg.sampling.temperature, with_entropy=True)
        old = logps.detach() if data.old_logps is None else data.old_logps.to(device)
        tokens = max(micro.totals.tokens, 1.0)
        policy_loss, stats = clipped_policy_loss(
            logps, old, data.advantages.to(device, logps.dtype), mask, eps_low=cfg.eps_low, eps_high=cfg.eps_high,
            dual_clip=cfg.dual_clip, aggregation="token_mean", global_tokens=tokens,
        )
        self.value_model.train()
        values = token_values(self.value_model, batch)
        value_loss, value_stats = clipped_value_loss(
            values, data.old_values.to(device, values.dtype), data.returns.to(device, values.dtype), mask,
            clip_eps=cfg.value_clip, aggregation="token_mean", global_tokens=tokens,
        )
        loss = policy_loss + cfg.vf_coef * value_loss
        share = float(mask.sum()) / tokens  # this micro-batch's share of the update's tokens
        metrics = {"loss": loss.item(), "policy_loss": policy_loss.item(), "value_loss": value_loss.item()}
        metrics.update({k: float(v) * share for k, v in {**stats, **value_stats}.items()})
        metrics["entropy"] = float((entropy * mask).sum()) / tokens
        mismatch = (logps.detach() - data.generator_logps.to(device)).abs()
        metrics["mismatch/logprob_abs_diff"] = float((mismatch * mask).sum()) / tokens
        return LossOutput(loss, metrics)

    def after_update(self) -> None:
        max_norm = self.config.value_max_grad_norm
        max_norm = self.ctx.trainer.max_grad_norm if max_norm is None else max_norm
        self.ctx.backend.clip_grad_norm(self.value_model, max_norm)
        self.value_optimizer.step()
        self.value_optimizer.zero_grad(set_to_none=True)

    # ---------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Full (unsharded, CPU) value weights and optimizer state keyed by parameter name:
        loadable with any world size and backend. Collective."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        model_state, optim_state = get_state_dict(self.value_model, self.value_optimizer,
                                                  options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return {"value_model": model_state, "value_optimizer": optim_state, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        set_state_dict(self.value_model, self.value_optimizer, model_state_dict=state["value_model"],
                       optim_state_dict=state["value_optimizer"], options=StateDictOptions(full_state_dict=True))
        self.steps = int(state["steps"])

    # ---------------------------------------------------------------- evaluation

    def evaluate(self, samples: Sequence[PromptSample]) -> dict[str, float]:
        return evaluate_prompts(self.ctx.generator, samples, self.ctx.reward, self.ctx.trainer.eval_max_new_tokens,
                                k=self.config.eval_k, sampling=self.config.sampling.params(self.config.eval_k))
