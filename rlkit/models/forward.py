"""Forward passes shared by every algorithm: per-token log-probabilities of targets."""

from __future__ import annotations

import inspect
from functools import lru_cache

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rlkit.algorithms.losses import sequence_logprobs, token_entropy
from rlkit.data.collate import TokenBatch


def forward_logits(model: nn.Module, batch: TokenBatch, last: int = 0) -> Tensor:
    """The model's logits, ``[B, T, V]``; with ``last`` > 0 only those of the last ``last``
    positions (``[B, last, V]``), where the model can skip the others (Hugging Face's
    ``logits_to_keep``; other models compute all and the rest are dropped)."""
    kwargs = {}
    if last and accepts_logits_to_keep(model):
        # The positions as a tensor, not the count: the model then indexes them into a
        # contiguous copy, which the output layer multiplies the same way whether or not its
        # weight requires grad. A slice of the last positions is a strided view, and for
        # those PyTorch's matmul takes a batched path when an operand requires grad and a
        # folded one when none does, so a trainable policy and its frozen reference (equal
        # weights) would give log-probs that differ in the last bits.
        length = batch.input_ids.shape[1]
        kwargs["logits_to_keep"] = torch.arange(length - last, length, device=batch.input_ids.device)
    logits = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        use_cache=False,
        **kwargs,
    ).logits
    return logits[:, -last:] if last and not kwargs else logits


def target_logprobs(
    model: nn.Module, batch: TokenBatch, temperature: float = 1.0, with_entropy: bool = False
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(logps, mask, entropy)``, each ``[B, T-1]``: log p(input_ids[:, t+1] | prefix) at
    the target positions (``mask``), and the next-token entropy there when asked.

    Logits are computed from the first column holding a target on: the columns before it
    (prompts, where every row's prompt is longer) are all masked out, so the output layer,
    log-softmax and their backward skip them. Those columns of the results are 0.
    """
    mask = batch.target_mask[:, 1:]
    columns = mask.any(0).nonzero()
    first = int(columns[0]) if len(columns) else mask.shape[1]
    # Logits of positions first..T-1; the last one predicts past the sequence.
    logits = forward_logits(model, batch, last=mask.shape[1] + 1 - first)[:, :-1]
    if temperature != 1.0:
        logits = logits / temperature
    logps = F.pad(sequence_logprobs(logits, batch.input_ids[:, first + 1 :], mask[:, first:]), (first, 0))
    entropy = F.pad(token_entropy(logits.detach()), (first, 0)) if with_entropy else None
    return logps, mask, entropy


def accepts_logits_to_keep(model: nn.Module) -> bool:
    """Whether ``model`` (under DDP's or PEFT's wrappers) takes Hugging Face's ``logits_to_keep``."""
    while isinstance(getattr(model, "module", None), nn.Module):  # DistributedDataParallel
        model = model.module
    if hasattr(model, "get_base_model"):  # PEFT: the wrapper passes keyword arguments through
        model = model.get_base_model()
    return _forward_accepts(type(model), "logits_to_keep")


@lru_cache(maxsize=None)
def _forward_accepts(model_class: type, argument: str) -> bool:
    return argument in inspect.signature(model_class.forward).parameters
