"""A reward component: prefers short completions."""

from __future__ import annotations

from dataclasses import dataclass

from rlkit.rewards.base import PerSampleReward
from rlkit.types import Completion, PromptSample


class BrevityReward(PerSampleReward):
    """1 for completions up to ``max_chars`` characters, falling linearly to 0 at twice that."""

    @dataclass
    class Config(PerSampleReward.Config):
        max_chars: int = 32

    def score(self, sample: PromptSample, completion: Completion) -> float:
        excess = max(0, len(completion.text) - self.config.max_chars)
        return max(0.0, 1.0 - excess / self.config.max_chars)
