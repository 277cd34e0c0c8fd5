"""A short SFT run on the synthetic preference task, shared by the DPO and RM end-to-end tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class SFTRun:
    #: The exported model (``<run>/final``), a starting point for DPO and reward models.
    final: Path
    #: Overrides shared by the SFT run and the preference runs started from it.
    overrides: tuple[str, ...]


#: One-digit problems with 40 held out. Wrong answers are off by 10 to 20, so a model that
#: has seen a few seconds of training can tell them apart on unseen problems by magnitude
#: (the task's default offsets suit 2-digit problems).
PREFERENCE_DATA = ("data.digits=1", "data.eval_size=40", "data.min_wrong_offset=10", "data.max_wrong_offset=20")
#: Settings of every run here; each also sets its batch size and learning rate (the shipped
#: defaults may change).
COMMON = (*PREFERENCE_DATA, "trainer.save_every=0", "logger=[jsonl]")


@pytest.fixture(scope="session")
def sft_run(compose, tmp_path_factory) -> SFTRun:
    from rlkit.launch import train

    run_dir = tmp_path_factory.mktemp("sft-for-preferences")
    train(compose(["algo=sft", *COMMON, "trainer.batch_size=64", "trainer.micro_batch_size=64", "trainer.lr=3e-3",
                   "trainer.warmup_steps=20", "trainer.max_steps=150", "trainer.eval_every=150",
                   "trainer.eval_samples=8"]), run_dir)
    return SFTRun(run_dir / "final", COMMON)
