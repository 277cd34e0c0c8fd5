"""Direct preference optimisation (DPO) and its hinge (SLiC), IPO and robust variants.

Per pair, with ``logp`` a completion's log-probability (the sum of its tokens'
log-probabilities, or their mean with ``average_logprobs``) under the policy and under the
frozen reference:

    d_c = logp(chosen) - logp_ref(chosen),   d_r = logp(rejected) - logp_ref(rejected),
    z = beta (d_c - d_r)

the loss is :func:`rlkit.algorithms.losses.dpo_loss` of ``loss_type``, averaged over the
step's pairs, plus ``nll_weight`` times the per-token NLL of the chosen completions (RPO).
Implicit rewards are ``beta d_c`` and ``beta d_r``.

The reference is ``ref_name_or_path`` when set; otherwise, with LoRA, the policy with its
adapters disabled (no second copy of the weights), and without LoRA a frozen copy of the
initial policy. It never changes, so with ``precompute_ref`` each pair's reference
log-probabilities are computed once, without gradients, the first time the pair is seen
(in ``prepare`` or ``evaluate``) and reused in later epochs and evaluations; otherwise
they are recomputed in every micro-batch.

Chosen and rejected completions of a micro-batch go through the model in one forward pass
(:class:`~rlkit.algorithms.preference.PairBatch`); ``trainer.micro_batch_size`` counts pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from rlkit.algorithms.base import Algorithm, LossOutput, StepPlan, TrainContext
from rlkit.algorithms.config import DPOConfig
from rlkit.algorithms.losses import dpo_loss, masked_mean, masked_sum, sft_loss
from rlkit.algorithms.preference import (
    PairBatch,
    evaluate_pairs,
    pair_batches,
    pair_statistics,
    split_pairs,
)
from rlkit.data.collate import TokenBatch
from rlkit.models.forward import target_logprobs
from rlkit.models.reference import ReferencePolicy
from rlkit.types import PreferenceSample, SampleKind


@dataclass
class DPOMicroBatch:
    pairs: PairBatch
    #: Reference log-probabilities of the rows (``[2n]``), or None: compute them in ``loss``.
    ref_logps: Tensor | None


@dataclass
class PairForward:
    """One forward pass over a pair batch."""

    losses: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor
    #: Per-token policy log-probabilities and their mask, ``[2n, T-1]``.
    token_logps: Tensor
    mask: Tensor


class DPO(Algorithm):
    Config = DPOConfig
    sample_kind = SampleKind.PREFERENCE
    plot_keys = ("loss", "rewards/accuracy", "eval/pref_accuracy")

    def __init__(self, config: DPOConfig, ctx: TrainContext):
        super().__init__(config, ctx)
        # Check the loss options with dpo_loss's own rules before the first step.
        zero, one = torch.zeros(1), torch.ones(1)
        dpo_loss(zero, zero, zero, zero, beta=config.beta, loss_type=config.loss_type,
                 label_smoothing=config.label_smoothing, chosen_lengths=one, rejected_lengths=one)
        self.reference = ReferencePolicy(ctx.policy, ctx.backend, ctx.model, config.ref_name_or_path)
        self._ref_cache: dict[PreferenceSample, tuple[float, float]] = {}

    def batches(self, samples: Sequence[PreferenceSample], size: int) -> list[PairBatch]:
        return pair_batches(self.ctx.tokenizer, samples, size, self.config.max_length)

    def prepare(self, samples: Sequence[PreferenceSample]) -> StepPlan:
        batches = self.batches(samples, self.ctx.trainer.micro_batch_size)
        precompute = self.config.precompute_ref
        return StepPlan([[DPOMicroBatch(b, self.cached_reference(b.samples) if precompute else None) for b in batches]])

    def counts(self, micro_batch: DPOMicroBatch) -> dict[str, float]:
        pairs = micro_batch.pairs
        return {"pairs": float(len(pairs.samples)), "chosen_tokens": float(pairs.num_chosen_targets)}

    def loss(self, micro_batch: DPOMicroBatch, totals: dict[str, float]) -> LossOutput:
        out = self.forward(micro_batch.pairs, micro_batch.ref_logps)
        n = len(micro_batch.pairs.samples)
        nll = sft_loss(out.token_logps[:n], out.mask[:n], totals["chosen_tokens"])
        loss = out.losses.sum() / totals["pairs"] + self.config.nll_weight * nll
        stats = pair_statistics(out.chosen_rewards, out.rejected_rewards)
        metrics = {key: value / totals["pairs"] for key, value in stats.items()}
        metrics["nll"] = nll.item()
        return LossOutput(loss, metrics)

    def evaluate(self, samples: Sequence[PreferenceSample]) -> dict[str, float]:
        def score(pairs: PairBatch) -> tuple[Tensor, Tensor, Tensor]:
            ref_logps = self.cached_reference(pairs.samples) if self.config.precompute_ref else None
            out = self.forward(pairs, ref_logps)
            return out.losses, out.chosen_rewards, out.rejected_rewards

        return evaluate_pairs(self.batches(samples, self.ctx.trainer.eval_batch_size), score)

    def forward(self, pairs: PairBatch, ref_logps: Tensor | None) -> PairForward:
        """Policy log-probabilities of a pair batch and the per-pair DPO losses.

        ``ref_logps`` are the rows' reference log-probabilities; None computes them here.
        """
        batch = pairs.tokens.to(self.ctx.backend.device)  # a no-op in loss: the trainer moved it
        if ref_logps is None:
            ref_logps = self.reference_logps(batch)
        token_logps, mask, _ = target_logprobs(self.ctx.policy, batch)
        policy_logps = self.sequence_logps(token_logps, mask)
        policy_chosen, policy_rejected = split_pairs(policy_logps)
        ref_chosen, ref_rejected = split_pairs(ref_logps.to(policy_logps.device, policy_logps.dtype))
        # IPO divides log-ratios by completion lengths; mean log-probabilities already are per token.
        lengths = torch.ones_like(policy_logps) if self.config.average_logprobs else mask.sum(-1)
        chosen_lengths, rejected_lengths = split_pairs(lengths)
        losses, chosen_rewards, rejected_rewards = dpo_loss(
            policy_chosen, policy_rejected, ref_chosen, ref_rejected,
            beta=self.config.beta, loss_type=self.config.loss_type, label_smoothing=self.config.label_smoothing,
            chosen_lengths=chosen_lengths, rejected_lengths=rejected_lengths,
        )
        return PairForward(losses, chosen_rewards, rejected_rewards, token_logps, mask)

    def sequence_logps(self, token_logps: Tensor, mask: Tensor) -> Tensor:
        """Each row's completion log-probability: the sum over its tokens, or the mean."""
        reduce = masked_mean if self.config.average_logprobs else masked_sum
        return reduce(token_logps, mask, dim=-1)

    def reference_logps(self, batch: TokenBatch) -> Tensor:
        """Reference completion log-probabilities of a batch's rows, computed now."""
        return self.sequence_logps(self.reference.logprobs(batch), batch.target_mask[:, 1:])

    def cached_reference(self, samples: Sequence[PreferenceSample]) -> Tensor:
        """Reference log-probabilities of ``samples``' rows (chosen then rejected), ``[2n]``,
        computing those of pairs not seen before in one batch."""
        missing = [s for s in dict.fromkeys(samples) if s not in self._ref_cache]
        if missing:
            (pairs,) = self.batches(missing, len(missing))
            chosen, rejected = split_pairs(self.reference_logps(pairs.tokens.to(self.ctx.backend.device)))
            self._ref_cache.update(zip(missing, zip(chosen.tolist(), rejected.tolist())))
        cached = [self._ref_cache[s] for s in samples]
        return torch.tensor([c for c, _ in cached] + [r for _, r in cached], dtype=torch.float64)
