"""A reward component: prefers short completions."""

from __future__ import annotations

from rlkit.rewards.base import PerSampleReward
from rlkit.types import Completion, PromptSample
from rlkit_example.config import BrevityConfig


class BrevityReward(PerSampleReward):
    """1 for completions up to ``max_chars`` characters, falling linearly to 0 at twice that."""

    Config = BrevityConfig

    def score(self, sample: PromptSample, completion: Completion) -> float:
        excess = max(0, len(completion.text) - self.config.max_chars)
        return max(0.0, 1.0 - excess / self.config.max_chars)
