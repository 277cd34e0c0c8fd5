"""Raising trainer.max_steps on a completed run directory continues it from its last
checkpoint (saved at the last step), saying so in one line; the same max_steps again trains
nothing."""

from __future__ import annotations

import pytest

from rlkit.launch import train
from rlkit.loggers.jsonl import read_metrics
from rlkit.outputs import RunOutputs

RUN = ["algo=sft", "algo.max_length=64", "model.tiny.hidden_size=64", "model.tiny.num_layers=2", "data.digits=1", "data.eval_size=8",
       "trainer.eval_samples=8", "trainer.eval_max_new_tokens=2", "trainer.batch_size=8", "trainer.micro_batch_size=8",
       "trainer.schedule=constant", "trainer.warmup_steps=0", "trainer.eval_every=0", "trainer.save_every=3",
       "logger=[jsonl]"]


def step_losses(run_dir):
    return {r["step"]: r["loss"] for r in read_metrics(RunOutputs(run_dir).metrics) if "loss" in r}


def test_raising_max_steps_continues_a_completed_run(compose, tmp_path, capsys):
    continued, direct = tmp_path / "continued", tmp_path / "direct"
    train(compose([*RUN, "trainer.max_steps=4"]), continued)
    assert RunOutputs(continued).completed().step == 4
    assert (RunOutputs(continued).checkpoints / "step_00000004").is_dir()  # the last step is checkpointed
    capsys.readouterr()

    train(compose([*RUN, "trainer.max_steps=6"]), continued)
    lines = [line for line in capsys.readouterr().out.splitlines() if "continuing from" in line]
    assert lines == [f"{continued} completed 4 steps; trainer.max_steps=6: continuing from its checkpoint "
                     f"{RunOutputs(continued).checkpoints / 'step_00000004'}"]
    assert RunOutputs(continued).completed().step == 6

    train(compose([*RUN, "trainer.max_steps=6"]), direct)
    got, expected = step_losses(continued), step_losses(direct)
    assert sorted(got) == list(range(1, 7))  # each step logged once
    assert got == pytest.approx(expected, rel=1e-6)

    train(compose([*RUN, "trainer.max_steps=6"]), continued)
    assert "already completed; not training again" in capsys.readouterr().out
