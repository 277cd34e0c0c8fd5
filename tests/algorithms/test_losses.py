"""Tests for rlkit.algorithms.losses: each function against an independent computation.

References are written element by element with plain ``math`` (or small float64 torch
expressions) and gradients are derived by hand, so a shared bug cannot hide in both.
"""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from rlkit.algorithms.losses import (
    AGGREGATION_MODES,
    aggregate,
    clipped_policy_loss,
    clipped_value_loss,
    dpo_loss,
    gae,
    group_advantages,
    kl_estimate,
    masked_mean,
    masked_sum,
    reward_model_loss,
    sequence_logprobs,
    sft_loss,
    token_entropy,
    whiten,
)

D = torch.float64


def _t(values, **kwargs) -> torch.Tensor:
    return torch.tensor(values, dtype=D, **kwargs)


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _logsig(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def _ragged_mask(lengths: list[int], width: int) -> torch.Tensor:
    return torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)


# --------------------------------------------------------------------------- helpers


def test_masked_sum_and_mean_ignore_masked_entries_even_nan():
    values = _t([[1.0, 2.0, float("nan")], [4.0, float("inf"), 6.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 1]])
    assert masked_sum(values, mask).item() == 13.0
    assert masked_sum(values, mask, dim=-1).tolist() == [3.0, 10.0]
    assert masked_mean(values, mask).item() == 13.0 / 4
    assert masked_mean(values, mask, dim=-1).tolist() == [1.5, 5.0]


def test_masked_mean_of_empty_row_is_zero():
    values = _t([[1.0, 2.0], [3.0, 4.0]])
    mask = torch.tensor([[1, 1], [0, 0]])
    assert masked_mean(values, mask, dim=-1).tolist() == [1.5, 0.0]


# ------------------------------------------------------------------ log-probabilities


def test_sequence_logprobs_matches_log_softmax_and_ignores_masked_labels():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 7, dtype=D, requires_grad=True)
    labels = torch.tensor([[1, 6, 0, -100], [3, 3, -100, -100]])
    mask = labels != -100

    got = sequence_logprobs(logits, labels, mask)

    expected = torch.zeros(2, 4, dtype=D)
    for b in range(2):
        for t in range(4):
            if mask[b, t]:
                row = logits[b, t].tolist()
                lse = math.log(sum(math.exp(x) for x in row))
                expected[b, t] = row[labels[b, t]] - lse
    torch.testing.assert_close(got, expected)

    # d logp / d logits = onehot(label) - softmax, at valid positions only.
    (grad,) = torch.autograd.grad(got.sum(), logits)
    probs = torch.softmax(logits.detach(), -1)
    onehot = torch.nn.functional.one_hot(labels.clamp(min=0), 7).to(D)
    expected_grad = (onehot - probs) * mask.unsqueeze(-1)
    torch.testing.assert_close(grad, expected_grad)


def test_token_entropy_matches_definition():
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 5, dtype=D)
    got = token_entropy(logits)
    for b in range(2):
        for t in range(3):
            exps = [math.exp(x) for x in logits[b, t].tolist()]
            probs = [e / sum(exps) for e in exps]
            assert got[b, t].item() == pytest.approx(-sum(p * math.log(p) for p in probs))
    uniform = token_entropy(torch.zeros(1, 1, 8, dtype=torch.bfloat16))
    assert uniform.dtype == torch.float32
    assert uniform.item() == pytest.approx(math.log(8), rel=1e-6)


# ------------------------------------------------------------------------------- SFT


def test_sft_loss_is_global_token_mean_under_gradient_accumulation():
    torch.manual_seed(2)
    logps = (-torch.rand(4, 5, dtype=D)).requires_grad_()
    mask = _ragged_mask([5, 2, 4, 1], 5)
    num_tokens = int(mask.sum())

    full = sft_loss(logps, mask, num_tokens)
    assert full.item() == pytest.approx(-logps[mask].sum().item() / num_tokens)
    (full_grad,) = torch.autograd.grad(full, logps)

    accumulated = sft_loss(logps[:1], mask[:1], num_tokens) + sft_loss(
        logps[1:], mask[1:], num_tokens
    )
    (acc_grad,) = torch.autograd.grad(accumulated, logps)
    torch.testing.assert_close(accumulated, full)
    torch.testing.assert_close(acc_grad, full_grad)


# ------------------------------------------------------------------------------- DPO

BETA = 0.5
# Policy/reference log-probs chosen so that z = beta (d_c - d_r) takes both signs and
# falls on both sides of the hinge at z = 1.
POL_C = [-10.0, -12.0, -8.0, -20.0, -5.0]
POL_R = [-11.0, -9.0, -15.0, -19.5, -5.0]
REF_C = [-10.5, -11.0, -9.0, -18.0, -5.0]
REF_R = [-10.0, -10.0, -12.0, -20.0, -6.0]
LEN_C = [4.0, 6.0, 3.0, 10.0, 2.0]
LEN_R = [5.0, 2.0, 7.0, 8.0, 3.0]


def _dpo_reference(loss_type: str, e: float) -> tuple[list[float], list[float], list[float]]:
    """Per pair: loss, dL/d pol_c and dL/d pol_r, by hand in float64 Python math."""
    losses, grad_c, grad_r = [], [], []
    for pc, pr, rc, rr, lc, lr in zip(POL_C, POL_R, REF_C, REF_R, LEN_C, LEN_R):
        d_c, d_r = pc - rc, pr - rr
        z = BETA * (d_c - d_r)
        if loss_type == "sigmoid":
            loss = -(1 - e) * _logsig(z) - e * _logsig(-z)
            dz = -(1 - e) * _sig(-z) + e * _sig(z)
        elif loss_type == "hinge":
            loss = max(0.0, 1 - z)
            dz = -1.0 if z < 1 else 0.0
        elif loss_type == "robust":
            loss = (-(1 - e) * _logsig(z) + e * _logsig(-z)) / (1 - 2 * e)
            dz = (-(1 - e) * _sig(-z) - e * _sig(z)) / (1 - 2 * e)
        else:  # ipo
            u = d_c / lc - d_r / lr - 1 / (2 * BETA)
            losses.append(u * u)
            grad_c.append(2 * u / lc)
            grad_r.append(-2 * u / lr)
            continue
        losses.append(loss)
        grad_c.append(BETA * dz)
        grad_r.append(-BETA * dz)
    return losses, grad_c, grad_r


@pytest.mark.parametrize(
    ("loss_type", "label_smoothing"),
    [
        ("sigmoid", 0.0),
        ("sigmoid", 0.1),
        ("hinge", 0.0),
        ("ipo", 0.0),
        ("robust", 0.0),
        ("robust", 0.2),
    ],
)
def test_dpo_loss_values_and_gradients(loss_type, label_smoothing):
    pol_c, pol_r = _t(POL_C, requires_grad=True), _t(POL_R, requires_grad=True)
    ref_c, ref_r = _t(REF_C, requires_grad=True), _t(REF_R, requires_grad=True)

    losses, chosen_rewards, rejected_rewards = dpo_loss(
        pol_c,
        pol_r,
        ref_c,
        ref_r,
        beta=BETA,
        loss_type=loss_type,
        label_smoothing=label_smoothing,
        chosen_lengths=_t(LEN_C),
        rejected_lengths=_t(LEN_R),
    )
    grads = torch.autograd.grad(losses.sum(), (pol_c, pol_r, ref_c, ref_r))

    exp_losses, exp_grad_c, exp_grad_r = _dpo_reference(loss_type, label_smoothing)
    torch.testing.assert_close(losses, _t(exp_losses))
    torch.testing.assert_close(grads[0], _t(exp_grad_c))
    torch.testing.assert_close(grads[1], _t(exp_grad_r))
    # The reference enters through d = pol - ref only.
    torch.testing.assert_close(grads[2], -_t(exp_grad_c))
    torch.testing.assert_close(grads[3], -_t(exp_grad_r))

    expected_chosen = [BETA * (p - r) for p, r in zip(POL_C, REF_C)]
    expected_rejected = [BETA * (p - r) for p, r in zip(POL_R, REF_R)]
    torch.testing.assert_close(chosen_rewards, _t(expected_chosen))
    torch.testing.assert_close(rejected_rewards, _t(expected_rejected))
    assert not chosen_rewards.requires_grad and not rejected_rewards.requires_grad


def test_dpo_hinge_reference_covers_both_sides_of_the_hinge():
    zs = [BETA * ((pc - rc) - (pr - rr)) for pc, pr, rc, rr in zip(POL_C, POL_R, REF_C, REF_R)]
    assert min(zs) < 0 < 1 < max(zs)


def test_dpo_ipo_depends_on_lengths():
    args = (_t(POL_C), _t(POL_R), _t(REF_C), _t(REF_R))
    short, _, _ = dpo_loss(
        *args, beta=BETA, loss_type="ipo", chosen_lengths=_t(LEN_C), rejected_lengths=_t(LEN_R)
    )
    long, _, _ = dpo_loss(
        *args,
        beta=BETA,
        loss_type="ipo",
        chosen_lengths=_t(LEN_C) * 3,
        rejected_lengths=_t(LEN_R) * 3,
    )
    assert not torch.allclose(short, long)


def test_dpo_robust_without_smoothing_equals_sigmoid():
    args = (_t(POL_C), _t(POL_R), _t(REF_C), _t(REF_R))
    robust, _, _ = dpo_loss(*args, beta=BETA, loss_type="robust")
    sigmoid, _, _ = dpo_loss(*args, beta=BETA, loss_type="sigmoid")
    torch.testing.assert_close(robust, sigmoid)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss_type": "ipo", "rejected_lengths": _t(LEN_R)}, "chosen_lengths"),
        ({"loss_type": "ipo", "chosen_lengths": _t(LEN_C)}, "rejected_lengths"),
        ({"loss_type": "robust", "label_smoothing": 0.5}, r"\[0, 0.5\)"),
        ({"loss_type": "robust", "label_smoothing": -0.1}, r"\[0, 0.5\)"),
        ({"loss_type": "hinge", "label_smoothing": 0.1}, "not used by hinge"),
        ({"loss_type": "kto"}, "sigmoid, hinge, ipo, robust"),
        ({"loss_type": "sigmoid", "beta": 0.0}, "beta"),
    ],
)
def test_dpo_loss_rejects_bad_arguments(kwargs, message):
    kwargs = {"beta": BETA, **kwargs}
    with pytest.raises(ValueError, match=message):
        dpo_loss(_t(POL_C), _t(POL_R), _t(REF_C), _t(REF_R), **kwargs)


# ---------------------------------------------------------------------- reward model


@pytest.mark.parametrize("use_margin", [False, True])
@pytest.mark.parametrize("center_coef", [0.0, 0.01])
def test_reward_model_loss_values_and_gradients(use_margin, center_coef):
    chosen_vals, rejected_vals, margin_vals = [1.5, -0.3, 2.0], [0.5, 0.4, -1.0], [1.0, 0.0, 2.5]
    chosen, rejected = _t(chosen_vals, requires_grad=True), _t(rejected_vals, requires_grad=True)
    margin = _t(margin_vals) if use_margin else None

    losses = reward_model_loss(chosen, rejected, margin=margin, center_coef=center_coef)
    grad_c, grad_r = torch.autograd.grad(losses.sum(), (chosen, rejected))

    for i, (rc, rr) in enumerate(zip(chosen_vals, rejected_vals)):
        x = rc - rr - (margin_vals[i] if use_margin else 0.0)
        centre = 2 * center_coef * (rc + rr)
        assert losses[i].item() == pytest.approx(-_logsig(x) + center_coef * (rc + rr) ** 2)
        assert grad_c[i].item() == pytest.approx(-_sig(-x) + centre)
        assert grad_r[i].item() == pytest.approx(_sig(-x) + centre)


# ---------------------------------------------------------------- GRPO advantages


def _group_advantages_loop(
    rewards: list[float], group_size: int, baseline: str, scale: str, eps: float
) -> list[float]:
    out = []
    batch_std = statistics.stdev(rewards)
    for start in range(0, len(rewards), group_size):
        group = rewards[start : start + group_size]
        for i, r in enumerate(group):
            others = group[:i] + group[i + 1 :]
            b = statistics.fmean(group) if baseline == "mean" else statistics.fmean(others)
            s = {"group": statistics.stdev(group) + eps, "batch": batch_std + eps, "none": 1.0}
            out.append((r - b) / s[scale])
    return out


@pytest.mark.parametrize("baseline", ["mean", "loo"])
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_group_advantages_match_loop(baseline, scale):
    rewards = [1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 2.0, -1.0, 0.3, 0.0]
    got = group_advantages(_t(rewards), 4, baseline=baseline, scale=scale, eps=1e-6)
    expected = _group_advantages_loop(rewards, 4, baseline, scale, 1e-6)
    torch.testing.assert_close(got, _t(expected))
    # A group whose rewards are all equal carries no signal.
    assert got[4:8].abs().max().item() == 0.0


def test_group_advantages_accepts_integer_rewards():
    got = group_advantages(torch.tensor([1, 0, 0, 1]), 2, scale="none")
    assert got.dtype == torch.float32
    assert got.tolist() == [0.5, -0.5, -0.5, 0.5]


@pytest.mark.parametrize(
    ("rewards", "group_size", "kwargs", "message"),
    [
        (torch.zeros(6), 4, {}, "divide"),
        (torch.zeros(6), 0, {}, "divide"),
        (torch.zeros(2, 3), 3, {}, "1-D"),
        (torch.zeros(4), 1, {"scale": "none", "baseline": "loo"}, "group_size >= 2"),
        (torch.zeros(4), 1, {"scale": "group"}, "group_size >= 2"),
        (torch.zeros(1), 1, {"scale": "batch"}, "at least 2"),
        (torch.zeros(4), 2, {"baseline": "median"}, "baseline must be one of mean, loo"),
        (torch.zeros(4), 2, {"scale": "max"}, "scale must be one of group, batch, none"),
    ],
)
def test_group_advantages_rejects_bad_arguments(rewards, group_size, kwargs, message):
    with pytest.raises(ValueError, match=message):
        group_advantages(rewards, group_size, **kwargs)


# ------------------------------------------------------------------------ KL estimate


def test_kl_estimators_match_formulas():
    logp_vals, ref_vals = [-1.0, -2.5, -0.1, -3.0], [-1.2, -0.5, -0.1, -4.0]
    k1, k2, k3 = (kl_estimate(_t(logp_vals), _t(ref_vals), kind) for kind in ("k1", "k2", "k3"))
    for i, (lp, rl) in enumerate(zip(logp_vals, ref_vals)):
        log_q = rl - lp
        assert k1[i].item() == pytest.approx(-log_q)
        assert k2[i].item() == pytest.approx(log_q**2 / 2)
        assert k3[i].item() == pytest.approx(math.exp(log_q) - 1 - log_q)


def test_k3_is_nonnegative_and_finite_for_extreme_log_ratios():
    torch.manual_seed(3)
    logp = torch.randn(1000) * 5
    ref = torch.randn(1000) * 5
    assert (kl_estimate(logp, ref, "k3") >= 0).all()
    extreme = kl_estimate(torch.tensor([0.0, 0.0]), torch.tensor([500.0, -500.0]), "k3")
    assert torch.isfinite(extreme).all()


def test_k1_and_k3_are_unbiased_for_the_true_kl():
    # Exact expectation over tokens drawn from pi: sum_x pi(x) k(x) = KL(pi || pi_ref).
    logp = torch.log_softmax(_t([0.3, -1.0, 2.0, 0.0, -0.5]), -1)
    ref_logp = torch.log_softmax(_t([1.0, 0.2, -0.4, 0.1, 0.0]), -1)
    probs = logp.exp()
    true_kl = (probs * (logp - ref_logp)).sum()
    for kind in ("k1", "k3"):
        expectation = (probs * kl_estimate(logp, ref_logp, kind)).sum()
        torch.testing.assert_close(expectation, true_kl)


def test_kl_estimate_rejects_unknown_kind():
    with pytest.raises(ValueError, match="k1, k2, k3"):
        kl_estimate(torch.zeros(1), torch.zeros(1), "k4")


# ---------------------------------------------------------------------- aggregation

LOSSES = _t([[1.0, 2.0, 3.0, 100.0], [4.0, 100.0, 100.0, 100.0], [5.0, 6.0, 7.0, 8.0]])
MASK = _ragged_mask([3, 1, 4], 4)


def test_aggregate_token_mean():
    assert aggregate(LOSSES, MASK, mode="token_mean").item() == pytest.approx(36 / 8)
    assert aggregate(LOSSES, MASK, mode="token_mean", global_tokens=20).item() == pytest.approx(
        36 / 20
    )


def test_aggregate_seq_mean_token_mean():
    per_seq = [6 / 3, 4 / 1, 26 / 4]
    got = aggregate(LOSSES, MASK, mode="seq_mean_token_mean")
    assert got.item() == pytest.approx(sum(per_seq) / 3)
    got = aggregate(LOSSES, MASK, mode="seq_mean_token_mean", global_sequences=10)
    assert got.item() == pytest.approx(sum(per_seq) / 10)


def test_aggregate_seq_mean_token_sum_norm():
    got = aggregate(LOSSES, MASK, mode="seq_mean_token_sum_norm")
    assert got.item() == pytest.approx(36 / (3 * 4))
    got = aggregate(
        LOSSES, MASK, mode="seq_mean_token_sum_norm", global_sequences=6, max_length=16
    )
    assert got.item() == pytest.approx(36 / (6 * 16))


def test_aggregate_rejects_unknown_mode():
    with pytest.raises(ValueError, match="token_mean, seq_mean_token_mean"):
        aggregate(LOSSES, MASK, mode="sum")


# ---------------------------------------------------------------------- policy loss


@pytest.mark.parametrize("mode", AGGREGATION_MODES)
@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("token_advantages", [False, True])
def test_policy_loss_gradient_is_invariant_to_micro_batching(mode, level, token_advantages):
    torch.manual_seed(4)
    lengths = [7, 2, 5, 1, 6, 3]
    width = 7
    mask = _ragged_mask(lengths, width)
    old_logp = -torch.rand(6, width, dtype=D) * 3
    # Ratios up to ~e^0.5 so that some tokens are clipped and some are not.
    logp = (old_logp + (torch.rand(6, width, dtype=D) - 0.5)).requires_grad_()
    advantages = torch.randn(6, width, dtype=D) if token_advantages else torch.randn(6, dtype=D)
    totals = {
        "global_tokens": int(mask.sum()),
        "global_sequences": len(lengths),
        "max_length": width,
    }

    def loss_of(rows: slice, trim: bool = False) -> torch.Tensor:
        # Micro-batches are padded only to their own longest sequence, as a collator would.
        cols = slice(0, max(lengths[rows])) if trim else slice(None)
        loss, _ = clipped_policy_loss(
            logp[rows, cols],
            old_logp[rows, cols],
            advantages[rows, cols] if token_advantages else advantages[rows],
            mask[rows, cols],
            level=level,
            aggregation=mode,
            **totals,
        )
        return loss

    full = loss_of(slice(None))
    (full_grad,) = torch.autograd.grad(full, logp)
    micro = [loss_of(rows, trim=True) for rows in (slice(0, 2), slice(2, 5), slice(5, 6))]
    (micro_grad,) = torch.autograd.grad(sum(micro), logp)

    torch.testing.assert_close(sum(micro), full)
    torch.testing.assert_close(micro_grad, full_grad)
    assert full_grad.abs().sum() > 0
    assert full_grad[~mask].abs().max() == 0


def test_policy_loss_without_global_denominators_matches_full_batch_mean():
    logp = _t([[-1.0, -2.0], [-0.5, -0.3]])
    old_logp = logp.clone()
    loss, metrics = clipped_policy_loss(logp, old_logp, _t([1.0, -2.0]), _ragged_mask([2, 1], 2))
    # ratio 1 everywhere: loss_t = -A_t, over 3 valid tokens.
    assert loss.item() == pytest.approx(-(1.0 + 1.0 - 2.0) / 3)
    assert metrics["clip_fraction"].item() == 0.0
    assert metrics["ratio_mean"].item() == pytest.approx(1.0)


def test_clip_fraction_and_clipped_gradients_on_crafted_tokens():
    ratios = [1.5, 0.5, 0.5, 1.5, 1.1, 3.0]
    advs = [1.0, 1.0, -1.0, -1.0, 1.0, 1.0]
    # Expected per token (eps = 0.2): clipped?  loss_t            d loss_t / d logp_t
    #   r=1.5, A=+1 -> yes   -1.2 (1 + eps)   0
    #   r=0.5, A=+1 -> no    -0.5             -r A = -0.5
    #   r=0.5, A=-1 -> yes   0.8 (1 - eps)    0
    #   r=1.5, A=-1 -> no    1.5              -r A = 1.5
    #   r=1.1, A=+1 -> no    -1.1             -1.1
    #   r=3.0 (masked out)
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    old_logp = _t([[-1.0] * 6])
    logp = (old_logp + _t([[math.log(r) for r in ratios]])).requires_grad_()

    loss, metrics = clipped_policy_loss(logp, old_logp, _t([advs]), mask)
    (grad,) = torch.autograd.grad(loss, logp)

    assert loss.item() == pytest.approx((-1.2 - 0.5 + 0.8 + 1.5 - 1.1) / 5)
    torch.testing.assert_close(grad, _t([[0.0, -0.5, 0.0, 1.5, -1.1, 0.0]]) / 5)
    assert metrics["clip_fraction"].item() == pytest.approx(2 / 5)
    assert metrics["ratio_mean"].item() == pytest.approx((1.5 + 0.5 + 0.5 + 1.5 + 1.1) / 5)
    assert "dual_clip_fraction" not in metrics


def test_asymmetric_clip_range():
    old_logp = _t([[0.0]])
    logp = _t([[math.log(1.25)]])
    advantages = _t([1.0])
    mask = torch.ones(1, 1)
    _, symmetric = clipped_policy_loss(logp, old_logp, advantages, mask)
    loss, higher = clipped_policy_loss(logp, old_logp, advantages, mask, eps_high=0.28)
    assert symmetric["clip_fraction"].item() == 1.0
    assert higher["clip_fraction"].item() == 0.0
    assert loss.item() == pytest.approx(-1.25)
    _, lower = clipped_policy_loss(-logp, old_logp, -advantages, mask, eps_low=0.1)
    assert lower["clip_fraction"].item() == 1.0  # r = 0.8 < 1 - 0.1 with A < 0


def test_dual_clip_caps_loss_for_negative_advantages():
    ratios, advs = [5.0, 2.0, 5.0], [-1.0, -1.0, 1.0]
    old_logp = _t([[0.0, 0.0, 0.0]])
    logp = _t([[math.log(r) for r in ratios]], requires_grad=True)
    mask = torch.ones(1, 3)

    loss, metrics = clipped_policy_loss(logp, old_logp, _t([advs]), mask, dual_clip=3.0)
    (grad,) = torch.autograd.grad(loss, logp)

    # r=5, A=-1: min(5, 3) = 3 (capped, no gradient); r=2, A=-1: 2; r=5, A=+1: -1.2.
    assert loss.item() == pytest.approx((3.0 + 2.0 - 1.2) / 3)
    torch.testing.assert_close(grad, _t([[0.0, 2.0, 0.0]]) / 3)
    assert metrics["dual_clip_fraction"].item() == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="dual_clip"):
        clipped_policy_loss(logp, old_logp, _t([advs]), mask, dual_clip=1.0)


def test_gspo_sequence_level_ratio_value_and_gradient():
    torch.manual_seed(5)
    lengths = [3, 2, 3]
    mask = _ragged_mask(lengths, 4)
    old_logp = -torch.rand(3, 4, dtype=D)
    delta = _t([[0.02, -0.01, 0.03, 9.0], [-0.4, -0.2, 9.0, 9.0], [0.1, 0.08, 0.0, 9.0]])
    logp = (old_logp + delta).requires_grad_()
    advantages = _t([1.0, -0.5, 2.0])
    eps = 0.05

    loss, metrics = clipped_policy_loss(
        logp,
        old_logp,
        advantages,
        mask,
        eps_low=eps,
        eps_high=eps,
        level="sequence",
        aggregation="seq_mean_token_mean",
    )
    (grad,) = torch.autograd.grad(loss, logp)

    expected_loss, expected_grad, clipped = 0.0, torch.zeros(3, 4, dtype=D), []
    for i, n in enumerate(lengths):
        s = math.exp(sum(delta[i, :n].tolist()) / n)
        a = advantages[i].item()
        s_clip = min(max(s, 1 - eps), 1 + eps)
        expected_loss += -min(s * a, s_clip * a) / 3
        clipped.append(s_clip * a < s * a)
        if not clipped[-1]:
            # d(-s A / 3) / d logp_t = -A s / (3 n) for each valid token t.
            expected_grad[i, :n] = -a * s / (3 * n)
    # Crafted so that both cases occur: s ~ 1.013 (inside), 0.741 and 1.062 (clipped).
    assert clipped == [False, True, True]

    assert loss.item() == pytest.approx(expected_loss)
    torch.testing.assert_close(grad, expected_grad)
    assert metrics["clip_fraction"].item() == pytest.approx(5 / 8)


# ------------------------------------------------------------------------------- PPO


def _gae_loop(rewards, values, mask, gamma, lam):
    """The recursion exactly as written, one scalar at a time, reading only valid entries."""
    width = len(mask[0])
    advantages = [[0.0] * width for _ in mask]
    returns = [[0.0] * width for _ in mask]
    for b, m in enumerate(mask):
        next_value, next_adv = 0.0, 0.0  # V and A of the next valid token (0 after the last)
        for t in reversed(range(width)):
            if not m[t]:
                continue  # masked tokens (padding, a tool's output) are skipped
            delta = rewards[b][t] + gamma * next_value - values[b][t]
            advantages[b][t] = delta + gamma * lam * next_adv
            returns[b][t] = advantages[b][t] + values[b][t]
            next_value, next_adv = values[b][t], advantages[b][t]
    return advantages, returns


@pytest.mark.parametrize(
    "mask",
    [
        _ragged_mask([6, 3, 1, 0], 6),
        # Not right-padded: masked prompt before the completion, and a masked hole
        # (a tool's output in a multi-turn episode) that the recursion skips.
        torch.tensor([[0, 0, 1, 1, 1, 0], [1, 1, 0, 0, 1, 1]], dtype=torch.bool),
    ],
)
def test_gae_matches_scalar_loop(mask):
    torch.manual_seed(6)
    rewards = torch.randn(mask.shape, dtype=D)
    values = torch.randn(mask.shape, dtype=D)
    rewards[~mask] = float("nan")  # padding must never be read
    values[~mask] = float("nan")

    advantages, returns = gae(rewards, values, mask, gamma=0.95, lam=0.9)

    exp_adv, exp_ret = _gae_loop(rewards.tolist(), values.tolist(), mask.tolist(), 0.95, 0.9)
    torch.testing.assert_close(advantages, _t(exp_adv))
    torch.testing.assert_close(returns, _t(exp_ret))


def test_gae_with_gamma_and_lambda_one_is_reward_to_go_minus_value():
    mask = _ragged_mask([3], 4)
    rewards, values = _t([[0.0, 0.0, 1.0, 0.0]]), _t([[0.2, 0.5, 0.9, 0.0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    torch.testing.assert_close(advantages, _t([[0.8, 0.5, 0.1, 0.0]]))
    torch.testing.assert_close(returns, _t([[1.0, 1.0, 1.0, 0.0]]))


def test_whiten_uses_valid_entries_only():
    values = _t([[1.0, 2.0, 3.0, 50.0], [4.0, 5.0, 60.0, 70.0]])
    mask = _ragged_mask([3, 2], 4)
    valid = [1.0, 2.0, 3.0, 4.0, 5.0]
    mean, std = statistics.fmean(valid), statistics.stdev(valid)

    out = whiten(values, mask)
    torch.testing.assert_close(out[mask], (_t(valid) - mean) / std)
    assert out[~mask].abs().max() == 0

    kept_mean = whiten(values, mask, shift_mean=False)
    torch.testing.assert_close(kept_mean[mask], (_t(valid) - mean) / std + mean)


def test_clipped_value_loss_values_gradients_and_fraction():
    old = _t([[1.0, 1.0, 1.0, 1.0]])
    values = _t([[1.5, 1.5, 0.95, 9.0]], requires_grad=True)
    returns = _t([[2.0, 0.0, 1.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    # eps=0.2: token 0: V=1.5 -> clip 1.2; (1.5-2)^2=.25 vs (1.2-2)^2=.64 -> clipped, no grad
    #          token 1: (1.5)^2=2.25 vs (1.2)^2=1.44 -> unclipped, grad (V-R) = 1.5
    #          token 2: within range, equal terms -> unclipped, grad (V-R) = -0.05
    loss, metrics = clipped_value_loss(values, old, returns, mask, clip_eps=0.2)
    (grad,) = torch.autograd.grad(loss, values)

    assert loss.item() == pytest.approx(0.5 * (0.64 + 2.25 + 0.0025) / 3)
    torch.testing.assert_close(grad, _t([[0.0, 1.5, -0.05, 0.0]]) / 3)
    assert metrics["value_clip_fraction"].item() == pytest.approx(1 / 3)

    per_seq, _ = clipped_value_loss(
        values, old, returns, mask, clip_eps=0.2, aggregation="seq_mean_token_sum_norm"
    )
    assert per_seq.item() == pytest.approx(0.5 * (0.64 + 2.25 + 0.0025) / (1 * 4))
