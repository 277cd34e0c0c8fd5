"""A format reward: a fixed score for completions whose text matches a regular expression."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import reduce

from omegaconf import MISSING

from rlkit.rewards.base import PerSampleReward
from rlkit.schema import Choice
from rlkit.types import Completion, PromptSample


class MatchMode(Choice):
    #: a match anywhere
    search = "search"
    #: the whole text
    fullmatch = "fullmatch"


MODES = tuple(MatchMode)


class FormatReward(PerSampleReward):
    """``score`` when ``pattern`` matches the completion text, else 0.

    ``mode`` "search" accepts a match anywhere; "fullmatch" requires the whole text to
    match. ``flags`` are names of ``re`` flags, e.g. ``["DOTALL", "IGNORECASE"]``. The
    pattern is compiled once; a bad pattern, mode or flag is a ``ValueError`` at
    construction.
    """

    @dataclass
    class Config(PerSampleReward.Config):
        pattern: str = MISSING
        score: float = 1.0
        mode: MatchMode = MatchMode.search
        flags: list[str] = field(default_factory=list)

    config: Config

    def __init__(self, config: Config):
        super().__init__(config)
        if config.pattern in ("", MISSING):
            raise ValueError("FormatReward needs a pattern")
        if config.mode not in MODES:
            raise ValueError(f"FormatReward: mode must be one of {MODES}, got {config.mode!r}")
        unknown = [flag for flag in config.flags if flag not in re.RegexFlag.__members__]
        if unknown:
            known = sorted(re.RegexFlag.__members__)
            raise ValueError(f"FormatReward: unknown regex flags {unknown}; known: {known}")
        flags = reduce(lambda acc, name: acc | re.RegexFlag[name], config.flags, re.RegexFlag(0))
        try:
            regex = re.compile(config.pattern, flags)
        except re.error as exc:
            raise ValueError(f"FormatReward: invalid pattern {config.pattern!r}: {exc}") from exc
        self._match = regex.search if config.mode == "search" else regex.fullmatch

    def score(self, sample: PromptSample, completion: Completion) -> float:
        return self.config.score if self._match(completion.text) else 0.0
