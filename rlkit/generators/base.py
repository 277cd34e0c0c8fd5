"""The generator interface: prompts + sampling parameters -> completions.

The online-RL loop only talks to this interface, so a generator can live in the
trainer's process (``hf``), in a vLLM engine, or in Ray actors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, ClassVar, Mapping, Sequence

from rlkit.types import Completion, Prompt, SamplingParams


class Generator(ABC):
    Config: type
    #: True when the generator samples from its own copy of the weights (other processes,
    #: Ray actors, an inference engine): the loop then calls ``update_weights`` after every
    #: step. False when it samples from the trainer's policy module itself (``hf``).
    needs_weight_sync: ClassVar[bool] = False

    @abstractmethod
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        """Sample ``params.n`` completions per prompt.

        Returns ``len(prompts) * params.n`` completions ordered prompt by prompt
        (all completions of prompt 0 first), each carrying its ``prompt_index``.
        """

    def generate_tokens(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        """``generate`` for prompts given as token ids, continued exactly as they are (the
        multi-turn rollout's conversations so far: re-tokenising their text could change
        the ids the policy is trained on). Generators that cannot take token ids keep this
        default, and ``env=`` refuses them before training."""
        raise NotImplementedError(f"{type(self).__name__} cannot continue token-id prompts")

    @property
    def supports_token_prompts(self) -> bool:
        """Whether ``generate_tokens`` is implemented (multi-turn environments need it)."""
        return type(self).generate_tokens is not Generator.generate_tokens

    @abstractmethod
    def update_weights(self, state_dict: Mapping[str, "object"]) -> None:
        """Load new policy weights (full, unsharded tensors keyed as in the HF model).

        The loop calls it on every trainer rank; the state dict is complete on the main
        rank and empty on the others (a generator shared by the ranks loads it once).
        """

    def prefetch(self, upcoming: Callable[[int], Sequence[Prompt]], params: SamplingParams) -> None:
        """A hint after each rollout: ``upcoming(k)`` are the prompts ``k`` steps ahead.

        An asynchronous generator starts sampling them now, so that generation overlaps
        training; the default ignores the hint.
        """

    def metrics(self) -> dict[str, float]:
        """Metrics of the latest ``generate`` call (e.g. staleness), logged with the step's."""
        return {}
