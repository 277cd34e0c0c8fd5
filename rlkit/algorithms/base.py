"""The algorithm interface: one loop serves SFT, DPO, RM, GRPO and PPO.

Each training step the loop hands the algorithm a batch of samples. The algorithm turns it
into a :class:`StepPlan` (tokenising, and for online RL generating and scoring rollouts)
made of one or more optimizer updates, each a list of micro-batches. The loop then runs
``loss`` on every micro-batch, calls backward, and steps the optimizer after each update.

Loss values are scaled by global denominators (tokens or sequences of the whole update,
across ranks) so that summing micro-batch gradients gives the full-batch gradient, and so
that metric contributions summed over micro-batches give the batch's value.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional, Sequence

from torch import Tensor, nn

from rlkit.backends.base import Backend
from rlkit.config import ModelConfig, TrainerConfig
from rlkit.types import Sample, SampleKind


@dataclass
class TrainContext:
    """Built objects an algorithm may use; optional parts are present when it asks for them."""

    policy: nn.Module
    tokenizer: Any
    backend: Backend
    trainer: TrainerConfig
    model: ModelConfig
    generator: Any = None
    reward: Any = None
    #: This rank's share of one more step's training samples (dynamic sampling refills).
    draw_samples: Optional[Callable[[], list[Sample]]] = None
    #: This rank's share of the samples ``k`` steps ahead, without drawing them (so that an
    #: asynchronous generator can start on them).
    upcoming_samples: Optional[Callable[[int], list[Sample]]] = None


@dataclass
class LossOutput:
    """A micro-batch's loss and its additive metric contributions."""

    loss: Tensor
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class StepPlan:
    """The updates of one training step, and metrics of preparing them (rewards, timings)."""

    updates: list[list[Any]]
    metrics: dict[str, float] = field(default_factory=dict)


class Algorithm(ABC):
    Config: ClassVar[type]
    #: The samples this algorithm trains on; the dataset produces this kind.
    sample_kind: ClassVar[SampleKind]
    #: How the trained model is loaded (a key of ``rlkit.models.loading.MODEL_KINDS``):
    #: ``"causal_lm"``, or ``"sequence_classification"`` for a scalar head (reward model).
    model_kind: ClassVar[str] = "causal_lm"
    #: Metrics drawn in the run's ``metrics.png`` at the end of training.
    plot_keys: ClassVar[tuple[str, ...]] = ("loss", "eval/loss")

    def __init__(self, config: Any, ctx: TrainContext):
        self.config = config
        self.ctx = ctx

    @abstractmethod
    def prepare(self, samples: Sequence[Sample]) -> StepPlan:
        """Turn this rank's share of a step's samples into updates of micro-batches."""

    @abstractmethod
    def loss(self, micro_batch: Any) -> LossOutput:
        """The loss of one micro-batch, scaled so micro-batch gradients add up."""

    @abstractmethod
    def evaluate(self, samples: Sequence[Sample]) -> dict[str, float]:
        """Held-out metrics (the loop prefixes them with ``eval/``)."""

    def after_update(self) -> None:
        """Called after each optimizer update (e.g. to send new weights to a generator)."""

    def state_dict(self) -> dict[str, Any]:
        """Algorithm state to checkpoint (e.g. an adaptive KL coefficient)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
