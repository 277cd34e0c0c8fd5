"""The trainer's side of every update: what algorithms no longer do themselves.

* one AdamW over every trainable module (``Algorithm.trainable_modules()``), a parameter
  group each with its own learning rate, following the trainer's schedule;
* the update's global denominators: ``Algorithm.counts`` summed over its micro-batches
  and every data-parallel rank, handed to ``Algorithm.loss``;
* micro-batch tensors moved to the device, backward (gradients of all but the last
  micro-batch kept local: DDP's no_sync), each module's gradient norm clipped;
* train/eval mode of the trainable modules;
* their sharded checkpoint (model and optimizer state, any world size).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from rlkit.algorithms.base import Algorithm, TrainableModule
from rlkit.backends.base import Backend
from rlkit.config import TrainerConfig
from rlkit.trainer.optim import build_optimizer, build_scheduler


class Updater:
    def __init__(self, algorithm: Algorithm, backend: Backend, config: TrainerConfig):
        self.algorithm, self.backend, self.config = algorithm, backend, config
        self.modules: dict[str, TrainableModule] = algorithm.trainable_modules()
        if next(iter(self.modules), None) != "policy":
            raise ValueError(f"{type(algorithm).__name__}.trainable_modules() must start with 'policy'")
        self.optimizer = build_optimizer(self.modules, config)
        self.scheduler = build_scheduler(self.optimizer, config)
        # What sharded checkpoints hold; the policy alone keeps its own parameter names.
        self.checkpointed: nn.Module = (self.modules["policy"].module if len(self.modules) == 1
                                        else nn.ModuleDict({name: t.module for name, t in self.modules.items()}))

    @property
    def lr(self) -> float:
        """The policy's learning rate at this step."""
        return self.scheduler.get_last_lr()[0]

    def train(self, mode: bool = True) -> None:
        for trainable in self.modules.values():
            trainable.module.train(mode)

    def run(self, updates: Sequence[Sequence[Any]],
            skip_update: Callable[[dict[str, float]], bool] | None = None) -> tuple[dict[str, float], int]:
        """Every update of a step, then one scheduler step: each metric's mean over the
        updates (``loss`` and the gradient norms included), and how many updates
        ``skip_update`` (given the update's loss and gradient norms, before the optimizer
        step) skipped."""
        self.train(True)
        sums: dict[str, float] = defaultdict(float)
        skipped = 0
        for update in updates:
            self.optimizer.zero_grad(set_to_none=True)
            totals = self.totals(update)
            update_loss = 0.0
            for i, micro_batch in enumerate(update):
                with self.local_gradients() if i + 1 < len(update) else ExitStack():
                    out = self.algorithm.loss(to_device(micro_batch, self.backend.device), totals)
                    self.backend.backward(out.loss)
                update_loss += float(out.loss.detach())
                for key, value in out.metrics.items():
                    sums[key] += value
            norms = self.clip_gradients()
            sums["loss"] += update_loss
            for key, value in norms.items():
                sums[key] += value
            if skip_update is not None and skip_update({"loss": update_loss, **norms}):
                skipped += 1
                continue
            self.optimizer.step()
        self.scheduler.step()
        return {key: value / len(updates) for key, value in sums.items()}, skipped

    def totals(self, micro_batches: Sequence[Any]) -> dict[str, float]:
        """``Algorithm.counts`` summed over ``micro_batches`` and every data-parallel rank."""
        return update_totals(self.algorithm, micro_batches, self.backend)

    def local_gradients(self) -> ExitStack:
        """Gradients stay on this rank (DDP's no_sync) for every trainable module."""
        stack = ExitStack()
        for trainable in self.modules.values():
            stack.enter_context(self.backend.no_sync(trainable.module))
        return stack

    def clip_gradients(self) -> dict[str, float]:
        """Clip each module to its ``max_grad_norm`` (default ``trainer.max_grad_norm``);
        the global norms before clipping: ``grad_norm`` (policy), ``grad_norm/<module>``."""
        norms = {}
        for name, trainable in self.modules.items():
            max_norm = self.config.max_grad_norm if trainable.max_grad_norm is None else trainable.max_grad_norm
            key = "grad_norm" if name == "policy" else f"grad_norm/{name}"
            norms[key] = self.backend.clip_grad_norm(trainable.module, max_norm)
        return norms

    def save_sharded(self, directory: Path) -> None:
        self.backend.save_sharded(directory, self.checkpointed, self.optimizer)

    def load_sharded(self, directory: Path) -> None:
        self.backend.load_sharded(directory, self.checkpointed, self.optimizer)


def update_totals(algorithm: Algorithm, micro_batches: Sequence[Any], backend: Backend) -> dict[str, float]:
    """An update's global denominators: ``algorithm.counts`` of each micro-batch, summed over
    the micro-batches and (one all-reduce) over every data-parallel rank.

    A count of zero (an update with nothing to average, e.g. every completion truncated and
    masked) is returned as 1: the sums it divides are zero too, so the loss is 0, not 0/0."""
    local: dict[str, float] = defaultdict(float)
    for micro_batch in micro_batches:
        for key, value in algorithm.counts(micro_batch).items():
            local[key] += float(value)
    keys = sorted(local)
    if backend.dp_size > 1 and keys:
        summed = backend.all_reduce_sum(torch.tensor([local[k] for k in keys], dtype=torch.float64))
        local = dict(zip(keys, summed.tolist()))
    return {key: max(local[key], 1.0) for key in keys}


def to_device(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor in it (through dataclasses, lists, tuples and dicts) on
    ``device``; objects without tensors are returned as they are."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
        moved = {name: to_device(v, device) for name, v in fields.items()}
        changed = any(moved[name] is not fields[name] for name in fields)
        return dataclasses.replace(value, **moved) if changed else value
    if isinstance(value, (list, tuple)):
        moved_items = [to_device(v, device) for v in value]
        return type(value)(moved_items) if any(m is not v for m, v in zip(moved_items, value)) else value
    if isinstance(value, dict):
        moved_dict = {k: to_device(v, device) for k, v in value.items()}
        return moved_dict if any(moved_dict[k] is not v for k, v in value.items()) else value
    return value
