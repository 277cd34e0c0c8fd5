"""Bytes this rank holds for parameters, gradients and optimizer state (its local shards)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


def _local(t: Tensor) -> Tensor:
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


def _bytes(tensors: Iterable[Tensor]) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for t in tensors:
        local = _local(t)
        key = (local.data_ptr(), local.numel())
        if local.device.type == "meta" or key in seen:
            continue
        seen.add(key)
        total += local.numel() * local.element_size()
    return total


def state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """``{"params", "grads", "optimizer"}``: bytes of this rank's local tensors of each kind."""
    params = list(model.parameters())
    opt_tensors = []
    if optimizer is not None:
        for state in optimizer.state.values():
            opt_tensors += [v for v in state.values() if isinstance(v, Tensor) and v.dim() > 0]
    return {
        "params": _bytes(params),
        "grads": _bytes(p.grad for p in params if p.grad is not None),
        "optimizer": _bytes(opt_tensors),
    }
