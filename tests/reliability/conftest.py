"""Shared runs of the fault-injection suite: one tiny SFT configuration, one uninterrupted
reference run of it, and helpers that read a run directory strictly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.reliability import runner

MAX_STEPS = 40
SAVE_EVERY = 4
#: A run of ~1 s of training on a 2-layer, 32-wide model; checkpoints every SAVE_EVERY steps.
FAST = [
    "algo=sft", "data.train_size=256", "data.eval_size=8", "trainer.eval_samples=8", "trainer.batch_size=8",
    "trainer.micro_batch_size=8", "trainer.eval_every=0", f"trainer.save_every={SAVE_EVERY}",
    "trainer.keep_checkpoints=2", f"trainer.max_steps={MAX_STEPS}", "trainer.eval_max_new_tokens=4",
    "logger=[jsonl]", "model.tiny.hidden_size=32", "model.tiny.intermediate_size=64", "model.tiny.num_layers=2",
    "model.tiny.num_heads=2", "model.tiny.num_kv_heads=1",
]


def argv(run_dir: Path, *overrides: str) -> list[str]:
    return [f"hydra.run.dir={run_dir}", *FAST, *overrides]


def strict_json(text: str):
    """``json.loads`` that refuses NaN and Infinity (what other JSON parsers do)."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def status(run_dir: Path) -> dict:
    return strict_json((run_dir / "status.json").read_text())


def metric_records(run_dir: Path, allow_torn_last_line: bool = False) -> list[dict]:
    """Every record of metrics.jsonl, each line strict JSON."""
    *lines, tail = (run_dir / "metrics.jsonl").read_text().split("\n")
    assert allow_torn_last_line or tail == "", f"metrics.jsonl does not end with a newline: {tail!r}"
    return [strict_json(line) for line in lines]


def train_steps(run_dir: Path) -> list[int]:
    """The steps of the training records (those with a ``loss``), in file order."""
    return [r["step"] for r in metric_records(run_dir) if "loss" in r]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "final" / "model.safetensors")


def all_finite(weights: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in weights.values())


def checkpoint_steps(run_dir: Path) -> list[int]:
    directory = run_dir / "checkpoints"
    return sorted(int(p.name[5:]) for p in directory.glob("step_*")) if directory.is_dir() else []


def is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run every recovery is compared with."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    code = runner.run(argv(run_dir), run_dir.parent / "log.txt")
    assert code == 0, (run_dir.parent / "log.txt").read_text()[-3000:]
    return run_dir
