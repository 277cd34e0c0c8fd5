"""The generator interface: prompts + sampling parameters -> completions.

The online-RL loop only talks to this interface, so a generator can live in the
trainer's process (``hf``), in a vLLM engine, or in Ray actors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Mapping, Sequence

from rlkit.types import Completion, Prompt, SamplingParams


class Generator(ABC):
    Config: type

    @abstractmethod
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        """Sample ``params.n`` completions per prompt.

        Returns ``len(prompts) * params.n`` completions ordered prompt by prompt
        (all completions of prompt 0 first), each carrying its ``prompt_index``.
        """

    @abstractmethod
    def update_weights(self, state_dict: Mapping[str, "object"]) -> None:
        """Load new policy weights (full, unsharded tensors keyed as in the HF model)."""
