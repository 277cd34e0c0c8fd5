"""Losses on preference pairs: the shared machinery of DPO, its relatives and plugins.

A pairwise loss is its idea only: subclass :class:`PreferenceAlgorithm` (its ``Config``
deriving from :class:`~rlkit.algorithms.config.PreferenceConfig`) and implement :meth:`~PreferenceAlgorithm.pair_loss`
on the completions' log-probabilities. The base class tokenises the pairs
(:mod:`rlkit.data.pairs`), computes and caches the frozen reference's log-probabilities,
normalises by the update's pairs, logs the implicit rewards and evaluates held-out pairs::

    class SimPO(PreferenceAlgorithm):
        Config = SimPOConfig            # beta, gamma + PreferenceConfig's fields
        uses_reference = False

        def pair_loss(self, logps):
            return simpo_loss(logps.chosen, logps.rejected, self.config.beta, self.config.gamma)

Both completions of a micro-batch's pairs go through the model in one forward pass
(:class:`~rlkit.data.pairs.PairBatch`); ``trainer.micro_batch_size`` counts pairs.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional, Sequence

import torch
from torch import Tensor

from rlkit.algorithms.base import Algorithm, LossOutput, StepPlan, TrainContext
from rlkit.algorithms.losses import masked_mean, masked_sum
from rlkit.data.collate import TokenBatch
from rlkit.data.pairs import PairBatch, pair_batches, split_pairs
from rlkit.models.forward import target_logprobs
from rlkit.models.reference import ReferencePolicy
from rlkit.types import PreferenceSample, SampleKind

#: Scores a pair batch: ``(per-pair losses, chosen scores, rejected scores)``, each ``[n]``.
PairScorer = Callable[[PairBatch], tuple[Tensor, Tensor, Tensor]]


@dataclass
class PairLogps:
    """Completion log-probabilities of a micro-batch's ``n`` pairs, each ``[n]``."""

    chosen: Tensor
    rejected: Tensor
    #: Under the frozen reference (None when the algorithm uses none).
    ref_chosen: Optional[Tensor]
    ref_rejected: Optional[Tensor]
    #: Completion tokens (all 1 with ``average_logprobs``: mean log-probabilities already are per token).
    chosen_lengths: Tensor
    rejected_lengths: Tensor


@dataclass
class PairMicroBatch:
    pairs: PairBatch
    #: Reference log-probabilities of the rows (``[2n]``), or None: compute them in ``loss``.
    ref_logps: Optional[Tensor]


@dataclass
class PairForward:
    """One forward pass over a pair batch."""

    losses: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor
    #: Per-token policy log-probabilities and their mask, ``[2n, T-1]``.
    token_logps: Tensor
    mask: Tensor


class PreferenceAlgorithm(Algorithm):
    sample_kind = SampleKind.PREFERENCE
    plot_keys = ("loss", "rewards/accuracy", "eval/pref_accuracy")
    #: Whether the loss compares with a frozen reference policy (then loaded, and its
    #: log-probabilities of each pair computed once with ``precompute_ref``).
    uses_reference: ClassVar[bool] = True

    def __init__(self, config: Any, ctx: TrainContext):
        super().__init__(config, ctx)
        self.reference = ReferencePolicy(ctx.policy, ctx.backend, ctx.model, config.ref_name_or_path) \
            if self.uses_reference else None
        self._ref_cache: dict[PreferenceSample, tuple[float, float]] = {}

    @abstractmethod
    def pair_loss(self, logps: PairLogps) -> tuple[Tensor, Tensor, Tensor]:
        """``(losses, chosen_rewards, rejected_rewards)``, each ``[n]``: every pair's loss
        and the implicit rewards logged as ``rewards/{chosen,rejected,margin,accuracy}``."""

    def batches(self, samples: Sequence[PreferenceSample], size: int) -> list[PairBatch]:
        return pair_batches(self.ctx.tokenizer, samples, size, self.config.max_length,
                            self.ctx.trainer.micro_batch_tokens)

    def prepare(self, samples: Sequence[PreferenceSample]) -> StepPlan:
        precompute = self.reference is not None and self.config.precompute_ref
        return StepPlan([[PairMicroBatch(b, self.cached_reference(b.samples) if precompute else None)
                          for b in self.batches(samples, self.ctx.trainer.micro_batch_size)]])

    def counts(self, micro_batch: PairMicroBatch) -> dict[str, float]:
        pairs = micro_batch.pairs
        return {"pairs": float(len(pairs.samples)), "chosen_tokens": float(pairs.num_chosen_targets)}

    def loss(self, micro_batch: PairMicroBatch, totals: dict[str, float]) -> LossOutput:
        return self.pair_output(self.forward(micro_batch.pairs, micro_batch.ref_logps), totals)

    def pair_output(self, out: PairForward, totals: dict[str, float]) -> LossOutput:
        """The mean loss over the update's pairs and the implicit-reward metrics."""
        stats = pair_statistics(out.chosen_rewards, out.rejected_rewards)
        return LossOutput(out.losses.sum() / totals["pairs"], {key: value / totals["pairs"] for key, value in stats.items()})

    def evaluate(self, samples: Sequence[PreferenceSample]) -> dict[str, float]:
        def score(pairs: PairBatch) -> tuple[Tensor, Tensor, Tensor]:
            precompute = self.reference is not None and self.config.precompute_ref
            out = self.forward(pairs, self.cached_reference(pairs.samples) if precompute else None)
            return out.losses, out.chosen_rewards, out.rejected_rewards

        return evaluate_pairs(self.batches(samples, self.ctx.trainer.eval_batch_size), score)

    def forward(self, pairs: PairBatch, ref_logps: Tensor | None) -> PairForward:
        """Policy log-probabilities of a pair batch and the per-pair losses; ``ref_logps``
        are the rows' reference log-probabilities (None: computed here when needed)."""
        batch = pairs.tokens.to(self.ctx.backend.device)  # a no-op in loss: the trainer moved it
        if ref_logps is None and self.reference is not None:
            ref_logps = self.reference_logps(batch)
        token_logps, mask, _ = target_logprobs(self.ctx.policy, batch)
        policy_logps = self.sequence_logps(token_logps, mask)
        chosen, rejected = split_pairs(policy_logps)
        ref_chosen = ref_rejected = None
        if ref_logps is not None:
            ref_chosen, ref_rejected = split_pairs(ref_logps.to(policy_logps.device, policy_logps.dtype))
        lengths = torch.ones_like(policy_logps) if self.config.average_logprobs else mask.sum(-1)
        losses, chosen_rewards, rejected_rewards = self.pair_loss(
            PairLogps(chosen, rejected, ref_chosen, ref_rejected, *split_pairs(lengths)))
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


def pair_statistics(chosen: Tensor, rejected: Tensor) -> dict[str, float]:
    """Sums over pairs of the scores ``r_c``, ``r_r``, the margin ``r_c - r_r`` and the
    pairwise accuracy ``1[r_c > r_r] + 1/2 1[r_c = r_r]`` (a tie counts as a coin flip, so
    a policy equal to its reference scores 0.5). Callers divide by the number of pairs."""
    return {
        "rewards/chosen": float(chosen.sum()),
        "rewards/rejected": float(rejected.sum()),
        "rewards/margin": float((chosen - rejected).sum()),
        "rewards/accuracy": float((chosen > rejected).sum() + 0.5 * (chosen == rejected).sum()),
    }


def evaluate_pairs(batches: Sequence[PairBatch], score: PairScorer) -> dict[str, float]:
    """Held-out means over all pairs: ``loss``, ``pref_accuracy`` and
    ``rewards/{chosen,rejected,margin}``."""
    totals: dict[str, float] = {}
    for batch in batches:
        losses, chosen, rejected = score(batch)
        stats = {"loss": float(losses.sum()), **pair_statistics(chosen, rejected)}
        for key, value in stats.items():
            totals[key] = totals.get(key, 0.0) + value
    count = sum(len(b.samples) for b in batches)
    metrics = {key: value / count for key, value in totals.items()}
    metrics["pref_accuracy"] = metrics.pop("rewards/accuracy")
    return metrics
