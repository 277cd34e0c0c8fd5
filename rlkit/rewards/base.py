"""The reward interface: (sample, completion) pairs in, one scalar each out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

from rlkit.types import Completion, PromptSample, RewardOutput


class Reward(ABC):
    """A batched reward.

    Implementations set ``Config`` to a dataclass (the typed schema of their config
    group entry) and are constructed as ``Reward(config)``.
    """

    Config: type

    @abstractmethod
    def __call__(self, samples: Sequence[PromptSample], completions: Sequence[Completion]) -> RewardOutput:
        """Score ``completions[i]``, a completion of ``samples[i]``."""
