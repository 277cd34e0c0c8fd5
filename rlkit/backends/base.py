"""The backend interface: how the policy and optimizer are placed on one or many processes.

A backend owns everything that differs between one process and many: device placement,
wrapping, backward, gradient clipping, the optimizer step, reductions across ranks and
full (gathered) state dicts. Algorithms and the loop never ask which backend they run on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn


class Backend(ABC):
    Config: type
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @abstractmethod
    def wrap(self, model: nn.Module, trainable: bool = True) -> nn.Module:
        """Place ``model`` for training (``trainable``) or for frozen inference (reference)."""

    def backward(self, loss: Tensor) -> None:
        loss.backward()

    @abstractmethod
    def clip_grad_norm(self, model: nn.Module, max_norm: float) -> float:
        """Clip gradients to ``max_norm`` (<= 0: no clipping); the global norm before clipping."""

    def all_reduce_sum(self, value: float) -> float:
        """Sum of ``value`` over ranks (denominators of global means)."""
        return value

    @abstractmethod
    def full_state_dict(self, model: nn.Module) -> dict[str, Tensor]:
        """Unsharded CPU tensors of ``model``, valid on the main rank."""

    def barrier(self) -> None:
        """Wait for every rank."""

    def close(self) -> None:
        """Release process groups and devices."""
