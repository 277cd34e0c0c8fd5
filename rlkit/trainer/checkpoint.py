"""Checkpoints: a Hugging Face model directory with the trainer state beside it.

    checkpoints/step_00000100/
        config.json  model.safetensors  tokenizer.json ...   <- from_pretrained loads this
        adapter/                                           <- LoRA weights, when training LoRA
        trainer_state.pt                                   <- scheduler, RNG, data position
        dcp/                                               <- model + optimizer, sharded (DCP)

The Hugging Face files hold the full model, gathered from the shards and written by rank
0. ``dcp/`` is torch.distributed.checkpoint's format: every rank writes its own shards of
the model and optimizer state, and any world size or backend reads them back (resharding
on load), so a run saved on 8 ranks resumes on 2 or on one process.

A checkpoint is written to a hidden temporary directory and renamed into place, so an
interrupted save never replaces or corrupts a complete one: every ``step_*`` directory is
complete. With several ranks, rank 0 creates the staging directory, every rank writes into
it, and rank 0 renames it only after all of them have finished (a barrier). A save that
fails (a full disk) removes its staging directory; one left by a killed process is removed
when the next run starts (:meth:`CheckpointManager.remove_partial`).

Files can still be damaged after the fact, so a resume takes the newest checkpoint that
passes :func:`rlkit.trainer.integrity.checkpoint_problem`, warning once about each newer
one it skips. Nothing is unpickled without a restriction: trainer state with
``torch.load(weights_only=True)``, sharded state through :mod:`rlkit.backends.safe_dcp`;
weights are safetensors.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

_log = logging.getLogger(__name__)

STEP_DIR = re.compile(r"^step_(\d+)$")
#: Hidden siblings of a directory being written (``.tmp-``) or replaced (``.old-``).
PARTIAL_PREFIXES = (".tmp-", ".old-")
TRAINER_STATE = "trainer_state.pt"
#: Sharded model and optimizer state (torch.distributed.checkpoint) inside a checkpoint.
SHARDED_DIR = "dcp"


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_directory(target: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` into a sibling temporary directory, then move it to ``target``."""
    staging = begin_staging(target)
    try:
        write(staging)
    except Exception as exc:
        error = save_failed(target, exc)
        shutil.rmtree(staging, ignore_errors=True)  # a full disk gets its space back
        raise error from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return commit_staging(staging, target)


def begin_staging(target: Path) -> Path:
    """A fresh, empty hidden sibling of ``target`` to write into (see :func:`commit_staging`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".tmp-{target.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def commit_staging(staging: Path, target: Path) -> Path:
    """Flush ``staging`` to disk and rename it to ``target`` (replacing an older one)."""
    for path in staging.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    previous = target.parent / f".old-{target.name}-{os.getpid()}"
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
    return target


class CheckpointManager:
    def __init__(self, directory: Path, keep: int):
        self.directory = directory
        self.keep = keep

    def steps(self) -> list[tuple[int, Path]]:
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := STEP_DIR.match(p.name))]
        return sorted(found)

    @staticmethod
    def step_of(path: Path) -> int:
        return int(STEP_DIR.match(path.name).group(1))

    def latest(self) -> Path | None:
        steps = self.steps()
        return steps[-1][1] if steps else None

    def latest_usable(self, warn: bool = True) -> Path | None:
        """The newest checkpoint that passes the integrity checks, logging (``warn``) one
        warning naming what is wrong with each newer one; None when there are no
        checkpoints. Raises ``CheckpointError`` when checkpoints exist and none is usable."""
        from rlkit.trainer.integrity import checkpoint_problem

        skipped = []
        for _, path in reversed(self.steps()):
            problem = checkpoint_problem(path, TRAINER_STATE, SHARDED_DIR)
            if problem is None:
                for bad, why in skipped if warn else []:
                    _log.warning("checkpoint %s is unusable: %s; resuming from %s instead", bad.name, why, path.name)
                return path
            skipped.append((path, problem))
        if skipped:
            raise CheckpointError(f"no usable checkpoint in {self.directory}: " + "; ".join(
                f"{path.name}: {why}" for path, why in skipped) + " (delete them to start over)")
        return None

    def remove_partial(self) -> None:
        """Delete staging directories left by a killed save (call it holding the run's lock)."""
        remove_partial(self.directory)

    def save(self, step: int, write_model: Callable[[Path], None], trainer_state: dict[str, Any]) -> Path:
        def write(directory: Path) -> None:
            write_model(directory)
            torch.save(trainer_state, directory / TRAINER_STATE)

        path = atomic_directory(self.path(step), write)
        self.prune()
        return path

    def path(self, step: int) -> Path:
        return self.directory / f"step_{step:08d}"

    def prune(self) -> None:
        """Delete all but the newest ``keep`` checkpoints (keep <= 0: keep all)."""
        for _, old in self.steps()[: -self.keep] if self.keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)

    @staticmethod
    def load_trainer_state(path: Path) -> dict[str, Any]:
        from rlkit.trainer.integrity import load_trainer_state

        return load_trainer_state(path / TRAINER_STATE)


class CheckpointError(RuntimeError):
    """No checkpoint of a run directory can be resumed from, or one could not be written."""


#: Free space below which a failed save is reported as a full disk (writers fill it up).
NEARLY_FULL_BYTES = 16 << 20


def save_failed(target: Path, cause: BaseException) -> CheckpointError:
    """The error for a failed save into ``target``, saying so when the disk is full (the
    torch writers often report ENOSPC as an unrelated stream error)."""
    free = shutil.disk_usage(target.parent).free
    full = f"; No space left on device ({free} bytes free on {target.parent})" if free < NEARLY_FULL_BYTES else ""
    return CheckpointError(f"writing {target} failed: {type(cause).__name__}: {cause}{full}")


def remove_partial(directory: Path) -> None:
    """Delete the hidden staging directories of :func:`begin_staging`/:func:`commit_staging`
    in ``directory`` (left by a process that was killed while writing)."""
    if directory.is_dir():
        for path in directory.iterdir():
            if path.name.startswith(PARTIAL_PREFIXES) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
