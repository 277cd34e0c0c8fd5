"""Loss functions and advantage estimators for SFT, reward models, DPO, GRPO and PPO.

Pure tensor functions (torch only, no model code). Shapes: ``B`` sequences, ``T`` token
positions, ``V`` vocabulary. A ``mask`` is ``[B, T]`` (bool or 0/1) and marks the tokens a
loss covers (completion tokens; prompt and padding are 0). Values at masked-out positions
are never read, so they may hold anything, including ``nan``.

Losses that are averaged over tokens or sequences take *global* denominators (counts over
all micro-batches and data-parallel ranks of one optimiser step). Each micro-batch then
contributes its share of one global mean, and summing the micro-batch gradients gives the
full-batch gradient whatever the micro-batch size or world size. Left as ``None``, the
denominators are those of the tensors passed, which is right for a single call on the
whole batch.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "AGGREGATION_MODES",
    "DPO_LOSS_TYPES",
    "aggregate",
    "clipped_policy_loss",
    "clipped_value_loss",
    "dpo_loss",
    "gae",
    "group_advantages",
    "kl_estimate",
    "masked_mean",
    "masked_sum",
    "reward_model_loss",
    "sequence_logprobs",
    "sft_loss",
    "token_entropy",
    "whiten",
]

DPOLossType = Literal["sigmoid", "hinge", "ipo", "robust"]
DPO_LOSS_TYPES: tuple[str, ...] = ("sigmoid", "hinge", "ipo", "robust")

Aggregation = Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"]
AGGREGATION_MODES: tuple[str, ...] = (
    "token_mean",
    "seq_mean_token_mean",
    "seq_mean_token_sum_norm",
)

#: A number or a scalar tensor (e.g. a count all-reduced across ranks).
Count = int | float | Tensor

# exp(20) ~ 4.9e8: log-ratios are clamped to +-20 so that exp() stays finite in float32
# (and its backward never computes 0 * inf = nan at padding positions).
_MAX_LOG_RATIO = 20.0


def _at_least_float32(x: Tensor) -> Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


# --------------------------------------------------------------------------- helpers


def masked_sum(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of ``values`` where ``mask`` is set: ``sum_t m_t * x_t`` (over ``dim``, or all).

    Masked-out entries are selected away rather than multiplied by 0, so ``nan``/``inf``
    there do not leak into the result.
    """
    kept = torch.where(mask.bool(), values, torch.zeros_like(values))
    return kept.sum() if dim is None else kept.sum(dim)


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``values`` where ``mask`` is set: ``sum_t m_t x_t / sum_t m_t``.

    Rows with no valid entry give 0 (the count is clamped to at least 1).
    """
    count = mask.sum() if dim is None else mask.sum(dim)
    return masked_sum(values, mask, dim) / count.clamp(min=1)


# ------------------------------------------------------------------ log-probabilities


def sequence_logprobs(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Per-token log-probabilities ``log softmax(logits)[labels]``, ``[B, T]``.

    ``logits`` (``[B, T, V]``) must already be aligned with ``labels`` (``[B, T]``): the
    caller shifts them. Computed as ``logits[label] - logsumexp(logits)`` in at least
    float32, which never materialises a ``[B, T, V]`` tensor of log-probabilities. Labels at
    masked-out positions may be anything (e.g. -100); those positions return 0.
    """
    safe_labels = torch.where(mask.bool(), labels, torch.zeros_like(labels))
    logits = _at_least_float32(logits)
    picked = logits.gather(-1, safe_labels.unsqueeze(-1)).squeeze(-1)
    logps = picked - torch.logsumexp(logits, dim=-1)
    return torch.where(mask.bool(), logps, torch.zeros_like(logps))


def token_entropy(logits: Tensor) -> Tensor:
    """Entropy of the next-token distribution, ``H = -sum_v p_v log p_v``, ``[B, T]``.

    Computed in at least float32 as ``logsumexp(l) - sum_v softmax(l)_v * l_v``.
    """
    logits = _at_least_float32(logits)
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(-1)


# ------------------------------------------------------------------------------- SFT


def sft_loss(token_logps: Tensor, mask: Tensor, num_tokens: Count) -> Tensor:
    """Negative log-likelihood of the masked tokens: ``-sum_t m_t log p_t / num_tokens``.

    ``num_tokens`` is the global count of loss tokens in the optimiser step (all
    micro-batches and ranks), so gradient accumulation does not change the update.
    """
    return -masked_sum(token_logps, mask) / num_tokens


# ------------------------------------------------------------------------------- DPO


def dpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    *,
    beta: float,
    loss_type: DPOLossType = "sigmoid",
    label_smoothing: float = 0.0,
    chosen_lengths: Tensor | None = None,
    rejected_lengths: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-pair preference losses, ``(losses, chosen_rewards, rejected_rewards)``, each ``[B]``.

    Inputs are completion log-probabilities per sequence (summed, or averaged: the
    caller's choice). With ``d_c = pol_c - ref_c``, ``d_r = pol_r - ref_r``,
    ``z = beta (d_c - d_r)`` and ``e = label_smoothing``:

    - ``sigmoid`` (DPO; cDPO when e > 0): ``-(1-e) log s(z) - e log s(-z)``
    - ``hinge`` (SLiC): ``relu(1 - z)``
    - ``ipo``: ``(d_c/|c| - d_r/|r| - 1/(2 beta))^2`` with ``|c|``, ``|r|`` the completion
      token counts ``chosen_lengths``, ``rejected_lengths`` (required). The IPO paper
      writes the loss on unnormalised log-ratios; the per-token normalisation follows the
      reference implementations.
    - ``robust`` (rDPO): ``(-(1-e) log s(z) + e log s(-z)) / (1 - 2e)``, ``0 <= e < 0.5``

    ``label_smoothing`` only applies to ``sigmoid`` and ``robust``; setting it for the
    others is an error rather than silently ignored. Rewards are ``beta d_c`` and
    ``beta d_r``, detached.
    """
    _check_choice("loss_type", loss_type, DPO_LOSS_TYPES)
    if beta <= 0:
        raise ValueError(f"beta must be > 0; got {beta}")
    e = label_smoothing
    if loss_type == "robust" and not 0 <= e < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5) for robust; got {e}")
    if loss_type == "sigmoid" and not 0 <= e <= 1:
        raise ValueError(f"label_smoothing must be in [0, 1] for sigmoid; got {e}")
    if loss_type in ("hinge", "ipo") and e != 0:
        raise ValueError(f"label_smoothing is not used by {loss_type}; got {e}")

    d_c = policy_chosen_logps - ref_chosen_logps
    d_r = policy_rejected_logps - ref_rejected_logps
    z = beta * (d_c - d_r)
    if loss_type == "sigmoid":
        losses = -(1 - e) * F.logsigmoid(z) - e * F.logsigmoid(-z)
    elif loss_type == "hinge":
        losses = torch.relu(1 - z)
    elif loss_type == "ipo":
        if chosen_lengths is None:
            raise ValueError("loss_type='ipo' requires chosen_lengths")
        if rejected_lengths is None:
            raise ValueError("loss_type='ipo' requires rejected_lengths")
        losses = (d_c / chosen_lengths - d_r / rejected_lengths - 1 / (2 * beta)) ** 2
    else:
        losses = (-(1 - e) * F.logsigmoid(z) + e * F.logsigmoid(-z)) / (1 - 2 * e)
    return losses, (beta * d_c).detach(), (beta * d_r).detach()


# ---------------------------------------------------------------------- reward model


def reward_model_loss(
    chosen_rewards: Tensor,
    rejected_rewards: Tensor,
    *,
    margin: Tensor | None = None,
    center_coef: float = 0.0,
) -> Tensor:
    """Per-pair Bradley-Terry loss, ``[B]``.

    ``-log s(r_c - r_r - margin) + center_coef (r_c + r_r)^2``. The optional margin
    (per pair) is Llama 2's; the centring term keeps rewards near zero mean.
    """
    diff = chosen_rewards - rejected_rewards
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff) + center_coef * (chosen_rewards + rejected_rewards) ** 2


# ---------------------------------------------------------------- GRPO advantages


def group_advantages(
    rewards: Tensor,
    group_size: int,
    *,
    baseline: Literal["mean", "loo"] = "mean",
    scale: Literal["group", "batch", "none"] = "group",
    eps: float = 1e-6,
) -> Tensor:
    """Group-relative advantages ``A_i = (R_i - b_i) / s``, same shape as ``rewards``.

    ``rewards`` is 1-D, ``num_groups * group_size`` long, each group's completions
    contiguous. Baseline ``b_i``: ``mean`` = group mean (GRPO); ``loo`` = mean of the
    other ``G-1`` rewards of the group (RLOO). Scale ``s``: ``group`` = unbiased std of
    the group's rewards + eps (GRPO); ``batch`` = unbiased std of all rewards + eps;
    ``none`` = 1 (Dr. GRPO). A group whose rewards are all equal gets advantage 0.
    """
    _check_choice("baseline", baseline, ("mean", "loo"))
    _check_choice("scale", scale, ("group", "batch", "none"))
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D; got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size != 0:
        raise ValueError(
            f"group_size must be >= 1 and divide len(rewards)={rewards.numel()}; "
            f"got {group_size}"
        )
    if group_size < 2 and (baseline == "loo" or scale == "group"):
        raise ValueError("baseline='loo' and scale='group' need group_size >= 2")
    if scale == "batch" and rewards.numel() < 2:
        raise ValueError("scale='batch' needs at least 2 rewards")

    if not rewards.is_floating_point():
        rewards = rewards.float()
    grouped = rewards.view(-1, group_size)
    if baseline == "mean":
        base = grouped.mean(dim=1, keepdim=True)
    else:
        base = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)
    advantages = grouped - base
    if scale == "group":
        advantages = advantages / (grouped.std(dim=1, keepdim=True) + eps)
    elif scale == "batch":
        advantages = advantages / (grouped.std() + eps)
    return advantages.view(-1)


# ------------------------------------------------------------------------ KL estimate


def kl_estimate(
    logp: Tensor, ref_logp: Tensor, kind: Literal["k1", "k2", "k3"] = "k3"
) -> Tensor:
    """Per-token estimate of ``KL(pi || pi_ref)`` from tokens sampled from ``pi``.

    With ``log q = ref_logp - logp``: ``k1 = -log q``, ``k2 = (log q)^2 / 2``,
    ``k3 = exp(log q) - 1 - log q`` (Schulman's estimators; k1 and k3 are unbiased, k3 is
    never negative). For ``k3``, ``log q`` is clamped to ``[-20, 20]`` so that ``exp``
    stays finite; beyond that range the value saturates and its gradient is 0.
    """
    _check_choice("kind", kind, ("k1", "k2", "k3"))
    log_q = ref_logp - logp
    if kind == "k1":
        return -log_q
    if kind == "k2":
        return log_q**2 / 2
    log_q = log_q.clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)
    return torch.exp(log_q) - 1 - log_q


# ---------------------------------------------------------------------- aggregation


def aggregate(
    loss_tokens: Tensor,
    mask: Tensor,
    *,
    mode: Aggregation,
    global_tokens: Count | None = None,
    global_sequences: Count | None = None,
    max_length: Count | None = None,
) -> Tensor:
    """Reduce per-token losses ``[B, T]`` to this micro-batch's share of a global scalar.

    - ``token_mean``: ``sum_{i,t} m l / N_tokens`` (DAPO's token-level mean)
    - ``seq_mean_token_mean``: ``sum_i (sum_t m l / sum_t m) / N_seqs`` (original GRPO)
    - ``seq_mean_token_sum_norm``: ``sum_{i,t} m l / (N_seqs * L_max)`` (Dr. GRPO)

    ``N_tokens`` = ``global_tokens``, ``N_seqs`` = ``global_sequences``, ``L_max`` =
    ``max_length``, each taken over the whole optimiser step. When ``None`` they default to
    this call's valid-token count, number of rows ``B`` and width ``T``. Dr. GRPO divides by a
    constant (the generation budget); pass it as ``max_length``, since the default ``T``
    depends on how the batch was padded.
    """
    _check_choice("mode", mode, AGGREGATION_MODES)
    if mode == "token_mean":
        if global_tokens is None:
            global_tokens = mask.sum().clamp(min=1)
        return masked_sum(loss_tokens, mask) / global_tokens
    if global_sequences is None:
        global_sequences = loss_tokens.shape[0]
    if mode == "seq_mean_token_mean":
        return masked_mean(loss_tokens, mask, dim=-1).sum() / global_sequences
    if max_length is None:
        max_length = loss_tokens.shape[-1]
    return masked_sum(loss_tokens, mask) / (global_sequences * max_length)


# ---------------------------------------------------------------------- policy loss


def _log_ratio(
    logp: Tensor, old_logp: Tensor, mask: Tensor, level: Literal["token", "sequence"]
) -> Tensor:
    """Per-token ``log r``: token-level, or the sequence's mean broadcast to its tokens."""
    log_ratio = logp - old_logp
    if level == "sequence":
        log_ratio = masked_mean(log_ratio, mask, dim=-1).unsqueeze(-1).expand_as(logp)
    return log_ratio.clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)


def clipped_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    dual_clip: float | None = None,
    level: Literal["token", "sequence"] = "token",
    aggregation: Aggregation = "token_mean",
    global_tokens: Count | None = None,
    global_sequences: Count | None = None,
    max_length: Count | None = None,
    token_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate, ``(loss, metrics)``.

    ``loss_t = -min(r A, clip(r, 1 - eps_low, 1 + eps_high) A)``; with ``dual_clip = c > 1``,
    tokens with ``A < 0`` get ``min(loss_t, -c A)`` (dual-clip PPO), bounding the loss when
    ``r`` is large. The per-token losses are reduced with :func:`aggregate` (``aggregation``
    and the global denominators are passed through). ``advantages`` is ``[B]`` (broadcast
    over tokens) or ``[B, T]``.

    ``level="token"``: ``r_t = exp(logp_t - old_logp_t)`` (PPO/GRPO; DAPO's clip-higher is
    ``eps_high > eps_low``). ``level="sequence"`` (GSPO): one ratio per sequence,
    ``s = exp(mean_t (logp_t - old_logp_t))`` over its valid tokens, used for each token;
    the gradient flows through the mean into every token, ``ds/dlogp_t = s / |y|``. With
    ``aggregation="seq_mean_token_mean"`` this is GSPO's objective exactly; GSPO uses much
    smaller clip ranges (about 3e-4 / 4e-4) than token-level PPO. Log-ratios are clamped to
    ``[-20, 20]`` so the ratio stays finite.

    ``token_weights`` (no gradient) multiply each token's loss before aggregation, e.g.
    truncated importance weights ``min(pi_old / mu, C)`` of decoupled off-policy PPO, where
    ``mu`` is the behaviour policy that sampled the tokens.

    Metrics (detached, over this call's valid tokens): ``clip_fraction`` (tokens where the
    clipped term is the active one), ``ratio_mean``, and ``dual_clip_fraction`` when
    ``dual_clip`` is set.
    """
    _check_choice("level", level, ("token", "sequence"))
    if dual_clip is not None and dual_clip <= 1:
        raise ValueError(f"dual_clip must be > 1; got {dual_clip}")
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1)
    advantages = advantages.expand_as(logp)

    ratio = torch.exp(_log_ratio(logp, old_logp, mask, level))
    unclipped = -ratio * advantages
    clipped = -ratio.clamp(1 - eps_low, 1 + eps_high) * advantages
    loss_tokens = torch.maximum(unclipped, clipped)
    metrics = {
        "clip_fraction": masked_mean((clipped > unclipped).float(), mask),
        "ratio_mean": masked_mean(ratio.detach(), mask),
    }
    if dual_clip is not None:
        capped = (advantages < 0) & (loss_tokens > -dual_clip * advantages)
        loss_tokens = torch.where(capped, -dual_clip * advantages, loss_tokens)
        metrics["dual_clip_fraction"] = masked_mean(capped.float(), mask)

    if token_weights is not None:
        loss_tokens = loss_tokens * token_weights.detach()

    loss = aggregate(
        loss_tokens,
        mask,
        mode=aggregation,
        global_tokens=global_tokens,
        global_sequences=global_sequences,
        max_length=max_length,
    )
    return loss, metrics


# ------------------------------------------------------------------------------- PPO


@torch.no_grad()
def gae(
    rewards: Tensor, values: Tensor, mask: Tensor, *, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation, ``(advantages, returns)``, each ``[B, T]``.

    Backwards over the valid tokens ``t`` (mask ``m``), with ``t'`` the next valid token
    after ``t`` (none: terminal, ``V_{t'} = A_{t'} = 0``):
    ``delta_t = r_t + gamma V_{t'} - V_t``, ``A_t = delta_t + gamma lam A_{t'}``,
    ``returns = A + V``. Masked tokens between valid ones (a multi-turn episode's
    observations) are skipped, so the final reward reaches every earlier turn; for
    right-padded rows this is the usual recursion. Both outputs are 0 outside the mask,
    and rewards and values there are never read.
    """
    valid = mask.bool()
    rewards = torch.where(valid, rewards, torch.zeros_like(rewards))
    values = torch.where(valid, values, torch.zeros_like(values))
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    next_advantage = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantages[:, t] = delta + gamma * lam * next_advantage
        # A masked token passes on the next valid token's value and advantage unchanged.
        next_value = torch.where(valid[:, t], values[:, t], next_value)
        next_advantage = torch.where(valid[:, t], advantages[:, t], next_advantage)
    advantages = torch.where(valid, advantages, torch.zeros_like(advantages))
    return advantages, advantages + values


def whiten(values: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Masked whitening: ``(x - mean) / sqrt(var + eps)`` over the valid entries.

    ``var`` is unbiased (Bessel-corrected, as ``torch.std``). With ``shift_mean=False`` the
    mean is added back (only the scale changes). Entries outside the mask are 0.
    """
    mean = masked_mean(values, mask)
    centred = values - mean
    count = mask.sum().clamp(min=2)
    var = masked_sum(centred**2, mask) / (count - 1)
    whitened = centred * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask.bool(), whitened, torch.zeros_like(whitened))


def clipped_value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor,
    *,
    clip_eps: float,
    aggregation: Aggregation = "token_mean",
    global_tokens: Count | None = None,
    global_sequences: Count | None = None,
    max_length: Count | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped value loss, ``(loss, metrics)``.

    ``loss_t = 0.5 max((V - R)^2, (clip(V, V_old - eps, V_old + eps) - R)^2)``, reduced with
    :func:`aggregate` like the policy loss. Metric ``value_clip_fraction``: fraction of
    valid tokens where the clipped term is the larger one.
    """
    clipped_values = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
    unclipped_err = (values - returns) ** 2
    clipped_err = (clipped_values - returns) ** 2
    loss_tokens = 0.5 * torch.maximum(unclipped_err, clipped_err)
    loss = aggregate(
        loss_tokens,
        mask,
        mode=aggregation,
        global_tokens=global_tokens,
        global_sequences=global_sequences,
        max_length=max_length,
    )
    return loss, {"value_clip_fraction": masked_mean((clipped_err > unclipped_err).float(), mask)}
