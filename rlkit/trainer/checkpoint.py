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
it, and rank 0 renames it only after all of them have finished (a barrier). Trainer state
is read with ``torch.load(weights_only=True)``, which refuses to unpickle arbitrary
objects; weights are safetensors.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

STEP_DIR = re.compile(r"^step_(\d+)$")
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
    write(staging)
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
        return torch.load(path / TRAINER_STATE, weights_only=True)
