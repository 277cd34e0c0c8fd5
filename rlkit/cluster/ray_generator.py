"""The generator component trainer ranks use under ``cluster=...``: the Ray generator group
behind the ordinary :class:`~rlkit.generators.base.Generator` interface.

The loop and the algorithms call ``generate`` as they would on an in-process generator;
``update_weights`` is called by the loop after every step (``needs_weight_sync``), and
``prefetch`` with the next steps' prompts, which starts them early in asynchronous mode.

rlkit's cluster driver configures it (``generator.name=ray`` with the actors' names); it
cannot be chosen on the command line by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from rlkit.cluster.config import RayGeneratorConfig
from rlkit.cluster.generator_group import GeneratorGroup
from rlkit.cluster.prefetch import Pending, Prefetcher
from rlkit.generators.base import Generator
from rlkit.types import Completion, Prompt, SamplingParams


class RayGenerator(Generator):
    """Samples on the generator actors; weights arrive through ``update_weights``."""

    needs_weight_sync = True

    Config = RayGeneratorConfig

    def __init__(self, config: RayGeneratorConfig, model: Any, tokenizer: Any):
        # model and tokenizer stay unused: the actors hold their own copies.
        if not config.actors or not config.store:
            raise ValueError("generator=ray is set up by cluster=split|colocated (rlkit.cluster); "
                             "choose a cluster instead of this generator")
        self.config = config
        self.group = GeneratorGroup(config.actors, config.namespace, config.store, config.restart_timeout_s,
                                    config.placement_group, config.placement_log, config.run_id)
        self.prefetcher = Prefetcher(config.max_staleness) if config.max_staleness else None
        #: Count of weight pushes: the version of the trainer's current weights.
        self.version = -1
        self._metrics: dict[str, float] = {}

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        key = Prefetcher.key(prompts, params)
        pending = self.prefetcher.take(key) if self.prefetcher else None
        if pending is not None:
            completions, versions = self.group.collect(pending.shards)
            staleness = self.version - min(versions)
            if staleness > self.config.max_staleness:  # e.g. a hint left unused for a while
                pending = None
        if pending is None:
            completions, versions = self.group.collect(self._submit(prompts, params))
            staleness = self.version - min(versions)
        self._metrics = {"generator/restarts": float(self.group.restarts)}
        if self.prefetcher:
            self._metrics.update({"async/staleness": float(staleness), "async/prefetched": float(pending is not None)})
        return completions

    def generate_tokens(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        """Token-id prompts (multi-turn episodes' turns), sampled by the actors' generators.
        Never prefetched: an episode's next turn depends on the environment's answer."""
        completions, _ = self.group.collect(self._submit(prompts, params, token_ids=True))
        self._metrics = {"generator/restarts": float(self.group.restarts)}
        return completions

    def prefetch(self, upcoming: Callable[[int], Sequence[Prompt]], params: SamplingParams) -> None:
        if not self.prefetcher:
            return
        for ahead in range(1, self.config.max_staleness + 1):
            prompts = upcoming(ahead)
            key = Prefetcher.key(prompts, params)
            if prompts and key not in self.prefetcher:
                self.prefetcher.add(key, Pending(self._submit(prompts, params), self.version))

    def update_weights(self, state_dict: Mapping[str, Any]) -> None:
        """Called on every trainer rank; only the main rank's ``state_dict`` is complete
        (the others pass an empty one) and only it publishes."""
        self.version += 1
        if state_dict:
            self.group.push(state_dict, self.version, wait=self.prefetcher is None)

    def metrics(self) -> dict[str, float]:
        return self._metrics

    def _submit(self, prompts: Sequence[Prompt] | Sequence[Sequence[int]], params: SamplingParams,
                token_ids: bool = False):
        # Seeds from the trainer's RNG: a run is reproducible from trainer.seed.
        seeds = torch.randint(2**62, (len(self.group.actors),)).tolist()
        return self.group.submit(prompts, params, seeds, token_ids)
