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
(:class:`~rlkit.data.pairs.PairBatch`); ``trainer.micro_batch_size`` counts pairs. The
machinery is :class:`~rlkit.algorithms.preference.PreferenceAlgorithm`'s; DPO adds its loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlkit.algorithms.base import LossOutput, TrainContext
from rlkit.algorithms.config import DPOConfig
from rlkit.algorithms.losses import dpo_loss, sft_loss
from rlkit.algorithms.preference import PairLogps, PairMicroBatch, PreferenceAlgorithm


class DPO(PreferenceAlgorithm):
    Config = DPOConfig

    def __init__(self, config: DPOConfig, ctx: TrainContext):
        # Check the loss options with dpo_loss's own rules before anything is loaded.
        zero, one = torch.zeros(1), torch.ones(1)
        dpo_loss(zero, zero, zero, zero, beta=config.beta, loss_type=config.loss_type,
                 label_smoothing=config.label_smoothing, chosen_lengths=one, rejected_lengths=one)
        super().__init__(config, ctx)

    def pair_loss(self, logps: PairLogps) -> tuple[Tensor, Tensor, Tensor]:
        cfg = self.config
        return dpo_loss(logps.chosen, logps.rejected, logps.ref_chosen, logps.ref_rejected, beta=cfg.beta,
                        loss_type=cfg.loss_type, label_smoothing=cfg.label_smoothing,
                        chosen_lengths=logps.chosen_lengths, rejected_lengths=logps.rejected_lengths)

    def loss(self, micro_batch: PairMicroBatch, totals: dict[str, float]) -> LossOutput:
        out = self.forward(micro_batch.pairs, micro_batch.ref_logps)
        n = len(micro_batch.pairs.samples)
        nll = sft_loss(out.token_logps[:n], out.mask[:n], totals["chosen_tokens"])
        result = self.pair_output(out, totals)
        result.loss = result.loss + self.config.nll_weight * nll
        result.metrics["nll"] = nll.item()
        return result
