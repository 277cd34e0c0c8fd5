"""Preference pairs as model inputs and metrics, shared by DPO and reward modelling.

A :class:`PairBatch` holds the chosen completions in rows ``[0, n)`` and the rejected ones
in rows ``[n, 2n)`` of one right-padded batch, so both sides of every pair are scored in
one forward pass; :func:`split_pairs` separates per-row results again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

from rlkit.data.collate import TokenBatch, collate, tokenize
from rlkit.types import PreferenceSample

#: Scores a pair batch: ``(per-pair losses, chosen scores, rejected scores)``, each ``[n]``.
PairScorer = Callable[["PairBatch"], tuple[Tensor, Tensor, Tensor]]


@dataclass
class PairBatch:
    samples: list[PreferenceSample]
    #: Prompt + chosen completions, then prompt + rejected completions (each ending in EOS).
    tokens: TokenBatch

    @property
    def num_chosen_targets(self) -> int:
        """Completion tokens of the chosen rows that a next-token loss covers."""
        return int(self.tokens.target_mask[: len(self.samples), 1:].sum())

    def margins(self) -> Tensor | None:
        """The rows' margins (0 where a row has none), or None when no row has one."""
        if all(s.margin is None for s in self.samples):
            return None
        return torch.tensor([s.margin or 0.0 for s in self.samples])


def pair_batches(tokenizer, samples: Sequence[PreferenceSample], size: int, max_length: int) -> list[PairBatch]:
    """``samples`` in batches of ``size`` pairs, each tokenised with :func:`tokenize`."""
    batches = []
    for start in range(0, len(samples), size):
        chunk = list(samples[start : start + size])
        rows = [tokenize(tokenizer, s.prompt, s.chosen, max_length) for s in chunk]
        rows += [tokenize(tokenizer, s.prompt, s.rejected, max_length) for s in chunk]
        batches.append(PairBatch(chunk, collate(rows, tokenizer.pad_token_id)))
    return batches


def split_pairs(values: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row values ``[2n, ...]`` of a pair batch -> ``(chosen [n, ...], rejected [n, ...])``."""
    n = values.shape[0] // 2
    return values[:n], values[n:]


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
