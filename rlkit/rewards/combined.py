"""A weighted sum of other rewards, each reported as a named part."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from omegaconf import MISSING

from rlkit.rewards.base import Reward
from rlkit.types import Completion, PromptSample, RewardOutput

#: Builds one child reward from its config node: ``{"name": <registry name>, **fields}``.
BuildChild = Callable[[dict[str, Any]], Reward]


class CombinedReward(Reward):
    """``scores = sum(weight * child scores)`` over the child rewards in ``config.rewards``.

    Each entry of ``config.rewards`` is a mapping ``{"name": ..., "weight": 1.0,
    "label": name, **fields}``: ``name`` is the child's registry name (e.g. ``"math"``),
    ``fields`` its own config, ``label`` the name its part is logged under (set it when
    two children share a registry name).

    Construction: ``CombinedReward(config, build_child=build)``. The framework passes
    ``build``, which receives each entry without ``weight`` and ``label`` and returns the
    built child, resolving ``name`` through the reward registry and ``fields`` through
    that reward's ``Config``. Children are built in order, at construction.

    Output: ``parts[label]`` holds each child's unweighted scores, a child's own parts
    appear as ``parts[f"{label}/{part}"]`` and ``failures`` is the children's total.
    Errors are each child's own: a child raises or scores 0 as its ``on_error`` says.
    """

    @dataclass
    class Config:
        rewards: list[Any] = MISSING

    def __init__(self, config: Config, *, build_child: BuildChild):
        if config.rewards in ([], MISSING):
            raise ValueError("CombinedReward needs at least one entry in rewards")
        self.config = config
        self.children: list[tuple[str, float, Reward]] = []
        for index, entry in enumerate(config.rewards):
            label, weight, fields = _parse_entry(index, entry)
            if label in (child_label for child_label, _, _ in self.children):
                raise ValueError(
                    f"CombinedReward: rewards[{index}]: label {label!r} is used twice; set 'label'"
                )
            self.children.append((label, weight, build_child(fields)))

    def __call__(
        self, samples: Sequence[PromptSample], completions: Sequence[Completion]
    ) -> RewardOutput:
        scores = [0.0] * len(completions)
        parts: dict[str, list[float]] = {}
        failures = 0
        for label, weight, child in self.children:
            out = child(samples, completions)
            if len(out.scores) != len(completions):
                raise ValueError(
                    f"CombinedReward: {label!r} returned {len(out.scores)} scores "
                    f"for {len(completions)} completions"
                )
            scores = [total + weight * score for total, score in zip(scores, out.scores)]
            parts[label] = list(out.scores)
            parts.update({f"{label}/{name}": values for name, values in out.parts.items()})
            failures += out.failures
        return RewardOutput(scores=scores, parts=parts, failures=failures)

    def is_correct(self, sample: PromptSample, completion: Completion) -> bool | None:
        """The first verdict of a child that gives one."""
        for _, _, child in self.children:
            verdict = child.is_correct(sample, completion)
            if verdict is not None:
                return verdict
        return None

    @property
    def judges_correctness(self) -> bool:
        return any(child.judges_correctness for _, _, child in self.children)


def _parse_entry(index: int, entry: Any) -> tuple[str, float, dict[str, Any]]:
    """The label, weight and child config node of ``config.rewards[index]``."""
    where = f"CombinedReward: rewards[{index}]"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected a mapping with a 'name', got {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: needs 'name', the registry name of a reward")
    weight = entry.get("weight", 1.0)
    if (
        isinstance(weight, bool)
        or not isinstance(weight, (int, float))
        or not math.isfinite(weight)
    ):
        raise ValueError(f"{where} ({name}): weight must be a finite number, got {weight!r}")
    label = entry.get("label", name)
    fields = {key: value for key, value in entry.items() if key not in ("weight", "label")}
    return str(label), float(weight), fields
