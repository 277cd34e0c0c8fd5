"""Asynchronous rollouts: sampling for the next steps runs while this step trains.

After a step's rollouts come back, the trainer hints at the prompts of the next steps
(``Generator.prefetch``); their generation is started at once with the weights the
generators hold, and the step goes on to score and train. The weights of this step's
update are pushed behind those calls, so the prefetched rollouts were sampled by weights
one step older than the policy they train (more with a deeper bound). That is the
staleness; the algorithm corrects for it with the generator's log-probabilities
(``algo.off_policy``), and rollouts staler than ``cluster.max_staleness`` are dropped
and sampled again.

Requests are matched by their prompts and sampling parameters, so a hint that turns out
wrong (dynamic sampling drew other prompts) costs generation time, never correctness.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from rlkit.types import Prompt, SamplingParams


@dataclass
class Pending:
    """A prefetched request: the shards in flight and the weight version when it started."""

    shards: list[Any]
    version: int


class Prefetcher:
    """At most ``depth`` requests in flight, oldest dropped first."""

    def __init__(self, depth: int):
        self.depth = depth
        self._pending: OrderedDict[Hashable, Pending] = OrderedDict()

    @staticmethod
    def key(prompts: Sequence[Prompt], params: SamplingParams) -> Hashable:
        return tuple(prompts), params

    def __contains__(self, key: Hashable) -> bool:
        return key in self._pending

    def add(self, key: Hashable, pending: Pending) -> None:
        self._pending[key] = pending
        while len(self._pending) > self.depth:
            self._pending.popitem(last=False)

    def take(self, key: Hashable) -> Pending | None:
        return self._pending.pop(key, None)
