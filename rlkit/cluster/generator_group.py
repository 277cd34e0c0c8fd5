"""The generator group: M Ray actors, each sampling from its own copy of the policy.

:class:`GeneratorWorker` hosts any registered generator (``generator=hf`` by default) on
a model loaded from the run's model config; the trainer replaces its weights after every
step. :class:`GeneratorGroup` is the trainer ranks' view of the group: it splits prompts
over the actors, pushes weights, and survives actors that die.

Weights travel through Ray's object store on the CPU: the main trainer rank puts the full
state dict there once per step and every actor reads that one copy (on one node, without
copying it again). The latest copy is also registered with a :class:`WeightStore` actor,
so that whichever trainer rank notices a restarted generator can send it the current
weights before giving it prompts again.

Each weight push carries a version (the proxy's count of pushes, so the trainer step the
weights belong to); actors return the version they sampled with, which is how staleness
is measured and bounded in asynchronous mode.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import ActorDiedError, RayActorError

from rlkit.cluster import nodes
from rlkit.cluster.placement import shards as contiguous_shards
from rlkit.types import Completion, Prompt, SamplingParams

#: Seconds between polls of a restarting actor, and the longest wait for one answer.
POLL_S = 0.2
WAIT_S = 2.0


class GeneratorWorker:
    """One generator actor: a configured generator on its own copy of the policy.

    ``offload`` (colocated on a GPU): the weights live on the CPU between calls, so the
    trainer rank that shares the device has its memory while it trains.
    """

    def __init__(self, model: Any, generator: dict, device: str, threads: int, offload: bool, cwd: str):
        import torch

        from rlkit.config import component_config
        from rlkit.models.loading import load_model, load_tokenizer

        if os.path.isdir(cwd):  # relative paths in the config mean what they mean for the driver
            os.chdir(cwd)
        torch.set_num_threads(threads)
        tokenizer = load_tokenizer(model)
        policy = load_model(model, "causal_lm", pad_token_id=tokenizer.pad_token_id).eval()
        self.device = torch.device(device)
        self.offload = offload and self.device.type == "cuda"
        policy.to("cpu" if self.offload else self.device)
        cls, config = component_config("generator", generator, "generators")
        self.generator = cls(config, policy, tokenizer)
        self.policy = policy
        #: Version of the weights held: -1 until the trainer's first push (the model files').
        self.version = -1

    def ready(self) -> int:
        """The version of the weights held (answers once the actor has started)."""
        return self.version

    def node(self) -> dict[str, Any]:
        return nodes.here()

    def load_weights(self, state_dict: Mapping[str, Any], version: int) -> int:
        if version > self.version:  # a restarted actor may get the same push twice
            self.generator.update_weights(state_dict)
            self.version = version
        return self.version

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams, seed: int) -> tuple[int, list[Completion]]:
        """``(version of the weights used, completions)``; ``seed`` makes the sample reproducible."""
        return self._sample(self.generator.generate, prompts, params, seed)

    def generate_tokens(self, prompts: Sequence[Sequence[int]], params: SamplingParams,
                        seed: int) -> tuple[int, list[Completion]]:
        """``generate`` for token-id prompts (multi-turn episodes: ``Generator.generate_tokens``)."""
        return self._sample(self.generator.generate_tokens, prompts, params, seed)

    def _sample(self, method: Any, prompts: Sequence[Any], params: SamplingParams,
                seed: int) -> tuple[int, list[Completion]]:
        import torch

        torch.manual_seed(seed)
        if self.offload:
            self.policy.to(self.device)
        try:
            return self.version, method(prompts, params)
        finally:
            if self.offload:
                self.policy.to("cpu")
                torch.cuda.empty_cache()


class WeightStore:
    """The latest weights pushed: ``(version, [object ref])`` (the list keeps Ray from
    resolving the reference when it is passed around)."""

    def __init__(self) -> None:
        self.latest: tuple[int, list[Any]] = (-1, [])

    def set(self, version: int, boxed: list[Any]) -> None:
        if version > self.latest[0]:
            self.latest = (version, boxed)

    def get(self) -> tuple[int, list[Any]]:
        return self.latest


class GeneratorLost(RuntimeError):
    """A generator actor died and could not be brought back."""


def restarts_exhausted(name: str, cause: Exception) -> GeneratorLost:
    return GeneratorLost(f"generator actor {name} died and will not be restarted "
                         f"(cluster.max_restarts exhausted): {cause}")


def node_lost(name: str, place: dict[str, Any], why: str) -> GeneratorLost:
    """One line naming the lost node (it ends up as ``status.json``'s error)."""
    return GeneratorLost(f"generator actor {name} was lost with Ray {nodes.describe(place)}, which left the cluster "
                         f"({why.strip().splitlines()[0]}), and no live node has the resources to restart it; "
                         "bring the node (or one like it) back and run the same command again to resume from "
                         "the last checkpoint")


@dataclass
class Shard:
    """One actor's share of a generate call, in flight."""

    actor: int
    #: Index of the shard's first prompt in the whole call.
    offset: int
    #: Prompts, or token-id prompts when ``token_ids`` (``Generator.generate_tokens``).
    prompts: list[Any]
    params: SamplingParams
    seed: int
    token_ids: bool = False
    future: Any = None


class GeneratorGroup:
    """Handles to the generator actors, looked up by name (so every trainer rank can hold them).

    ``placement_group``: the run's placement group (hex id), so that an actor whose node was
    lost and that no other node can host fails the run at once instead of after
    ``restart_timeout_s``; ``placement_log``: the run's placement log, to which restarts
    are appended (see :mod:`rlkit.cluster.nodes`).
    """

    def __init__(self, names: Sequence[str], namespace: str, store: str, restart_timeout_s: float,
                 placement_group: str = "", placement_log: str = "", run_id: str = ""):
        self.names = list(names)
        self.actors = [ray.get_actor(name, namespace=namespace) for name in names]
        self.store = ray.get_actor(store, namespace=namespace)
        self.restart_timeout_s = restart_timeout_s
        self.placement_group, self.placement_log, self.run_id = placement_group, placement_log, run_id
        #: Where each actor runs (``here()`` of the actor), updated when one comes back.
        self.places = ray.get([actor.node.remote() for actor in self.actors])
        #: Actors brought back after dying, over the run (on this trainer rank).
        self.restarts = 0
        self._loads: list[tuple[int, Any]] = []

    # ------------------------------------------------------------------ sampling

    def submit(self, prompts: Sequence[Prompt] | Sequence[Sequence[int]], params: SamplingParams,
               seeds: Sequence[int], token_ids: bool = False) -> list[Shard]:
        """Split ``prompts`` (``token_ids``: prompts as token ids) into contiguous shards, one
        per actor, and start them."""
        shards = [Shard(i, start, list(prompts[start:end]), params, seeds[i], token_ids)
                  for i, start, end in contiguous_shards(len(prompts), len(self.actors))]
        for shard in shards:
            self._start(shard)
        return shards

    def collect(self, shards: Sequence[Shard]) -> tuple[list[Completion], list[int]]:
        """All completions, ordered prompt by prompt, and each shard's weight version.

        A shard whose actor died is sampled again by the restarted actor, after it has
        been given the current weights.
        """
        completions: list[Completion] = []
        versions: list[int] = []
        for shard in shards:
            version, part = self._result(shard)
            for c in part:
                c.prompt_index += shard.offset
            completions += part
            versions.append(version)
        return completions, versions

    def _start(self, shard: Shard) -> None:
        actor = self.actors[shard.actor]
        method = actor.generate_tokens if shard.token_ids else actor.generate
        shard.future = method.remote(shard.prompts, shard.params, shard.seed)

    def _result(self, shard: Shard) -> tuple[int, list[Completion]]:
        while True:
            try:
                return ray.get(shard.future)
            except RayActorError as exc:
                self._recover(shard.actor, exc)
                self._start(shard)

    # ------------------------------------------------------------------ weights

    def push(self, state_dict: Mapping[str, Any], version: int, wait: bool) -> None:
        """Put ``state_dict`` in the object store once; every actor loads it.

        ``wait``: return once all have loaded it; otherwise the loads run behind the calls
        already queued on each actor (asynchronous rollouts) and are checked at the next push.
        """
        self.settle()
        ref = ray.put(dict(state_dict))
        ray.get(self.store.set.remote(version, [ref]))
        self._loads = [(i, actor.load_weights.remote(ref, version)) for i, actor in enumerate(self.actors)]
        if wait:
            self.settle()

    def settle(self) -> None:
        """Wait for the loads of the latest push; an actor that died meanwhile is brought back."""
        loads, self._loads = self._loads, []
        for i, future in loads:
            try:
                ray.get(future)
            except RayActorError as exc:
                self._recover(i, exc)

    def _recover(self, index: int, exc: RayActorError) -> None:
        """Wait for actor ``index`` to restart, then send it the latest weights."""
        name = self.names[index]
        if isinstance(exc, ActorDiedError):
            raise restarts_exhausted(name, exc) from exc
        deadline = time.monotonic() + self.restart_timeout_s
        actor = self.actors[index]
        while True:
            # Calls to an actor that Ray is still placing wait for it: poll with a timeout.
            answer = actor.ready.remote()
            done, _ = ray.wait([answer], timeout=WAIT_S)
            if done:
                try:
                    held = ray.get(answer)
                    break
                except ActorDiedError as died:
                    raise restarts_exhausted(name, died) from died
                except RayActorError:
                    pass
            lost = self._lost_node(index)
            if lost is not None:
                raise lost from exc
            if time.monotonic() > deadline:
                raise GeneratorLost(f"generator actor {name} did not come back within "
                                    f"cluster.restart_timeout_s={self.restart_timeout_s:g}") from exc
            time.sleep(POLL_S)
        version, boxed = ray.get(self.store.get.remote())
        if boxed and held < version:
            ray.get(actor.load_weights.remote(boxed[0], version))
        self.restarts += 1
        self._moved(index, ray.get(actor.node.remote()))
        print(f"generator actor {name} restarted on {nodes.describe(self.places[index])}; weights version "
              f"{version} re-sent, its prompts sampled again", flush=True)

    def _lost_node(self, index: int) -> GeneratorLost | None:
        """The error to end the run with when the actor's node is gone and no node can replace it."""
        why = nodes.death(self.places[index]["node_id"])
        if why is None or not self.placement_group or not nodes.infeasible(self.placement_group):
            return None
        return node_lost(self.names[index], self.places[index], why)

    def _moved(self, index: int, where: dict[str, Any]) -> None:
        """Record where a restarted actor now runs (once, though several ranks notice)."""
        if where["pid"] == self.places[index]["pid"] and where["node_id"] == self.places[index]["node_id"]:
            return
        self.places[index] = where
        if self.placement_log and not any(
            e["actor"] == self.names[index] and e["pid"] == where["pid"] and e["node_id"] == where["node_id"]
            for e in nodes.read(Path(self.placement_log))
        ):
            nodes.record(Path(self.placement_log), self.run_id, "restarted", self.names[index], where)
