"""EpochSampler: each epoch is the seeded permutation of ``seed + epoch``, its ragged tail
dropped; a resumed or peeking sampler gives exactly the batches of one that ran on."""

from __future__ import annotations

import torch

from rlkit.data.sampler import EpochSampler


def permutation(num_samples: int, seed: int) -> list[int]:
    return torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed)).tolist()


def test_batches_follow_each_epochs_seeded_permutation():
    sampler = EpochSampler(num_samples=10, batch_size=4, seed=3)
    batches = [sampler.next_batch() for _ in range(6)]  # 2 batches an epoch, 2 samples dropped
    for epoch in range(3):
        order = permutation(10, 3 + epoch)
        assert batches[2 * epoch : 2 * epoch + 2] == [order[:4], order[4:8]]


def test_peek_and_resume_give_the_batches_of_an_uninterrupted_sampler():
    reference = EpochSampler(num_samples=10, batch_size=4, seed=0)
    expected = [reference.next_batch() for _ in range(7)]

    sampler = EpochSampler(num_samples=10, batch_size=4, seed=0)
    seen = [sampler.next_batch()]
    assert sampler.peek(1) == expected[1] and sampler.peek(3) == expected[3]  # across an epoch
    seen += [sampler.next_batch() for _ in range(2)]
    resumed = EpochSampler(num_samples=10, batch_size=4, seed=0)
    resumed.load_state_dict(sampler.state_dict())
    seen += [resumed.next_batch() for _ in range(4)]
    assert seen == expected
