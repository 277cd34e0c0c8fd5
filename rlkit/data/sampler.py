"""Which samples each step trains on: a seeded reshuffle per epoch, resumable, shared out
over data-parallel ranks."""

from __future__ import annotations

from typing import Sequence

import torch

from rlkit.types import Sample


class EpochSampler:
    """Yields batches of indices, reshuffling every epoch with ``seed + epoch``.

    Its state is two integers, so a resumed run continues with exactly the batches the
    interrupted run would have seen.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int):
        if num_samples < batch_size:
            raise ValueError(f"the train split has {num_samples} samples, fewer than trainer.batch_size={batch_size}")
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.epoch, self.position = 0, 0
        self._orders: dict[int, list[int]] = {}

    def _order(self) -> list[int]:
        # Kept per epoch: a fresh permutation of a large dataset every step costs about 1% of
        # a small model's step. ``peek`` may ask for the next epoch's while this one runs.
        if self.epoch not in self._orders:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            self._orders = {e: o for e, o in self._orders.items() if e >= self.epoch - 1}
            self._orders[self.epoch] = torch.randperm(self.num_samples, generator=generator).tolist()
        return self._orders[self.epoch]

    def next_batch(self) -> list[int]:
        if self.position + self.batch_size > self.num_samples:  # drop the ragged tail of an epoch
            self.epoch, self.position = self.epoch + 1, 0
        batch = self._order()[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return batch

    def peek(self, ahead: int) -> list[int]:
        """The batch ``next_batch`` will return ``ahead`` calls from now (1: the next one)."""
        saved = self.epoch, self.position
        try:
            for _ in range(ahead):
                batch = self.next_batch()
        finally:
            self.epoch, self.position = saved
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


class SampleSource:
    """This rank's share of every training step's samples, in :class:`EpochSampler` order.

    The trainer takes one batch per step (:meth:`next_step`); an algorithm may draw more
    (:meth:`draw`: dynamic sampling refills) and look ahead (:meth:`upcoming`: asynchronous
    rollouts). A step's ``batch_size`` samples are split into equal, contiguous shares, one
    per data-parallel rank (the ranks of a tensor-parallel group get the same share).
    """

    def __init__(self, samples: Sequence[Sample], batch_size: int, seed: int, max_steps: int,
                 dp_rank: int = 0, dp_size: int = 1):
        if batch_size % dp_size:
            raise ValueError(f"trainer.batch_size={batch_size} is not divisible by the data-parallel size {dp_size}")
        self.samples, self.max_steps = samples, max_steps
        self.dp_rank, self.dp_size = dp_rank, dp_size
        self.sampler = EpochSampler(len(samples), batch_size, seed)
        #: Steps started (calls of next_step).
        self.steps = 0

    def next_step(self) -> list[Sample]:
        """This rank's samples of the next training step."""
        self.steps += 1
        return self.draw()

    def draw(self) -> list[Sample]:
        """This rank's share of the next batch."""
        return self._share(self.sampler.next_batch())

    def upcoming(self, ahead: int) -> list[Sample]:
        """This rank's samples ``ahead`` steps after the current one (none past the last step)."""
        if self.steps - 1 + ahead >= self.max_steps:
            return []
        return self._share(self.sampler.peek(ahead))

    def _share(self, indices: list[int]) -> list[Sample]:
        share = len(indices) // self.dp_size
        return [self.samples[i] for i in indices[self.dp_rank * share : (self.dp_rank + 1) * share]]

    def state_dict(self) -> dict[str, int]:
        return {**self.sampler.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)
        self.steps = int(state.get("steps", 0))
