"""Environment steps in Ray actors (``env.num_workers > 0``), for environments whose steps are slow.

:func:`with_workers` wraps a built environment in :class:`EnvironmentWorkers`, which the
rollout uses like the environment itself: each round's ``start_all`` and ``step_all`` are
split into contiguous shards, one per actor, that run side by side, and the results come
back in the episodes' order. Every actor holds its own environment, built from the same
class and typed config (so both must be importable and picklable there); an episode's
state travels with its step and comes back updated, so any actor can take any episode.

Failures are the run's to survive, as in one process: an environment that raises inside an
actor is handled there by ``safe_step`` (``env.on_error``), and an actor that dies turns
its shard's turns into tool errors the same way; the round ends once Ray has restarted it.

The actors join the Ray cluster this process is connected to (a trainer rank under
``cluster=...`` is), or a local Ray started for them (:func:`rlkit.cluster.session.ray_session`)
and stopped by :meth:`EnvironmentWorkers.close`. Each asks for one CPU.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Sequence

from rlkit.cluster.config import ClusterConfig
from rlkit.cluster.placement import shards as contiguous_shards
from rlkit.cluster.session import actor_env, ray_session
from rlkit.environments.base import Environment, EnvironmentConfig, Turn
from rlkit.types import PromptSample

#: CPUs each environment actor asks Ray for.
WORKER_CPUS = 1.0
#: Seconds the actors may wait for free CPUs before the run fails.
START_TIMEOUT_S = 60.0
#: Seconds the actors' environments have to close before the actors are stopped.
CLOSE_TIMEOUT_S = 10.0


def with_workers(environment: Environment) -> Environment:
    """``environment`` in ``env.num_workers`` Ray actors, or itself when that is 0."""
    return EnvironmentWorkers(environment) if environment.config.num_workers else environment


class EnvironmentWorker:
    """One actor: an environment built from its class and config, stepping a shard of episodes."""

    def __init__(self, cls: type, config: EnvironmentConfig):
        self.environment = cls(config)

    def ready(self) -> bool:
        return True

    def start_all(self, samples: Sequence[PromptSample]) -> list[Any]:
        return self.environment.start_all(samples)

    def step_all(self, states: list[Any], assistant_texts: Sequence[str]) -> tuple[list[Turn], list[Any]]:
        """The turns, and the states as the steps left them (they live in this process)."""
        return self.environment.step_all(states, assistant_texts), states

    def close(self) -> None:
        self.environment.close()


@dataclass
class RemoteState:
    """An episode's state on the driver's side: sent with each step, replaced by what comes back."""

    value: Any


class EnvironmentWorkers(Environment):
    """``environment``'s episodes started and stepped by ``env.num_workers`` Ray actors."""

    def __init__(self, environment: Environment):
        super().__init__(environment.config)
        self.local = environment
        self._session = ExitStack()
        try:
            self.actors = self._start_actors(type(environment), environment.config)
        except BaseException:
            self._session.close()
            raise

    @property
    def name(self) -> str:
        return self.local.name

    def stop_strings(self) -> tuple[str, ...]:
        return self.local.stop_strings()

    def _start_actors(self, cls: type, config: EnvironmentConfig) -> list[Any]:
        count = config.num_workers
        self._session.enter_context(ray_session(ClusterConfig(), count * WORKER_CPUS, 0))
        import ray

        total = ray.cluster_resources().get("CPU", 0.0)
        if total < count * WORKER_CPUS:
            raise RuntimeError(f"env.num_workers={count}: each environment actor needs {WORKER_CPUS:g} CPU and the "
                               f"Ray cluster has {total:g}; lower env.num_workers or give Ray more CPUs")
        worker = ray.remote(EnvironmentWorker).options(
            num_cpus=WORKER_CPUS, max_restarts=-1, max_task_retries=0,
            runtime_env={"env_vars": actor_env(WORKER_CPUS)})
        actors = [worker.remote(cls, config) for _ in range(count)]
        # CPUs other actors are letting go of come free in a moment; CPUs the run holds never do.
        started, waiting = ray.wait([actor.ready.remote() for actor in actors], num_returns=count,
                                    timeout=START_TIMEOUT_S)
        if waiting:
            for actor in actors:
                ray.kill(actor, no_restart=True)
            raise RuntimeError(f"env.num_workers={count}: {len(waiting)} environment actor(s) found no free CPU "
                               f"within {START_TIMEOUT_S:g} s (Ray has {ray.available_resources().get('CPU', 0.0):g} "
                               "free); lower env.num_workers or give Ray more CPUs")
        ray.get(started)  # an environment that cannot be built in an actor fails here, before any episode
        return actors

    def _shards(self, count: int) -> list[tuple[int, int, int]]:
        """``(actor, start, end)`` of contiguous shards of ``count`` episodes, none empty."""
        return contiguous_shards(count, len(self.actors))

    def start_all(self, samples: Sequence[PromptSample]) -> list[Any]:
        import ray

        futures = [self.actors[i].start_all.remote(list(samples[a:b])) for i, a, b in self._shards(len(samples))]
        return [RemoteState(state) for part in ray.get(futures) for state in part]

    def step_all(self, states: Sequence[RemoteState], assistant_texts: Sequence[str]) -> list[Turn]:
        import ray
        from ray.exceptions import RayActorError

        shards = self._shards(len(states))
        futures = [self.actors[i].step_all.remote([s.value for s in states[a:b]], list(assistant_texts[a:b]))
                   for i, a, b in shards]
        turns: list[Turn] = []
        for (i, a, b), future in zip(shards, futures):
            try:
                part, updated = ray.get(future)
            except RayActorError as exc:  # the actor died: its episodes' turns failed
                cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                turns += [self.error_turn(f"error: {self.name}'s actor {i} died: {cause}") for _ in range(a, b)]
                self._await_restart(i)
                continue
            for state, value in zip(states[a:b], updated):
                state.value = value
            turns += part
        return turns

    def _await_restart(self, index: int) -> None:
        """Return once Ray has brought actor ``index`` back, so the next round's calls reach it."""
        import ray
        from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                ray.get(self.actors[index].ready.remote(), timeout=max(0.1, deadline - time.monotonic()))
                return
            except ActorDiedError as exc:  # Ray will not restart it (e.g. its node is gone)
                raise RuntimeError(f"{self.name}'s environment actor {index} died for good: {exc}") from exc
            except (RayActorError, GetTimeoutError) as exc:  # still restarting, or a call from before
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name}'s environment actor {index} died and did not come back within "
                                       f"{START_TIMEOUT_S:g} s") from exc
                time.sleep(0.1)

    def step(self, state: RemoteState, assistant_text: str) -> Turn:
        return self.step_all([state], [assistant_text])[0]

    def start(self, sample: PromptSample) -> RemoteState:
        return self.start_all([sample])[0]

    def close(self) -> None:
        """Stop the actors (and the local Ray started for them)."""
        import ray

        try:  # each actor's environment releases what it holds (processes, sandboxes)
            ray.get([actor.close.remote() for actor in self.actors], timeout=CLOSE_TIMEOUT_S)
        except Exception:  # an actor that died or hangs is stopped below all the same
            pass
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
        self._session.close()
        self.local.close()
