"""GRPO: rollouts line up with the trainer, updates are split-invariant, options work."""

from __future__ import annotations

import copy

import pytest
import torch

from rlkit.algorithms.base import TrainContext
from rlkit.algorithms.config import SamplingConfig
from rlkit.algorithms.grpo import GRPO
from rlkit.backends.single import SingleBackend
from rlkit.config import ModelConfig, TrainerConfig
from rlkit.data.arithmetic import ArithmeticTask
from rlkit.generators.hf import HFGenerator
from rlkit.rewards.math import MathVerifier
from rlkit.trainer.update import update_totals
from rlkit.types import SampleKind


@pytest.fixture
def prompts():
    task = ArithmeticTask(ArithmeticTask.Config(digits=1, train_size=64, eval_size=8))
    return task.load("train", SampleKind.PROMPT)[:4]


def make_grpo(model, tokenizer, micro_batch_size=64, **options):
    ctx = TrainContext(
        policy=model, tokenizer=tokenizer, backend=SingleBackend(SingleBackend.Config(device="cpu")),
        trainer=TrainerConfig(micro_batch_size=micro_batch_size), model=ModelConfig(),
        generator=HFGenerator(HFGenerator.Config(), model, tokenizer), reward=MathVerifier(MathVerifier.Config()),
    )
    config = GRPO.Config(group_size=4, sampling=SamplingConfig(max_new_tokens=6), **options)
    return GRPO(config, ctx)


def grads(algorithm, plan):
    model = algorithm.ctx.policy
    model.zero_grad()
    totals = update_totals(algorithm, plan.updates[0], algorithm.ctx.backend)
    metrics = {}
    for micro in plan.updates[0]:
        out = algorithm.loss(micro, totals)
        out.loss.backward()
        for k, v in {"loss": out.loss.item(), **out.metrics}.items():
            metrics[k] = metrics.get(k, 0.0) + v
    return metrics, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_generator_and_trainer_logprobs_agree(tiny, prompts):
    algorithm = make_grpo(copy.deepcopy(tiny[0]), tiny[1])
    torch.manual_seed(0)
    plan = algorithm.prepare(prompts)
    metrics, _ = grads(algorithm, plan)
    assert plan.metrics["completion/length"] > 0
    assert metrics["mismatch/logprob_abs_diff"] < 1e-4


@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"])
def test_update_does_not_depend_on_micro_batch_split(tiny, prompts, aggregation):
    model = copy.deepcopy(tiny[0]).double()
    whole = make_grpo(model, tiny[1], micro_batch_size=16, aggregation=aggregation, kl_beta=0.1)
    split = make_grpo(model, tiny[1], micro_batch_size=3, aggregation=aggregation, kl_beta=0.1)
    split.reference = whole.reference
    torch.manual_seed(0)
    plan = whole.prepare(prompts)
    # Force a non-trivial ratio so clipping and the KL term are exercised.
    for micro in plan.updates[0]:
        micro.advantages = torch.linspace(-1, 1, len(micro.advantages), dtype=torch.float64)
    resplit = split.micro_batches(*_rollouts_of(plan))
    m_whole, g_whole = grads(whole, plan)
    m_split, g_split = grads(split, type(plan)([resplit]))
    assert len(resplit) == 6
    assert m_whole["loss"] == pytest.approx(m_split["loss"], rel=1e-9)
    for name, g in g_whole.items():
        torch.testing.assert_close(g_split[name], g, rtol=1e-8, atol=1e-12, msg=name)


def _rollouts_of(plan):
    """Rebuild GRPO.micro_batches arguments from a one-micro-batch plan."""
    from rlkit.algorithms.rollout import Rollouts

    [micro] = plan.updates[0]
    n = len(micro.batch)
    rollouts = Rollouts([], [None] * n, torch.zeros(n), micro.batch, micro.generator_logps)
    return rollouts, list(range(n)), micro.advantages, micro.old_logps, micro.ref_logps


def test_reference_is_only_loaded_with_kl(tiny):
    assert make_grpo(tiny[0], tiny[1]).reference is None
    assert make_grpo(tiny[0], tiny[1], kl_beta=0.05).reference is not None


def test_several_updates_per_rollout_batch(tiny, prompts):
    algorithm = make_grpo(copy.deepcopy(tiny[0]), tiny[1], epochs=2, minibatches=2)
    torch.manual_seed(0)
    plan = algorithm.prepare(prompts)
    assert len(plan.updates) == 4
    first = plan.updates[0][0]
    assert first.old_logps is not None and len(first.batch) == 8


def test_truncated_completions_can_be_masked(tiny, prompts):
    algorithm = make_grpo(copy.deepcopy(tiny[0]), tiny[1], truncation="mask")
    torch.manual_seed(0)
    plan = algorithm.prepare(prompts)
    assert plan.metrics["completion/truncated"] > 0  # an untrained model rarely stops in 6 tokens
    [micro] = plan.updates[0]
    lengths = micro.batch.target_mask.sum(-1)
    assert (lengths == 0).sum() == round(plan.metrics["completion/truncated"] * 16)


def test_an_update_without_completion_tokens_has_zero_loss(tiny, prompts):
    """Every completion truncated and masked: nothing to average, so a zero loss, not NaN."""
    algorithm = make_grpo(copy.deepcopy(tiny[0]), tiny[1], truncation="mask", kl_beta=0.1)
    torch.manual_seed(0)
    plan = algorithm.prepare(prompts)
    for micro in plan.updates[0]:
        micro.batch.target_mask[:] = False
    metrics, gradients = grads(algorithm, plan)
    assert metrics["loss"] == 0.0 and metrics["kl"] == 0.0
    assert all(torch.isfinite(g).all() for g in gradients.values())


def test_grpo_needs_a_reward(tiny):
    ctx = TrainContext(policy=tiny[0], tokenizer=tiny[1], backend=SingleBackend(SingleBackend.Config()),
                       trainer=TrainerConfig(), model=ModelConfig())
    with pytest.raises(ValueError, match="reward=math"):
        GRPO(GRPO.Config(), ctx)
