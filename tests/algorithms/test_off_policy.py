"""GRPO's off-policy corrections for rollouts sampled by older weights (asynchronous rollouts)."""

from __future__ import annotations

import copy

import pytest
import torch

from rlkit.algorithms.losses import clipped_policy_loss
from tests.algorithms.test_grpo import grads, make_grpo, prompts  # noqa: F401 -- fixture


@pytest.mark.parametrize("off_policy", ["ratio", "tis"])
def test_on_policy_rollouts_give_the_plain_update(tiny, prompts, off_policy):  # noqa: F811
    """With the generator sampling the trainer's own weights, both corrections are no-ops."""
    torch.manual_seed(0)
    plain = make_grpo(copy.deepcopy(tiny[0]).double(), tiny[1])
    plan = plain.prepare(prompts)
    _, expected = grads(plain, plan)
    corrected = make_grpo(copy.deepcopy(tiny[0]).double(), tiny[1], off_policy=off_policy)
    corrected.ctx.policy.load_state_dict(plain.ctx.policy.state_dict())
    metrics, got = grads(corrected, plan)
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, rtol=1e-6, atol=1e-8, msg=name)
    if off_policy == "tis":
        assert metrics["tis_weight"] == pytest.approx(1.0, abs=1e-4)


def test_stale_rollouts_are_reweighted(tiny, prompts):  # noqa: F811
    """Tokens the generator found much less likely than the trainer does: ``tis`` caps their
    weight at ``tis_cap``; ``ratio`` clips against the generator's log-probabilities."""
    torch.manual_seed(0)
    algorithm = make_grpo(copy.deepcopy(tiny[0]), tiny[1], off_policy="tis", tis_cap=2.0)
    plan = algorithm.prepare(prompts)
    for micro in plan.updates[0]:
        micro.generator_logps = micro.generator_logps - 5.0
    metrics, _ = grads(algorithm, plan)
    assert metrics["tis_weight"] == pytest.approx(2.0)
    algorithm.config.off_policy = "ratio"
    metrics, _ = grads(algorithm, plan)
    assert metrics["ratio_mean"] > 100  # exp(5): far outside the clip range


def test_token_weights_scale_each_tokens_loss():
    logp = torch.randn(3, 5)
    advantages = torch.randn(3)
    mask = torch.ones(3, 5, dtype=torch.bool)
    base, _ = clipped_policy_loss(logp, logp.detach(), advantages, mask)
    halved, _ = clipped_policy_loss(logp, logp.detach(), advantages, mask, token_weights=torch.full((3, 5), 0.5))
    torch.testing.assert_close(halved, 0.5 * base)
