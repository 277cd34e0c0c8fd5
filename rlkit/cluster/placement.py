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


def _bundle(cpus: float, gpus: float) -> dict[str, float]:
    return {k: v for k, v in (("CPU", cpus), ("GPU", gpus)) if v > 0}


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
        return {"num_cpus": share.cpus, "num_gpus": share.gpus, "scheduling_strategy": strategy}

    def release(self) -> None:
        from ray.util.placement_group import remove_placement_group

        remove_placement_group(self.group)


def totals(config: ClusterConfig, trainer_ranks: int) -> tuple[float, float]:
    """CPUs and GPUs the run reserves."""
    generators = config.num_generators(trainer_ranks)
    cpus = trainer_ranks * config.trainer.cpus + generators * config.generator.cpus
    if config.placement == "colocated":
        return cpus, trainer_ranks * config.trainer.gpus
    return cpus, trainer_ranks * config.trainer.gpus + generators * config.generator.gpus


def reserve(config: ClusterConfig, trainer_ranks: int) -> Placement:
    """Reserve the run's resources on the connected Ray cluster (raises if it cannot)."""
    import ray
    from ray.util.placement_group import placement_group

    generators = config.num_generators(trainer_ranks)
    t, g = config.trainer, config.generator
    if config.placement == "colocated":
        bundles = [_bundle(t.cpus + g.cpus, t.gpus) for _ in range(trainer_ranks)]
        trainer_bundles = generator_bundles = list(range(trainer_ranks))
        # Half of the bundle's GPUs each: Ray then hands both actors the same device(s).
        trainer_share = WorkerResources(t.cpus, t.gpus / 2)
        generator_share = WorkerResources(g.cpus, t.gpus / 2)
    else:
        bundles = [_bundle(t.cpus, t.gpus) for _ in range(trainer_ranks)]
        bundles += [_bundle(g.cpus, g.gpus) for _ in range(generators)]
        trainer_bundles = list(range(trainer_ranks))
        generator_bundles = list(range(trainer_ranks, trainer_ranks + generators))
        trainer_share, generator_share = t, g
    if any(not b for b in bundles):
        raise ValueError("cluster.trainer / cluster.generator: every actor needs some CPUs or GPUs (all are 0)")

    cpus, gpus = totals(config, trainer_ranks)
    available = ray.cluster_resources()
    if cpus > available.get("CPU", 0) or gpus > available.get("GPU", 0):
        raise RuntimeError(
            f"cluster: the run needs {cpus:g} CPUs and {gpus:g} GPUs ({trainer_ranks} trainer ranks x "
            f"cluster.trainer={t}, {generators} generators x cluster.generator={g}, placement={config.placement}); "
            f"the Ray cluster has {available.get('CPU', 0):g} CPUs and {available.get('GPU', 0):g} GPUs")
    group = placement_group(bundles, strategy="PACK")
    ready, _ = ray.wait([group.ready()], timeout=RESERVE_TIMEOUT_S)
    if not ready:
        from ray.util.placement_group import remove_placement_group

        remove_placement_group(group)
        raise RuntimeError(f"cluster: could not reserve {bundles} within {RESERVE_TIMEOUT_S:.0f} s "
                           f"(available now: {ray.available_resources()})")
    return Placement(group, trainer_bundles, generator_bundles, trainer_share, generator_share)
