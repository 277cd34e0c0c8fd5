"""Asynchronous rollouts' bookkeeping: requests in flight, and the trainer's look-ahead."""

from __future__ import annotations

from rlkit.cluster.prefetch import Pending, Prefetcher
from rlkit.data.sampler import EpochSampler
from rlkit.types import SamplingParams


def test_requests_are_matched_by_prompts_and_params_and_the_oldest_dropped():
    prefetcher = Prefetcher(depth=2)
    params = SamplingParams(n=4)
    keys = [Prefetcher.key([f"{i}+1="], params) for i in range(3)]
    for version, key in enumerate(keys):
        prefetcher.add(key, Pending(shards=[], version=version))
    assert keys[0] not in prefetcher  # beyond the depth
    assert prefetcher.take(Prefetcher.key(["1+1="], SamplingParams(n=2))) is None  # other params
    assert prefetcher.take(keys[1]).version == 1
    assert prefetcher.take(keys[1]) is None  # taken once


def test_peek_shows_the_coming_batches_without_drawing_them():
    sampler = EpochSampler(num_samples=10, batch_size=4, seed=0)
    sampler.next_batch()
    ahead = [sampler.peek(1), sampler.peek(2), sampler.peek(3)]  # the third crosses an epoch
    assert sampler.state_dict() == {"epoch": 0, "position": 4}
    assert [sampler.next_batch() for _ in range(3)] == ahead
