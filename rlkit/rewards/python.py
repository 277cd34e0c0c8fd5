"""A reward computed by any Python function, named in the config as ``"module.sub:function"``."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from omegaconf import MISSING

from rlkit.rewards.base import PerSampleReward, Score
from rlkit.types import Completion, PromptSample

#: The signature of a reward function; a mapping result is reported as named parts.
RewardFunction = Callable[..., Score]


class CallableReward(PerSampleReward):
    """Calls ``function(sample, completion, **kwargs)`` for each completion.

    The function returns a score, or a mapping ``{part: score}`` whose sum is the score
    and whose entries are reported as parts. It is imported once, at construction; a
    malformed name, an import failure, a missing attribute or one that is not callable
    is an ``ImportError`` naming ``"module:function"`` and the cause.
    """

    @dataclass
    class Config(PerSampleReward.Config):
        #: ``"package.module:function"``
        function: str = MISSING
        kwargs: dict[str, Any] = field(default_factory=dict)

    config: Config

    def __init__(self, config: Config, function: RewardFunction | None = None):
        """``function``, when given, is called instead of importing ``config.function`` (the
        Python API passes a notebook's function this way)."""
        super().__init__(config)
        self._function = function if function is not None else load_function(config.function)
        self._kwargs = dict(config.kwargs)

    @property
    def name(self) -> str:
        return f"CallableReward({self.config.function})"

    def score(self, sample: PromptSample, completion: Completion) -> Score:
        return self._function(sample, completion, **self._kwargs)


def load_function(spec: str) -> RewardFunction:
    """The callable named by ``spec``, written ``"package.module:function"``."""
    module_name, sep, attribute = spec.partition(":")
    if not (sep and module_name and attribute):
        raise ImportError(f"reward function {spec!r}: expected 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the module's own import-time errors are reported the same way
        raise ImportError(
            f"reward function {spec!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    function = getattr(module, attribute, None)
    if function is None:
        raise ImportError(
            f"reward function {spec!r}: module {module_name!r} has no attribute {attribute!r}"
        )
    if not callable(function):
        raise ImportError(
            f"reward function {spec!r}: {type(function).__name__} object is not callable"
        )
    return function
