"""The training loop, shared by every algorithm and backend.

    for each step:
        samples  -> algorithm.prepare -> updates of micro-batches
        for each update: loss + backward per micro-batch, clip, optimizer step
        log; evaluate every eval_every; checkpoint every save_every
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from rlkit.algorithms.base import Algorithm
from rlkit.backends.base import Backend
from rlkit.config import TrainerConfig
from rlkit.data.sampler import EpochSampler
from rlkit.loggers.base import Logger
from rlkit.trainer.checkpoint import CheckpointManager, restore_rng, rng_state
from rlkit.trainer.optim import build_optimizer, build_scheduler
from rlkit.types import Sample


@dataclass
class RunOutputs:
    """Where a run writes: checkpoints, the final model, metrics and its status."""

    run_dir: Path

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def final(self) -> Path:
        return self.run_dir / "final"

    @property
    def metrics(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    def write_status(self, status: str, step: int, error: str | None = None) -> None:
        record = {"status": status, "step": step, "error": error}
        tmp = self.run_dir / ".status.json.tmp"
        tmp.write_text(json.dumps(record))
        tmp.replace(self.run_dir / "status.json")


class Trainer:
    def __init__(
        self,
        config: TrainerConfig,
        *,
        algorithm: Algorithm,
        backend: Backend,
        train_samples: Sequence[Sample],
        eval_samples: Sequence[Sample],
        loggers: Sequence[Logger],
        outputs: RunOutputs,
        save_model: Callable[[Path], None],
    ):
        self.config = config
        self.algorithm = algorithm
        self.backend = backend
        self.policy = algorithm.ctx.policy
        self.train_samples = train_samples
        self.eval_samples = eval_samples[: config.eval_samples] if config.eval_samples else eval_samples
        self.loggers = loggers
        self.outputs = outputs
        self.save_model = save_model
        self.optimizer = build_optimizer(self.policy, config)
        self.scheduler = build_scheduler(self.optimizer, config)
        self.sampler = EpochSampler(len(train_samples), config.batch_size, config.seed)
        self.checkpoints = CheckpointManager(outputs.checkpoints, config.keep_checkpoints)
        self.step = 0
        algorithm.ctx.draw_samples = self.draw_samples

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "algorithm": self.algorithm.state_dict(),
            "rng": rng_state(),
        }

    def resume(self, checkpoint: Path) -> None:
        """Continue from ``checkpoint`` (whose weights the policy was loaded from)."""
        state = CheckpointManager.load_trainer_state(checkpoint)
        self.step = int(state["step"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        self.algorithm.load_state_dict(state["algorithm"])
        restore_rng(state["rng"])

    def save_checkpoint(self) -> None:
        state = self.state_dict()
        if self.backend.is_main:
            self.checkpoints.save(self.step, self.save_model, state)
        self.backend.barrier()

    # ------------------------------------------------------------------ loop

    def fit(self) -> dict[str, float]:
        """Train to ``max_steps``; returns the last evaluation metrics."""
        config = self.config
        self.outputs.write_status("running", self.step)
        try:
            if self.step == 0:
                self.evaluate()
            while self.step < config.max_steps:
                metrics = self.train_step()
                self.step += 1
                if self.step % config.log_every == 0 or self.step == config.max_steps:
                    self.log(metrics)
                if config.eval_every and self.step % config.eval_every == 0 and self.step < config.max_steps:
                    self.evaluate()
                if config.save_every and self.step % config.save_every == 0 and self.step < config.max_steps:
                    self.save_checkpoint()
            last_eval = self.evaluate()
            if self.backend.is_main:
                self.save_model_atomically(self.outputs.final)
        except BaseException as exc:
            self.outputs.write_status("failed", self.step, f"{type(exc).__name__}: {exc}")
            raise
        self.outputs.write_status("completed", self.step)
        return last_eval

    def draw_samples(self) -> list[Sample]:
        return [self.train_samples[i] for i in self.shard(self.sampler.next_batch())]

    def train_step(self) -> dict[str, float]:
        start = time.perf_counter()
        samples = self.draw_samples()
        plan = self.algorithm.prepare(samples)
        prepared = time.perf_counter()
        self.policy.train()
        totals: dict[str, float] = defaultdict(float)
        for update in plan.updates:
            self.optimizer.zero_grad(set_to_none=True)
            for micro_batch in update:
                out = self.algorithm.loss(micro_batch)
                self.backend.backward(out.loss)
                for key, value in out.metrics.items():
                    totals[key] += value
            totals["grad_norm"] += self.backend.clip_grad_norm(self.policy, self.config.max_grad_norm)
            self.optimizer.step()
            self.algorithm.after_update()
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        end = time.perf_counter()
        metrics = {key: value / len(plan.updates) for key, value in totals.items()}
        metrics.update(plan.metrics)
        metrics.update({"lr": lr, "time/step": end - start, "time/prepare": prepared - start, "time/train": end - prepared})
        return metrics

    def shard(self, indices: list[int]) -> list[int]:
        """This rank's share of a step's samples (contiguous, equal sizes)."""
        world, rank = self.backend.world_size, self.backend.rank
        if len(indices) % world:
            raise ValueError(f"trainer.batch_size={len(indices)} is not divisible by the world size {world}")
        share = len(indices) // world
        return indices[rank * share : (rank + 1) * share]

    def evaluate(self) -> dict[str, float]:
        if not self.eval_samples:
            return {}
        start = time.perf_counter()
        metrics = {f"eval/{k}": v for k, v in self.algorithm.evaluate(self.eval_samples).items()}
        metrics["time/eval"] = time.perf_counter() - start
        self.log(metrics)
        return metrics

    def log(self, metrics: dict[str, float]) -> None:
        if self.backend.is_main:
            for logger in self.loggers:
                logger.log(metrics, self.step)

    def save_model_atomically(self, directory: Path) -> None:
        from rlkit.trainer.checkpoint import atomic_directory

        atomic_directory(directory, self.save_model)


def set_seed(seed: int) -> None:
    import random

    random.seed(seed)
    torch.manual_seed(seed)
