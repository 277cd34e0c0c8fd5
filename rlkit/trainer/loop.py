"""The training loop, shared by every algorithm and backend.

    for each step:
        samples (ctx.samples) -> algorithm.prepare -> updates of micro-batches
        for each update: the Updater (rlkit.trainer.update) runs loss + backward per
            micro-batch with global denominators, clips, steps the optimizer
        send the new weights to a generator that keeps its own copy (Ray actors)
        log (loss included); evaluate every eval_every; checkpoint every save_every
"""

from __future__ import annotations

import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from rlkit.algorithms.base import Algorithm
from rlkit.backends.base import Backend
from rlkit.config import TrainerConfig
from rlkit.data.sampler import SampleSource
from rlkit.loggers.base import Logger, finish
from rlkit.loggers.plot import plot_metrics
from rlkit.resources import ResourceMonitor
from rlkit.outputs import RunOutputs
from rlkit.trainer.checkpoint import (
    SHARDED_DIR,
    TRAINER_STATE,
    CheckpointManager,
    begin_staging,
    commit_staging,
    restore_rng,
    rng_state,
    save_failed,
)
from rlkit.trainer.nonfinite import ON_NONFINITE, NonFiniteError, first_nonfinite
from rlkit.trainer.samples import sample_rows
from rlkit.trainer.update import Updater
from rlkit.types import Sample


class Trainer:
    def __init__(
        self,
        config: TrainerConfig,
        *,
        algorithm: Algorithm,
        backend: Backend,
        samples: SampleSource,
        eval_samples: Sequence[Sample],
        loggers: Sequence[Logger],
        outputs: RunOutputs,
        save_model: Callable[[Path], None],
    ):
        if config.on_nonfinite not in ON_NONFINITE:
            raise ValueError(f"trainer.on_nonfinite must be one of {ON_NONFINITE}, got {config.on_nonfinite!r}")
        self.config = config
        self.algorithm = algorithm
        self.backend = backend
        self.resources = ResourceMonitor(backend.device)
        self.policy = algorithm.ctx.policy
        self.samples = samples
        self.eval_samples = eval_samples[: config.eval_samples] if config.eval_samples else eval_samples
        self.loggers = loggers
        self.outputs = outputs
        self.save_model = save_model
        self.updater = Updater(algorithm, backend, config)
        self.checkpoints = CheckpointManager(outputs.checkpoints, config.keep_checkpoints)
        self.step = 0
        #: Held-out metrics before any training (empty for a resumed run).
        self.initial_eval: dict[str, float] = {}

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Rank 0's step, schedule, data position and RNG (model and optimizer: ``dcp/``)."""
        return {
            "step": self.step,
            "scheduler": self.updater.scheduler.state_dict(),
            "sampler": self.samples.state_dict(),
            "algorithm": self.algorithm.state_dict(),
            "rng": rng_state(),
        }

    def resume(self, checkpoint: Path) -> None:
        """Continue from ``checkpoint``: model and optimizer from its sharded state (any
        world size), the rest from ``trainer_state.pt``; every rank restores rank 0's RNG."""
        state = CheckpointManager.load_trainer_state(checkpoint)
        self.step = int(state["step"])
        if (checkpoint / SHARDED_DIR).is_dir():
            self.updater.load_sharded(checkpoint / SHARDED_DIR)
        else:  # written before sharded checkpoints: weights were loaded from the HF files
            self.updater.optimizer.load_state_dict(state["optimizer"])
        self.updater.scheduler.load_state_dict(state["scheduler"])
        self.samples.load_state_dict(state["sampler"])
        self.algorithm.load_state_dict(state["algorithm"])
        restore_rng(state["rng"])

    def save_checkpoint(self) -> None:
        state = self.state_dict()
        self.save_atomically(self.checkpoints.path(self.step), state)
        if self.backend.is_main:
            self.checkpoints.prune()

    def save_atomically(self, target: Path, trainer_state: dict[str, Any] | None = None) -> None:
        """Write the HF model (and, for a checkpoint, sharded and trainer state) to
        ``target`` on all ranks together; rank 0 renames the directory into place after
        every rank has finished writing."""
        backend = self.backend
        staging = Path(backend.broadcast_object(str(begin_staging(target)) if backend.is_main else None))
        try:
            if trainer_state is not None:
                self.updater.save_sharded(staging / SHARDED_DIR)
                if backend.is_main:
                    torch.save(trainer_state, staging / TRAINER_STATE)
            self.save_model(staging)
            backend.barrier()
        except Exception as exc:
            if not backend.is_main:
                raise
            error = save_failed(target, exc)
            shutil.rmtree(staging, ignore_errors=True)  # a full disk gets its space back
            raise error from exc
        except BaseException:
            if backend.is_main:
                shutil.rmtree(staging, ignore_errors=True)
            raise
        if backend.is_main:
            commit_staging(staging, target)
        backend.barrier()

    # ------------------------------------------------------------------ loop

    def fit(self) -> dict[str, float]:
        """Train to ``max_steps``; returns the last evaluation metrics."""
        config = self.config
        self.write_status("running")
        try:
            self.sync_generator()  # a generator with its own weights starts from the (resumed) policy's
            if self.step == 0:
                self.initial_eval = self.evaluate()
            while self.step < config.max_steps:
                metrics = self.train_step()
                self.step += 1
                if self.step % config.log_every == 0 or self.step == config.max_steps:
                    self.log({**metrics, **self.resources.read()})
                if config.eval_every and self.step % config.eval_every == 0 and self.step < config.max_steps:
                    self.evaluate()
                # The last step too: a completed run continues from it when max_steps is raised.
                if config.save_every and (self.step % config.save_every == 0 or self.step == config.max_steps):
                    self.save_checkpoint()
            last_eval = self.evaluate()
            self.save_model_atomically(self.outputs.final)
            plot = self.outputs.metrics_plot
            if self.backend.is_main and self.outputs.metrics.exists():
                plot_metrics(self.outputs.metrics, self.algorithm.plot_keys, plot,
                             title=f"{type(self.algorithm).__name__}: {self.outputs.run_dir}")
            finish(self.loggers, last_eval, [plot], self.outputs.final)
        except BaseException as exc:
            self.write_status("failed", f"{type(exc).__name__}: {exc}")
            raise
        self.write_status("completed", metrics=last_eval)
        return last_eval

    def write_status(self, status: str, error: str | None = None, metrics: dict[str, float] | None = None) -> None:
        if self.backend.is_main:
            self.outputs.write_status(status, self.step, error, metrics)

    def sync_generator(self) -> float | None:
        """Send the policy's weights to a generator that keeps its own copy (all ranks
        call it; the full state dict is gathered on the main rank). Seconds taken, or None
        when the generator samples from the policy itself."""
        generator = self.algorithm.ctx.generator
        if generator is None or not generator.needs_weight_sync:
            return None
        start = time.perf_counter()
        state = self.backend.full_state_dict(self.policy)
        generator.update_weights(state if self.backend.is_main else {})
        self.backend.barrier()  # no rank samples before the new weights are in place
        return time.perf_counter() - start

    def train_step(self) -> dict[str, float]:
        start = time.perf_counter()
        samples = self.samples.next_step()
        self.updater.train(False)
        plan = self.algorithm.prepare(samples)
        prepared = time.perf_counter()
        lr = self.updater.lr
        additive, skipped = self.updater.run(plan.updates, self.nonfinite_update)
        trained = time.perf_counter()
        sync = self.sync_generator()
        end = time.perf_counter()
        metrics = self.gather_metrics(additive, plan.metrics)
        metrics.update({"lr": lr, "time/step": end - start, "time/prepare": prepared - start, "time/train": trained - prepared})
        if self.config.on_nonfinite == "skip":
            metrics["nonfinite/skipped"] = float(skipped)
        if sync is not None:
            metrics["time/weight_sync"] = sync
        return metrics

    def nonfinite_update(self, values: dict[str, float]) -> bool:
        """The non-finite guard (rlkit.trainer.nonfinite), before the optimizer step: True
        when this update is to be skipped; raises NonFiniteError with ``stop``. Every rank
        decides alike (the flag is reduced over data-parallel ranks)."""
        bad = first_nonfinite(values)
        if not self.backend.all_reduce(1.0 if bad else 0.0, "max"):
            return False
        if self.config.on_nonfinite == "skip":
            self.updater.optimizer.zero_grad(set_to_none=True)
            return True
        metric, value = bad or ("loss or gradient norm on another rank", float("nan"))
        raise NonFiniteError(self.step + 1, metric, value)

    def gather_metrics(self, additive: dict[str, float], prepared: dict[str, float]) -> dict[str, float]:
        """Step metrics of the whole batch: loss contributions (global denominators) summed
        over data-parallel ranks, preparation metrics (rewards, timings) averaged; the
        gradient norms are already global."""
        if self.backend.dp_size == 1:
            return {**additive, **prepared}
        norms = {key: additive.pop(key) for key in list(additive) if key.startswith("grad_norm")}
        ranks = self.backend.all_gather_object((additive, prepared))
        metrics: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        for rank_additive, rank_prepared in ranks:
            for key, value in rank_additive.items():
                metrics[key] += value
            for key, value in rank_prepared.items():
                metrics[key] += value
                counts[key] += 1
        for key, count in counts.items():
            metrics[key] /= count
        return {**metrics, **norms}

    def evaluate(self) -> dict[str, float]:
        if not self.eval_samples:
            return {}
        start = time.perf_counter()
        self.updater.train(False)
        with torch.no_grad():
            metrics = {f"eval/{k}": v for k, v in self.algorithm.evaluate(self.eval_samples).items()}
        metrics["time/eval"] = time.perf_counter() - start
        self.log(metrics)
        self.log_samples()
        return metrics

    def log_samples(self) -> None:
        """Completions of the first ``log_samples`` held-out prompts, to every logger (all
        ranks generate: under fsdp2 gathering the weights is collective)."""
        ctx = self.algorithm.ctx
        count = self.config.log_samples
        if not count or ctx.generator is None or self.algorithm.model_kind != "causal_lm":
            return
        with self.backend.generation_model(self.policy):
            rows = sample_rows(ctx.generator, self.eval_samples[:count], ctx.reward, ctx.judge,
                               self.config.eval_max_new_tokens, episodes=getattr(self.algorithm, "episodes", None))
        if self.backend.is_main:
            for logger in self.loggers:
                logger.log_samples(rows, self.step)

    def log(self, metrics: dict[str, float]) -> None:
        if self.backend.is_main:
            for logger in self.loggers:
                logger.log(metrics, self.step)

    def save_model_atomically(self, directory: Path) -> None:
        """The full Hugging Face model only (the final model); all ranks call it."""
        self.save_atomically(directory)


def set_seed(seed: int) -> None:
    import random

    random.seed(seed)
    torch.manual_seed(seed)
