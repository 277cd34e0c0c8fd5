"""Forward passes shared by every algorithm: per-token log-probabilities of targets."""

from __future__ import annotations

from torch import Tensor, nn

from rlkit.algorithms.losses import sequence_logprobs, token_entropy
from rlkit.data.collate import TokenBatch


def forward_logits(model: nn.Module, batch: TokenBatch) -> Tensor:
    return model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        use_cache=False,
    ).logits


def target_logprobs(
    model: nn.Module, batch: TokenBatch, temperature: float = 1.0, with_entropy: bool = False
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(logps, mask, entropy)``, each ``[B, T-1]``: log p(input_ids[:, t+1] | prefix) at
    the target positions (``mask``), and the next-token entropy there when asked."""
    logits = forward_logits(model, batch)[:, :-1]
    if temperature != 1.0:
        logits = logits / temperature
    mask = batch.target_mask[:, 1:]
    logps = sequence_logprobs(logits, batch.input_ids[:, 1:], mask)
    entropy = token_entropy(logits.detach()) if with_entropy else None
    return logps, mask, entropy
