"""SFT: completion-only loss, split-invariant updates and packing (learning the task: tests/test_pipeline.py)."""

from __future__ import annotations

import copy

import pytest
import torch

from rlkit.algorithms.base import TrainContext
from rlkit.algorithms.sft import SFT
from rlkit.backends.single import SingleBackend
from rlkit.config import ModelConfig, TrainerConfig
from rlkit.data.arithmetic import ArithmeticTask
from rlkit.trainer.update import update_totals
from rlkit.types import SampleKind


@pytest.fixture
def samples():
    task = ArithmeticTask(ArithmeticTask.Config(train_size=64, eval_size=8))
    return task.load("train", SampleKind.SFT)[:8]


def make_sft(model, tokenizer, micro_batch_size, packing=False, micro_batch_tokens=0):
    ctx = TrainContext(policy=model, tokenizer=tokenizer, backend=SingleBackend(SingleBackend.Config(device="cpu")),
                       trainer=TrainerConfig(micro_batch_size=micro_batch_size, micro_batch_tokens=micro_batch_tokens),
                       model=ModelConfig())
    return SFT(SFT.Config(max_length=64, packing=packing), ctx)


def gradients(algorithm, samples):
    model = algorithm.ctx.policy
    model.zero_grad()
    total = 0.0
    update = algorithm.prepare(samples).updates[0]
    totals = update_totals(algorithm, update, algorithm.ctx.backend)
    for micro in update:
        out = algorithm.loss(micro, totals)
        out.loss.backward()
        total += out.loss.item()
    return total, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("micro_batch_size, micro_batch_tokens", [(2, 0), (8, 100)])
def test_update_does_not_depend_on_micro_batch_split(tiny, samples, micro_batch_size, micro_batch_tokens):
    model, tokenizer = copy.deepcopy(tiny[0]).double(), tiny[1]
    loss_1x8, grads_1x8 = gradients(make_sft(model, tokenizer, 8), samples)
    split = make_sft(model, tokenizer, micro_batch_size, micro_batch_tokens=micro_batch_tokens)
    assert len(split.prepare(samples).updates[0]) > 1
    loss_4x2, grads_4x2 = gradients(split, samples)
    assert loss_1x8 == pytest.approx(loss_4x2, rel=1e-10)
    for name, grad in grads_1x8.items():
        torch.testing.assert_close(grads_4x2[name], grad, rtol=1e-9, atol=1e-12, msg=name)


def test_packed_and_padded_batches_give_the_same_loss(tiny, samples):
    model, tokenizer = copy.deepcopy(tiny[0]).double(), tiny[1]
    padded = make_sft(model, tokenizer, 8)
    packed = make_sft(model, tokenizer, 8, packing=True)
    [[padded_micro]] = padded.prepare(samples).updates
    [[packed_micro]] = packed.prepare(samples).updates
    assert packed_micro.input_ids.shape[0] < padded_micro.input_ids.shape[0]
    totals = packed.counts(packed_micro)
    assert totals == padded.counts(padded_micro)
    torch.testing.assert_close(packed.loss(packed_micro, totals).loss, padded.loss(padded_micro, totals).loss,
                               rtol=1e-9, atol=1e-12)


def test_loss_covers_completion_tokens_only(tiny, samples):
    algorithm = make_sft(tiny[0], tiny[1], 8)
    [[micro]] = algorithm.prepare(samples).updates
    tokenizer = tiny[1]
    targets = micro.input_ids[micro.target_mask]
    expected = sum(len(tokenizer(s.completion, add_special_tokens=False).input_ids) + 1 for s in samples)
    assert algorithm.counts(micro) == {"tokens": expected} and len(targets) == expected
    assert (targets == tokenizer.eos_token_id).sum() == len(samples)


def test_a_token_budget_groups_samples_by_length(tiny):
    """trainer.micro_batch_tokens: micro-batches of similar lengths, each within the budget
    (rows x width), so fewer padded tokens are computed than in one right-padded batch."""
    task = ArithmeticTask(ArithmeticTask.Config(train_size=64, eval_size=8, worked_fraction=0.5))
    mixed = task.load("train", SampleKind.SFT)[:32]
    [whole] = make_sft(tiny[0], tiny[1], 32).prepare(mixed).updates
    [grouped] = make_sft(tiny[0], tiny[1], 32, micro_batch_tokens=256).prepare(mixed).updates
    assert len(grouped) > 1 and all(b.input_ids.numel() <= 256 for b in grouped)
    widths = [b.input_ids.shape[1] for b in grouped]
    assert widths == sorted(widths, reverse=True) and widths[0] == whole[0].input_ids.shape[1] > widths[-1]
    assert sum(b.num_targets for b in grouped) == whole[0].num_targets
    assert sum(b.input_ids.numel() for b in grouped) < 0.8 * whole[0].input_ids.numel()
