"""Which samples each step trains on: a seeded reshuffle per epoch, resumable."""

from __future__ import annotations

import torch


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

    def _order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.num_samples, generator=generator).tolist()

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
