"""The reward interface: (sample, completion) pairs in, one scalar each out.

Most rewards score one completion at a time; they subclass ``PerSampleReward`` and
implement ``score``. The base class owns the batching and the one error-handling policy
every reward shares (``on_error`` in its config):

* ``"raise"`` (default): the first failing sample raises ``RewardError``, whose message
  names the reward, the sample's index and a short preview of its prompt and completion.
* ``"zero"``: a failing sample scores 0 (and 0 in every part), ``RewardOutput.failures``
  counts it, and one warning per batch reports how many failed and the first error.
"""

from __future__ import annotations

import logging
import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Mapping, Sequence, Union

from rlkit.types import Completion, PromptSample, RewardOutput

_log = logging.getLogger(__name__)

ON_ERROR = ("raise", "zero")

#: What ``PerSampleReward.score`` returns: a score, or named parts whose sum is the score.
Score = Union[float, Mapping[str, float]]


class Reward(ABC):
    """A batched reward.

    Implementations set ``Config`` to a dataclass (the typed schema of their config
    group entry) and are constructed as ``Reward(config)``.
    """

    Config: type

    @abstractmethod
    def __call__(
        self, samples: Sequence[PromptSample], completions: Sequence[Completion]
    ) -> RewardOutput:
        """Score ``completions[i]``, a completion of ``samples[i]``."""


class RewardError(RuntimeError):
    """A reward raised on one sample; the original exception is ``__cause__``."""

    def __init__(
        self,
        reward: str,
        index: int,
        sample: PromptSample,
        completion: Completion,
        cause: BaseException,
    ):
        self.reward, self.index = reward, index
        super().__init__(
            f"reward {reward} failed on sample {index} "
            f"(prompt {_preview(_prompt_text(sample))}, completion {_preview(completion.text)}): "
            f"{type(cause).__name__}: {cause}"
        )


class PerSampleReward(Reward):
    """A reward computed independently for each (sample, completion) pair.

    Subclasses derive their ``Config`` from ``PerSampleReward.Config`` (which adds
    ``on_error``), call ``super().__init__(config)`` and implement ``score``.
    """

    @dataclass
    class Config:
        on_error: str = "raise"  # "raise" | "zero", see the module docstring

    def __init__(self, config: PerSampleReward.Config):
        self.config = config
        if config.on_error not in ON_ERROR:
            raise ValueError(
                f"{self.name}: on_error must be one of {ON_ERROR}, got {config.on_error!r}"
            )

    @property
    def name(self) -> str:
        """How errors and warnings refer to this reward."""
        return type(self).__name__

    @abstractmethod
    def score(self, sample: PromptSample, completion: Completion) -> Score:
        """The score of one completion, or a mapping of named parts that sum to it."""

    def __call__(
        self, samples: Sequence[PromptSample], completions: Sequence[Completion]
    ) -> RewardOutput:
        """Score each pair; parts are reported when ``score`` returns mappings.

        A part missing from one sample's mapping counts 0 for that sample.
        """
        if len(samples) != len(completions):
            raise ValueError(
                f"{self.name}: {len(samples)} samples but {len(completions)} completions"
            )
        scores: list[float] = []
        rows: list[dict[str, float]] = []
        errors: list[RewardError] = []
        for index, (sample, completion) in enumerate(zip(samples, completions)):
            try:
                score, parts = _checked(self.score(sample, completion))
            except Exception as exc:  # any failure of the scoring code is handled by on_error
                error = RewardError(self.name, index, sample, completion, exc)
                if self.config.on_error == "raise":
                    raise error from exc
                errors.append(error)
                score, parts = 0.0, {}
            scores.append(score)
            rows.append(parts)
        if errors:
            _log.warning(
                "%s: %d of %d samples failed and scored 0; first: %s",
                self.name,
                len(errors),
                len(samples),
                errors[0],
            )
        names = dict.fromkeys(name for row in rows for name in row)
        return RewardOutput(
            scores=scores,
            parts={name: [row.get(name, 0.0) for row in rows] for name in names},
            failures=len(errors),
        )


def _checked(value: Score) -> tuple[float, dict[str, float]]:
    """The score and named parts of a ``score`` result, validated."""
    if isinstance(value, Mapping):
        parts = {}
        for name, part in value.items():
            if not isinstance(name, str):
                raise TypeError(f"part names must be strings, got {name!r}")
            parts[name] = _finite(part)
        return sum(parts.values()), parts
    return _finite(value), {}


def _finite(value: object) -> float:
    if not isinstance(value, numbers.Real):
        raise TypeError(f"scores must be real numbers, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"scores must be finite, got {value}")
    return float(value)


def _prompt_text(sample: PromptSample) -> str:
    if isinstance(sample.prompt, str):
        return sample.prompt
    return sample.prompt[-1].content if sample.prompt else ""


def _preview(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
