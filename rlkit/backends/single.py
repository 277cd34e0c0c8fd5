"""One process, one device."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rlkit.backends.base import Backend
from rlkit.backends.config import SingleConfig


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class SingleBackend(Backend):
    Config = SingleConfig

    def __init__(self, config: SingleConfig):
        self.config = config
        self._device = pick_device(config.device)

    @property
    def device(self) -> torch.device:
        return self._device

    def wrap(self, model: nn.Module, trainable: bool = True) -> nn.Module:
        return model.to(self._device)

    def clip_grad_norm(self, model: nn.Module, max_norm: float) -> float:
        params = [p for p in model.parameters() if p.grad is not None]
        if max_norm > 0:
            return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))) if params else 0.0

    def full_state_dict(self, model: nn.Module) -> dict[str, Tensor]:
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
