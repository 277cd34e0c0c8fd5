"""One run on Ray: reserve resources, start the generator and trainer groups, train, clean up.

``rlkit.launch.train`` hands a run with a ``cluster`` config to :func:`train_on_cluster`.
The trainer ranks then run ``rlkit.rank.train_rank``, with the cluster removed from their config and
the generator replaced by ``generator=ray`` (naming the generator actors), so the loop,
the algorithm and the backend are exactly those of a single-process run.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rlkit.backends.launch import RankFailed, record_failure
from rlkit.cluster.config import ClusterConfig
from rlkit.cluster.session import NAMESPACE, actor_env, ray_session, threads_for
from rlkit.outputs import RunOutputs

_log = logging.getLogger(__name__)


def check_async(config: ClusterConfig, algo_name: str, algo_cls: type, algo_config: Any) -> None:
    """Asynchronous rollouts are off-policy: the algorithm must correct for that."""
    if not config.async_rollouts:
        return
    problem = algo_cls.stale_rollouts_problem(algo_config)
    if problem is not None:
        raise ValueError(f"cluster.async_rollouts=true samples with weights up to cluster.max_staleness steps old, "
                         f"which algo={algo_name} cannot correct for: {problem}")


def check_episodes(config: ClusterConfig, generator_name: str, generator_cls: type) -> None:
    """Multi-turn episodes (``env=``) continue token-id prompts on the actors' generators, one
    turn after another: nothing can be sampled ahead of the environment's answers."""
    from rlkit.generators.base import Generator

    if generator_cls.generate_tokens is Generator.generate_tokens:
        raise ValueError(f"env= with cluster=...: the generator actors' generator={generator_name} cannot continue "
                         "token-id prompts (Generator.generate_tokens), which multi-turn episodes need; "
                         "use generator=hf")
    if config.async_rollouts:
        raise ValueError("cluster.async_rollouts=true with env=: an episode's next turn waits for the environment's "
                         "answer, so rollouts cannot be sampled ahead; leave cluster.async_rollouts=false")


def train_on_cluster(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """``train_rank(cfg, run_dir)`` with trainer ranks and generators as Ray actors; rank 0's result."""
    from rlkit.config import component_config, typed_run_config
    from rlkit.models.loading import resolve_path
    from rlkit.build import resolve_components

    run = typed_run_config(cfg)
    cluster = run.cluster
    parts = resolve_components(run)
    ranks = max(1, getattr(parts["backend"].config, "nproc_per_node", 1))
    cluster.validate(ranks)
    check_async(cluster, cfg.algo.name, parts["algo"].cls, parts["algo"].config)
    generator_node = OmegaConf.to_container(cfg.generator, resolve=True) if cfg.get("generator") else {"name": "hf"}
    if generator_node.get("name") == "ray":
        raise ValueError("generator=ray is what cluster runs use for their trainer ranks; choose the generator "
                         "the actors host instead (e.g. generator=hf)")
    generator_cls, _ = component_config("generator", generator_node, "generators")  # fail here, not in M actors
    if "env" in parts:
        check_episodes(cluster, generator_node["name"], generator_cls)
    resolve_path(run.model)  # the built-in model's files, written once before any actor reads them
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)

    from rlkit.cluster.placement import reserve, totals

    cpus, gpus = totals(cluster, ranks)
    if "env" in parts:  # each trainer rank's environment actors (env.num_workers), outside the placement group
        from rlkit.environments.workers import WORKER_CPUS

        cpus += ranks * parts["env"].config.num_workers * WORKER_CPUS
    with ray_session(cluster, cpus, gpus):
        import ray

        from rlkit.cluster.trainer_group import run_trainers

        placement = reserve(cluster, ranks)
        actors = Actors(uuid.uuid4().hex[:8])
        try:
            actors.start_generators(cluster, placement, ranks, run.model, generator_node)
            actors.start_trainers(placement, ranks)
            # Both groups start (import torch, load models) side by side; a model that does
            # not load fails here, before any training.
            ray.get([actor.ready.remote() for actor in actors.generators + actors.trainers])
            _log.info("cluster: %d trainer rank(s), %d generator(s), placement=%s%s", ranks, len(actors.generators),
                      cluster.placement, ", asynchronous rollouts" if cluster.async_rollouts else "")
            placement_log = RunOutputs(run_dir).placement
            actors.record_placement(placement_log)
            container = OmegaConf.to_container(cfg, resolve=True)
            container["cluster"] = None
            container["generator"] = {
                "name": "ray", "actors": actors.generator_names, "store": actors.store_name, "namespace": NAMESPACE,
                "max_staleness": cluster.max_staleness if cluster.async_rollouts else 0,
                "restart_timeout_s": cluster.restart_timeout_s, "placement_group": placement.group.id.hex(),
                "placement_log": str(placement_log), "run_id": actors.run_id,
            }
            return run_trainers(actors.trainers, container, run_dir)
        except RankFailed as exc:
            record_failure(run_dir, exc)
            raise
        finally:
            actors.stop()
            placement.release()


@dataclass
class Actors:
    """The actors of one run, named ``<run_id>-...`` in rlkit's namespace."""

    run_id: str
    generators: list[Any] = field(default_factory=list)
    trainers: list[Any] = field(default_factory=list)
    store: Any = None

    @property
    def generator_names(self) -> list[str]:
        return [f"{self.run_id}-generator-{i}" for i in range(len(self.generators))]

    @property
    def store_name(self) -> str:
        return f"{self.run_id}-weights"

    def start_generators(self, cluster: ClusterConfig, placement: Any, ranks: int, model: Any,
                         generator_node: dict) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from rlkit.cluster.generator_group import GeneratorWorker, WeightStore

        # On the driver's node: it lives as long as the run does, whichever other node is lost.
        driver_node = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.store = ray.remote(WeightStore).options(name=self.store_name, namespace=NAMESPACE, num_cpus=0,
                                                     scheduling_strategy=driver_node).remote()
        share = placement.generator
        device = "cuda" if share.gpus > 0 else "cpu"
        offload = cluster.placement == "colocated"
        for i in range(cluster.num_generators(ranks)):
            self.generators.append(ray.remote(GeneratorWorker).options(
                name=f"{self.run_id}-generator-{i}", namespace=NAMESPACE, max_restarts=cluster.max_restarts,
                max_task_retries=0, runtime_env={"env_vars": actor_env(share.cpus)}, **placement.options("generator", i),
            ).remote(model, generator_node, device, threads_for(share.cpus), offload, os.getcwd()))

    def start_trainers(self, placement: Any, ranks: int) -> None:
        import ray

        from rlkit.cluster.trainer_group import TrainerWorker

        share = placement.trainer
        for rank in range(ranks):
            self.trainers.append(ray.remote(TrainerWorker).options(
                name=f"{self.run_id}-trainer-{rank}", namespace=NAMESPACE, max_restarts=0,
                runtime_env={"env_vars": actor_env(share.cpus)}, **placement.options("trainer", rank),
            ).remote(threads_for(share.cpus), os.getcwd()))

    def record_placement(self, log: Path) -> None:
        """Append where every actor runs to the run's placement log, and log it."""
        import ray

        from rlkit.cluster import nodes

        names = [f"{self.run_id}-trainer-{rank}" for rank in range(len(self.trainers))] + self.generator_names
        places = ray.get([actor.node.remote() for actor in self.trainers + self.generators])
        for name, where in zip(names, places):
            nodes.record(log, self.run_id, "started", name, where)
            _log.info("cluster: %s on %s", name, nodes.describe(where))

    def stop(self) -> None:
        import ray

        for actor in [*self.trainers, *self.generators, self.store]:
            if actor is not None:
                ray.kill(actor, no_restart=True)
