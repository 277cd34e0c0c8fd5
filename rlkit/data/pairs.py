"""Preference pairs as model inputs: both completions of every pair in one padded batch.

A :class:`PairBatch` holds the chosen completions in rows ``[0, n)`` and the rejected ones
in rows ``[n, 2n)``, each row prompt + completion + EOS (:func:`rlkit.data.collate.tokenize`:
cut to ``max_length``, keeping the end of a long prompt), so one forward pass scores both
sides of every pair; :func:`split_pairs` separates per-row results again.

    for pairs in pair_batches(tokenizer, samples, size=8, max_length=512):
        logps, mask, _ = target_logprobs(policy, pairs.tokens)      # [2n, T-1]
        chosen, rejected = split_pairs(masked_sum(logps, mask, dim=-1))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from rlkit.data.collate import TokenBatch, collate, length_grouped_chunks, tokenize
from rlkit.types import PreferenceSample


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


def pair_batches(tokenizer, samples: Sequence[PreferenceSample], size: int, max_length: int,
                 max_tokens: int = 0) -> list[PairBatch]:
    """``samples`` in batches of ``size`` pairs, each row tokenised with :func:`tokenize`;
    with ``max_tokens`` > 0, also of at most that many padded tokens, pairs grouped by length
    (:func:`~rlkit.data.collate.length_grouped_chunks`)."""
    pairs = [(s, tokenize(tokenizer, s.prompt, s.chosen, max_length), tokenize(tokenizer, s.prompt, s.rejected, max_length))
             for s in samples]
    # A pair is two rows as long as its longer side.
    lengths = [max(len(chosen), len(rejected)) for _, chosen, rejected in pairs]
    batches = []
    for chunk in length_grouped_chunks(pairs, lengths, size, max_tokens // 2):
        rows = [chosen for _, chosen, _ in chunk] + [rejected for _, _, rejected in chunk]
        batches.append(PairBatch([s for s, _, _ in chunk], collate(rows, tokenizer.pad_token_id)))
    return batches


def split_pairs(values: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row values ``[2n, ...]`` of a pair batch -> ``(chosen [n, ...], rejected [n, ...])``."""
    n = values.shape[0] // 2
    return values[:n], values[n:]
