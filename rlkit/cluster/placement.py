"""Where the actors go: one Ray placement group per run, reserved before any actor starts.

* ``split``: one bundle per trainer rank and one per generator, each sized by its own
  ``cluster.trainer`` / ``cluster.generator`` resources, so the two groups never compete.
* ``colocated``: one bundle per trainer rank holding the rank's devices; the rank and its
  generator both run in it and each asks for half of its GPUs, so Ray gives them the same
  device(s). They take turns: the trainer waits while its generators sample, and the
  generator offloads its weights while the trainer trains (see ``generator_group``).

Reserving everything first (gang scheduling) means a run either gets all its actors or
fails at once with what was missing, instead of starting half of them and waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlkit.cluster.config import ClusterConfig, WorkerResources

#: Seconds to wait for the reservation (an autoscaling cluster may add nodes meanwhile).
RESERVE_TIMEOUT_S = 600.0


def _merged(*parts: dict[str, float]) -> dict[str, float]:
    total: dict[str, float] = {}
    for part in parts:
        for name, amount in part.items():
            total[name] = total.get(name, 0.0) + amount
    return total


@dataclass
class Placement:
    """A reserved placement group, and which bundle and share each actor gets."""

    group: Any
    trainer_bundles: list[int]
    generator_bundles: list[int]
    trainer: WorkerResources
    generator: WorkerResources

    def options(self, kind: str, index: int) -> dict[str, Any]:
        """``ActorClass.options(...)`` arguments for trainer rank / generator ``index``."""
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        bundles, share = (self.trainer_bundles, self.trainer) if kind == "trainer" else (self.generator_bundles, self.generator)
        strategy = PlacementGroupSchedulingStrategy(self.group, placement_group_bundle_index=bundles[index])
        return {"num_cpus": share.cpus, "num_gpus": share.gpus, "resources": dict(share.resources or {}),
                "scheduling_strategy": strategy}

    def release(self) -> None:
        from ray.util.placement_group import remove_placement_group

        remove_placement_group(self.group)


def bundles(config: ClusterConfig, trainer_ranks: int) -> list[dict[str, float]]:
    """The placement group's bundles: trainer ranks' first (split), or one per rank (colocated)."""
    trainer, generator = config.trainer.ray_resources(), config.generator.ray_resources()
    if config.placement == "colocated":
        # The generator's GPUs are the rank's (validated to be 0 on their own).
        return [_merged(trainer, generator) for _ in range(trainer_ranks)]
    return [trainer] * trainer_ranks + [generator] * config.num_generators(trainer_ranks)


def totals(config: ClusterConfig, trainer_ranks: int) -> tuple[float, float]:
    """CPUs and GPUs the run reserves."""
    total = _merged(*bundles(config, trainer_ranks))
    return total.get("CPU", 0.0), total.get("GPU", 0.0)


def _check_each_fits(wanted: list[dict[str, float]], trainer_bundles: list[int], generator_bundles: list[int]) -> None:
    """Every bundle must fit on one node (the totals may fit while no single node does)."""
    import ray

    alive = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    for index, bundle in enumerate(wanted):
        if not any(all(node.get(name, 0) >= amount for name, amount in bundle.items()) for node in alive):
            actor = (f"trainer rank {trainer_bundles.index(index)}" if index in trainer_bundles
                     else f"generator {generator_bundles.index(index)}")
            offered = "; ".join(", ".join(f"{node.get(name, 0):g} {name}" for name in bundle) for node in alive)
            raise RuntimeError(f"cluster: no node of the Ray cluster can host {actor}, which needs "
                               f"{', '.join(f'{v:g} {k}' for k, v in bundle.items())} on one node; "
                               f"its nodes offer {offered}")


def reserve(config: ClusterConfig, trainer_ranks: int) -> Placement:
    """Reserve the run's resources on the connected Ray cluster (raises if it cannot)."""
    import ray
    from ray.util.placement_group import placement_group

    generators = config.num_generators(trainer_ranks)
    t, g = config.trainer, config.generator
    wanted = bundles(config, trainer_ranks)
    if config.placement == "colocated":
        trainer_bundles = generator_bundles = list(range(trainer_ranks))
        # Half of the bundle's GPUs each: Ray then hands both actors the same device(s).
        trainer_share = WorkerResources(t.cpus, t.gpus / 2, t.resources)
        generator_share = WorkerResources(g.cpus, t.gpus / 2, g.resources)
    else:
        trainer_bundles = list(range(trainer_ranks))
        generator_bundles = list(range(trainer_ranks, trainer_ranks + generators))
        trainer_share, generator_share = t, g
    if any(not b for b in wanted):
        raise ValueError("cluster.trainer / cluster.generator: every actor needs some CPUs or GPUs (all are 0)")

    needed = _merged(*wanted)
    available = ray.cluster_resources()
    missing = {name: amount for name, amount in needed.items() if amount > available.get(name, 0)}
    if missing:
        have = ", ".join(f"{available.get(name, 0):g} {name}" for name in missing)
        raise RuntimeError(
            f"cluster: the run needs {', '.join(f'{v:g} {k}' for k, v in needed.items())} ({trainer_ranks} trainer "
            f"ranks x cluster.trainer={t}, {generators} generators x cluster.generator={g}, "
            f"placement={config.placement}); the Ray cluster has {have}")
    _check_each_fits(wanted, trainer_bundles, generator_bundles)
    group = placement_group(wanted, strategy="PACK")
    ready, _ = ray.wait([group.ready()], timeout=RESERVE_TIMEOUT_S)
    if not ready:
        from ray.util.placement_group import remove_placement_group

        remove_placement_group(group)
        raise RuntimeError(f"cluster: could not reserve {wanted} within {RESERVE_TIMEOUT_S:.0f} s "
                           f"(available now: {ray.available_resources()})")
    return Placement(group, trainer_bundles, generator_bundles, trainer_share, generator_share)


def shards(count: int, actors: int) -> list[tuple[int, int, int]]:
    """``(actor, start, end)``: ``count`` items split into contiguous shards, one per actor in
    order, of sizes differing by at most one; actors left without items get no shard."""
    bounds = [count * i // actors for i in range(actors + 1)]
    return [(i, bounds[i], bounds[i + 1]) for i in range(actors) if bounds[i + 1] > bounds[i]]
