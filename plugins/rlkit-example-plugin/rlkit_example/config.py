"""The plugin's component schemas, in a module that does not import torch.

The entry points name these classes, so Hydra checks ``reward=brevity reward.max_chars=8``
while composing without importing the components; ``component`` names the class a run builds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rlkit.algorithms.config import PreferenceConfig
from rlkit.rewards.base import PerSampleReward
from rlkit.schema import at_least


@dataclass
class BrevityConfig(PerSampleReward.Config):
    component: ClassVar[str] = "rlkit_example.brevity:BrevityReward"

    #: Full score up to this many characters, falling linearly to 0 at twice as many.
    max_chars: int = field(default=32, metadata=at_least(1))


@dataclass
class MultiplicationConfig:
    component: ClassVar[str] = "rlkit_example.multiplication:MultiplicationTask"

    digits: int = field(default=1, metadata=at_least(1))
    train_size: int = field(default=1000, metadata=at_least(1))
    eval_size: int = field(default=50, metadata=at_least(1))
    seed: int = 0


@dataclass
class SimPOConfig(PreferenceConfig):
    component: ClassVar[str] = "rlkit_example.simpo:SimPO"

    beta: float = 2.0
    gamma: float = 0.5
    average_logprobs: bool = True
