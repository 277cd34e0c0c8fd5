"""A dataset component: multiplication problems with verifiable answers."""

from __future__ import annotations

import random
from rlkit.data.base import Dataset
from rlkit.types import Message, PromptSample, Sample, SampleKind, SFTSample
from rlkit_example.config import MultiplicationConfig


class MultiplicationTask(Dataset):
    Config = MultiplicationConfig

    def __init__(self, config: MultiplicationConfig):
        self.config = config

    def load(self, split: str, kind: SampleKind) -> list[Sample]:
        size = self.config.train_size if split == "train" else self.config.eval_size
        rng = random.Random(f"{self.config.seed}-{split}")
        high = 10**self.config.digits - 1
        samples: list[Sample] = []
        for _ in range(size):
            a, b = rng.randint(0, high), rng.randint(0, high)
            prompt = (Message("user", f"What is {a} * {b}?"),)
            if SampleKind(kind) is SampleKind.SFT:
                samples.append(SFTSample(prompt, str(a * b), str(a * b)))
            elif SampleKind(kind) is SampleKind.PROMPT:
                samples.append(PromptSample(prompt, str(a * b)))
            else:
                raise ValueError(f"multiplication has no {kind.value} samples; it provides sft and prompt")
        return samples
