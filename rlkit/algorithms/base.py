"""The algorithm interface: one loop serves SFT, DPO, RM, GRPO, PPO and plugins.

An algorithm states its idea; the trainer owns the mechanics. Each training step the
trainer hands the algorithm this rank's share of a batch of samples, and ``prepare`` turns
it into a :class:`StepPlan` (tokenising, and for online RL generating and scoring
rollouts): one or more optimizer updates, each a list of micro-batches. For every update
the trainer then

1. sums ``counts(micro_batch)`` over the update's micro-batches and every data-parallel
   rank: the update's global denominators (tokens, sequences, pairs, ...);
2. moves each micro-batch's tensors to the device and back-propagates
   ``loss(micro_batch, totals)``, with the trainable modules in train mode;
3. clips each trainable module's gradients and steps the optimizer.

A loss divides its sums by ``totals``, so the micro-batch gradients (and the ranks'
gradients) add up to the full-batch gradient whatever the micro-batch size and world
size; the metrics ``loss`` returns add up the same way. The trainer logs ``loss`` itself.

The trainer also owns the optimizer and learning-rate schedule of every module in
``trainable_modules()`` (one AdamW, a parameter group per module), their sharded
checkpoints, train/eval mode (``prepare`` and ``evaluate`` run in eval mode, ``evaluate``
without gradients) and the order of samples (``ctx.samples``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional, Sequence

from torch import Tensor, nn

from rlkit.backends.base import Backend
from rlkit.config import ModelConfig, TrainerConfig
from rlkit.data.sampler import SampleSource
from rlkit.environments.base import Environment
from rlkit.rewards.base import Reward
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
    reward: Optional[Reward] = None
    #: Decides whether a completion is correct (``accuracy``, ``pass@k``): a reward whose
    #: ``is_correct`` gives verdicts. Default: ``reward`` when it gives them.
    judge: Optional[Reward] = None
    #: This rank's training samples: dynamic sampling draws more (``draw``), asynchronous
    #: rollouts look ahead (``upcoming``).
    samples: Optional[SampleSource] = None
    #: A multi-turn environment (``env=``): rollouts and evaluation run episodes in it.
    environment: Optional[Environment] = None

    def __post_init__(self) -> None:
        if self.judge is None and self.reward is not None and self.reward.judges_correctness:
            self.judge = self.reward


@dataclass
class TrainableModule:
    """A model the trainer optimises; ``lr`` and ``max_grad_norm`` default to the trainer's."""

    module: nn.Module
    lr: Optional[float] = None
    max_grad_norm: Optional[float] = None


@dataclass
class LossOutput:
    """A micro-batch's loss (its share of the update's loss) and additive metric contributions."""

    loss: Tensor
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class StepPlan:
    """The updates of one training step, and metrics of preparing them (rewards, timings)."""

    updates: list[list[Any]]
    metrics: dict[str, float] = field(default_factory=dict)


class Algorithm(ABC):
    """Built as ``Algorithm(config, ctx)`` with ``ctx`` a :class:`TrainContext`."""

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

    def trainable_modules(self) -> dict[str, TrainableModule]:
        """The models the trainer optimises, by name; ``policy`` (the model the run
        exports) first. Add e.g. a value model with its own learning rate."""
        return {"policy": TrainableModule(self.ctx.policy)}

    @abstractmethod
    def prepare(self, samples: Sequence[Sample]) -> StepPlan:
        """Turn this rank's share of a step's samples into updates of micro-batches."""

    def counts(self, micro_batch: Any) -> dict[str, float]:
        """This micro-batch's part of its update's denominators, e.g. ``{"tokens": 812.0}``;
        ``loss`` receives their sums over the update and every data-parallel rank."""
        return {}

    @abstractmethod
    def loss(self, micro_batch: Any, totals: dict[str, float]) -> LossOutput:
        """The loss of one micro-batch: sums over it divided by the update's ``totals``."""

    @abstractmethod
    def evaluate(self, samples: Sequence[Sample]) -> dict[str, float]:
        """Held-out metrics (the loop prefixes them with ``eval/``)."""

    @classmethod
    def stale_rollouts_problem(cls, config: Any) -> Optional[str]:
        """Why this algorithm, configured by ``config``, must not train on rollouts sampled
        by weights a few steps old (asynchronous generation); None when it corrects for them."""
        return "it has no off-policy correction (algo.off_policy); use an algorithm that has one, e.g. algo=grpo"

    def state_dict(self) -> dict[str, Any]:
        """Algorithm state to checkpoint (e.g. an adaptive KL coefficient)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
