"""Composed config -> components: each configured name resolved through its registry and
checked against its ``Config`` before anything heavy (models, data) is built.

    run = typed_run_config(cfg)
    parts = resolve_components(run)          # {"algo": Resolved, "data": ..., "loggers": {...}}
    dataset = parts["data"].build()          # Component(config, *args)

Nothing here starts processes or trains; :mod:`rlkit.launch` decides where the ranks run
and :mod:`rlkit.rank` builds one rank's components with these functions.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, open_dict

from rlkit.config import COMPONENT_GROUPS, RunConfig, component_config


@dataclass
class Resolved:
    """A component class with its typed config."""

    cls: type
    config: Any

    def build(self, *args, **kwargs):
        return self.cls(self.config, *args, **kwargs)


def resolve_components(run: RunConfig) -> dict[str, Any]:
    """Resolve and validate every configured component (``loggers`` maps name -> Resolved)."""
    resolved: dict[str, Any] = {}
    for group, kind in COMPONENT_GROUPS.items():
        node = getattr(run, group)
        if node:
            resolved[group] = Resolved(*component_config(group, node, kind))
    resolved["loggers"] = {
        name: Resolved(*component_config(f"logger.{name}", node or {}, "loggers", name=name))
        for name, node in run.logger.items()
    }
    return resolved


def generator_spec(parts: dict[str, Any]) -> Resolved:
    """The configured generator, or the in-process ``hf`` one."""
    return parts.get("generator") or Resolved(*component_config("generator", {"name": "hf"}, "generators"))


def build_reward(resolved: Resolved):
    """Build a reward, resolving the children of a combined reward through the registry."""
    from rlkit.rewards.combined import CombinedReward

    if issubclass(resolved.cls, CombinedReward):
        return resolved.build(build_child=lambda node: build_reward(Resolved(*component_config("reward", node, "rewards"))))
    return resolved.build()


def build_environment(resolved: Resolved):
    """Build an environment, in ``env.num_workers`` Ray actors when that is > 0
    (:mod:`rlkit.environments.workers`); the caller closes it."""
    from rlkit.environments.workers import with_workers

    return with_workers(resolved.build())


def build_judge(reward):
    """What decides whether a completion is correct (accuracy, pass@k): ``reward`` when it
    gives verdicts (``Reward.is_correct``), else the ``math`` reward, which checks the
    final answer against the sample's reference answer."""
    if reward is not None and reward.judges_correctness:
        return reward
    return Resolved(*component_config("reward", {"name": "math"}, "rewards")).build()


def select_backend(cfg: DictConfig, resolved: Resolved, run: RunConfig) -> tuple[DictConfig, Resolved]:
    """``backend=auto`` (a backend class with ``select``) -> the backend it chooses; the
    returned config names that backend, so launched ranks and loggers see the choice."""
    if not hasattr(resolved.cls, "select"):
        return cfg, resolved
    choice = resolved.cls.select(resolved.config, run.model)
    node = {"name": choice.name, **choice.config}
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.backend = node
    return cfg, Resolved(*component_config("backend", node, "backends"))
