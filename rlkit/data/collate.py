"""Tokenising prompt/completion pairs and collating them into padded or packed batches.

The helpers every algorithm (built-in or plugin) uses to turn samples into model inputs:

    rows = [tokenize(tokenizer, s.prompt, s.completion, max_length) for s in samples]
    batches = [collate(chunk, tokenizer.pad_token_id) for chunk in chunks(rows, micro_batch_size)]
    # or pack(chunk, pad_token_id, row_length): several samples per row

``TokenBatch.target_mask`` marks the completion tokens a loss scores; see
:func:`rlkit.models.forward.target_logprobs` for their log-probabilities and
:mod:`rlkit.data.pairs` for preference pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence, TypeVar

import torch
from torch import Tensor

from rlkit.data.templates import encode_prompt
from rlkit.types import Prompt

T = TypeVar("T")


@dataclass(frozen=True)
class TokenizedSample:
    """Token ids of prompt + completion; the completion starts at ``prompt_length``."""

    input_ids: tuple[int, ...]
    prompt_length: int

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class TokenBatch:
    """Model inputs. ``target_mask[b, t]`` is True where ``input_ids[b, t]`` is a completion
    token to score (it is predicted from position t - 1).

    Packed batches hold several samples per row: ``attention_mask`` is None and
    ``position_ids`` restart at 0 for each sample, which makes Hugging Face models use a
    block-diagonal causal mask (no attention across samples).
    """

    input_ids: Tensor
    position_ids: Tensor
    target_mask: Tensor
    attention_mask: Tensor | None = None

    def to(self, device: torch.device | str) -> "TokenBatch":
        return TokenBatch(**{f.name: _move(getattr(self, f.name), device) for f in fields(self)})

    @property
    def num_targets(self) -> int:
        return int(self.target_mask.sum())

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, rows: slice | list[int]) -> "TokenBatch":
        """The given rows, as a batch of their own."""
        return TokenBatch(**{f.name: _rows(getattr(self, f.name), rows) for f in fields(self)})


def _rows(value, rows):
    return value[rows] if isinstance(value, Tensor) else value


def _move(value, device):
    return value.to(device, non_blocking=True) if isinstance(value, Tensor) else value


def chunks(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` in consecutive lists of ``size`` (the last one may be shorter): micro-batches."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def length_grouped_chunks(items: Sequence[T], lengths: Sequence[int], size: int, max_tokens: int) -> list[list[T]]:
    """``items`` in micro-batches of at most ``size`` items and ``max_tokens`` padded tokens
    (items x longest ``lengths``), longest items first; an item longer than ``max_tokens``
    is a micro-batch of its own. ``max_tokens`` = 0: :func:`chunks` (the given order).

    Right-padding a mix of short and long samples to the longest wastes the difference;
    grouping by length spends the forward pass on real tokens instead. Longest first, a
    micro-batch's width is that of its first item, and a budget too large for the device
    fails on the first micro-batch.
    """
    if max_tokens == 0:
        return chunks(items, size)
    groups: list[list[T]] = []
    width = 0
    # Stable sort: items of equal length keep their order.
    for i in sorted(range(len(items)), key=lambda i: -lengths[i]):
        if groups and len(groups[-1]) < size and (len(groups[-1]) + 1) * width <= max_tokens:
            groups[-1].append(items[i])
        else:
            groups.append([items[i]])
            width = lengths[i]
    return groups


def tokenize(tokenizer, prompt: Prompt, completion: str, max_length: int) -> TokenizedSample:
    """Prompt tokens then completion tokens then EOS, cut to ``max_length``.

    A prompt too long to leave room for one completion token keeps its end (the part
    nearest the completion).
    """
    prompt_ids = encode_prompt(tokenizer, prompt)
    completion_ids = tokenizer(completion, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    prompt_ids = prompt_ids[-(max_length - 1) :]
    ids = (prompt_ids + completion_ids)[:max_length]
    return TokenizedSample(tuple(ids), len(prompt_ids))


def collate(samples: Sequence[TokenizedSample], pad_token_id: int) -> TokenBatch:
    """One sample per row, right-padded."""
    width = max(len(s) for s in samples)
    input_ids = torch.full((len(samples), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(samples), width), dtype=torch.long)
    target_mask = torch.zeros((len(samples), width), dtype=torch.bool)
    for row, sample in enumerate(samples):
        input_ids[row, : len(sample)] = torch.tensor(sample.input_ids)
        attention_mask[row, : len(sample)] = 1
        target_mask[row, sample.prompt_length : len(sample)] = True
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return TokenBatch(input_ids, position_ids, target_mask, attention_mask)


def pack(samples: Sequence[TokenizedSample], pad_token_id: int, row_length: int) -> TokenBatch:
    """Several samples per row (first-fit in the given order), rows right-padded.

    Padding gets its own restarting positions, so it forms a separate block that no real
    token attends to, and is never a target.
    """
    rows: list[list[TokenizedSample]] = []
    free: list[int] = []
    for sample in samples:
        if len(sample) > row_length:
            raise ValueError(f"a sample of {len(sample)} tokens does not fit a packed row of {row_length}")
        for i, space in enumerate(free):
            if len(sample) <= space:
                rows[i].append(sample)
                free[i] -= len(sample)
                break
        else:
            rows.append([sample])
            free.append(row_length - len(sample))
    width = max(row_length - space for space in free)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    target_mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for r, row in enumerate(rows):
        start = 0
        for sample in row:
            end = start + len(sample)
            input_ids[r, start:end] = torch.tensor(sample.input_ids)
            position_ids[r, start:end] = torch.arange(len(sample))
            target_mask[r, start + sample.prompt_length : end] = True
            start = end
        position_ids[r, start:] = torch.arange(width - start)
    return TokenBatch(input_ids, position_ids, target_mask, None)
