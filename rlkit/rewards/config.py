"""``Config`` dataclasses of the rewards whose modules import torch (the schemas Hydra
checks while composing must not): the entry point names the Config, whose ``component``
names the reward. Torch-free rewards keep their Config next to their code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rlkit.rewards.base import OnError
from rlkit.schema import Dtype, above, at_least


@dataclass
class RewardModelConfig:
    """A reward model trained by algo=rm scores each completion (reward.path=<rm run>/final)."""

    component: ClassVar[str] = "rlkit.rewards.reward_model:RewardModelReward"

    #: A sequence-classification checkpoint, e.g. ``<rm run>/final``.
    path: str = "???"
    batch_size: int = field(default=32, metadata=at_least(1))
    #: auto | cpu | cuda | cuda:N
    device: str = "auto"
    dtype: Dtype = Dtype.float32
    max_length: int = field(default=1024, metadata=at_least(2))
    shift: float = 0.0
    scale: float = field(default=1.0, metadata=above(0))
    #: raise | zero, see rlkit.rewards.base
    on_error: OnError = OnError["raise"]
