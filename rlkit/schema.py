"""Building blocks of the components' ``Config`` dataclasses, the schemas Hydra checks.

* :class:`Choice` -- a str-valued Enum for a field with a fixed set of values. OmegaConf
  rejects any other value while the config is composed and lists the choices; members
  compare (and hash) equal to their strings, so the pure functions in
  ``rlkit.algorithms.losses`` accept them as they accept plain strings.
* :func:`at_least`, :func:`above`, :func:`between` -- the range of a number, declared on
  its field (``group_size: int = field(default=8, metadata=at_least(1))``) and checked by
  :func:`check_ranges`, which ``rlkit.config`` runs on every composed config before a run
  directory or a sweep job exists.

Imports nothing from rlkit and nothing heavy: every component's Config module uses it,
and composing a config (``--help``, a sweep's submission) must not import torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from typing import Any

#: The key of a field's range in ``dataclasses.field(metadata=...)``.
RANGE = "rlkit.range"


class Choice(str, Enum):
    """A choice among named strings; define members as ``token_mean = "token_mean"``
    (OmegaConf matches the member *name*, so names and values must be the same)."""

    def __str__(self) -> str:
        return self.value


class Dtype(Choice):
    """Floating-point formats of weights and computation (model, backends, reward models)."""

    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


@dataclass(frozen=True)
class Range:
    """``low <= x`` (``low < x`` when ``strict``), and ``x <= high`` when ``high`` is set."""

    low: float
    high: float | None = None
    strict: bool = False

    def holds(self, value: float) -> bool:
        if isinstance(value, float) and math.isnan(value):
            return False
        above_low = value > self.low if self.strict else value >= self.low
        return above_low and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        if self.high is not None:
            return f"between {self.low:g} and {self.high:g}"
        return f"{'>' if self.strict else '>='} {self.low:g}"


def at_least(low: float) -> dict[str, Range]:
    """Field metadata: the value must be ``>= low`` (null allowed where the type is Optional)."""
    return {RANGE: Range(low)}


def above(low: float) -> dict[str, Range]:
    """Field metadata: the value must be ``> low``."""
    return {RANGE: Range(low, strict=True)}


def between(low: float, high: float) -> dict[str, Range]:
    """Field metadata: ``low <= value <= high``."""
    return {RANGE: Range(low, high)}


class OutOfRange(ValueError):
    """A value outside its field's declared range; ``key`` is its dotted path."""

    def __init__(self, key: str, value: Any, allowed: Range):
        super().__init__(f"{key} must be {allowed}, got {value!r}")
        self.key = key


def check_ranges(config: Any, prefix: str = "") -> None:
    """Raise :class:`OutOfRange` for the first field of ``config`` (a dataclass instance,
    nested dataclasses and lists of them included) outside its declared range."""
    for f in fields(config):
        value = getattr(config, f.name)
        key = f"{prefix}.{f.name}" if prefix else f.name
        allowed = f.metadata.get(RANGE)
        if allowed is not None and isinstance(value, (int, float)) and not allowed.holds(value):
            raise OutOfRange(key, value, allowed)
        if is_dataclass(value):
            check_ranges(value, key)
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                if is_dataclass(item):
                    check_ranges(item, f"{key}[{index}]")
