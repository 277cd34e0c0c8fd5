"""Reward modelling: a scalar head trained on preference pairs (Bradley-Terry).

The model is any causal LM checkpoint (an SFT output of rlkit included) loaded as a Hugging
Face sequence-classification model with one label (``model_kind``); its score ``r`` is
read at each sequence's last real token, the EOS after the completion. Per pair,

    loss = -log sigmoid(r_c - r_r - m) + center_coef (r_c + r_r)^2

(:func:`rlkit.algorithms.losses.reward_model_loss`) averaged over the step's pairs, with
``m`` the row's margin (0 for rows without one). The exported model loads with
``AutoModelForSequenceClassification.from_pretrained`` and serves as
:class:`rlkit.rewards.reward_model.RewardModelReward`.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor

from rlkit.algorithms.base import Algorithm, LossOutput, StepPlan
from rlkit.algorithms.config import RMConfig
from rlkit.algorithms.losses import reward_model_loss
from rlkit.algorithms.preference import evaluate_pairs, pair_statistics
from rlkit.data.pairs import PairBatch, pair_batches, split_pairs
from rlkit.models.forward import forward_logits
from rlkit.types import PreferenceSample, SampleKind


class RewardModelling(Algorithm):
    Config = RMConfig
    sample_kind = SampleKind.PREFERENCE
    plot_keys = ("loss", "accuracy", "eval/pref_accuracy")
    model_kind = "sequence_classification"

    def batches(self, samples: Sequence[PreferenceSample], size: int) -> list[PairBatch]:
        return pair_batches(self.ctx.tokenizer, samples, size, self.config.max_length,
                            self.ctx.trainer.micro_batch_tokens)

    def prepare(self, samples: Sequence[PreferenceSample]) -> StepPlan:
        return StepPlan([self.batches(samples, self.ctx.trainer.micro_batch_size)])

    def counts(self, pairs: PairBatch) -> dict[str, float]:
        return {"pairs": float(len(pairs.samples))}

    def loss(self, pairs: PairBatch, totals: dict[str, float]) -> LossOutput:
        losses, chosen, rejected = self.score(pairs)
        stats = pair_statistics(chosen, rejected)
        metrics = {key: value / totals["pairs"] for key, value in stats.items()}
        metrics["accuracy"] = metrics.pop("rewards/accuracy")
        return LossOutput(losses.sum() / totals["pairs"], metrics)

    def evaluate(self, samples: Sequence[PreferenceSample]) -> dict[str, float]:
        return evaluate_pairs(self.batches(samples, self.ctx.trainer.eval_batch_size), self.score)

    def score(self, pairs: PairBatch) -> tuple[Tensor, Tensor, Tensor]:
        """``(per-pair losses, r_c, r_r)`` of a pair batch, from one forward pass."""
        device = self.ctx.backend.device
        rewards = forward_logits(self.ctx.policy, pairs.tokens.to(device)).squeeze(-1).float()
        chosen, rejected = split_pairs(rewards)
        margins = pairs.margins()
        losses = reward_model_loss(chosen, rejected, margin=None if margins is None else margins.to(device),
                                   center_coef=self.config.center_coef)
        return losses, chosen, rejected
