"""The built-in algorithms' ``Config`` dataclasses: the schemas of the ``algo`` group.

Kept apart from the algorithms (and free of torch) so that composing a config -- ``--help``,
a sweep's submission, the check of every job before the first one runs -- never imports
torch. Each entry point in ``rlkit.algorithms`` names one of these classes; its
``component`` names the algorithm class that ``Registry.load`` imports when a run builds it.
Ranges are declared on the fields (rlkit.schema) and checked while composing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

from rlkit.schema import Choice, above, at_least, between
from rlkit.types import SamplingParams


class DPOLoss(Choice):
    """``dpo_loss`` variants (formulas in rlkit.algorithms.losses.dpo_loss)."""

    sigmoid = "sigmoid"
    hinge = "hinge"
    ipo = "ipo"
    robust = "robust"


class Baseline(Choice):
    mean = "mean"
    #: leave-one-out, as RLOO
    loo = "loo"


class AdvantageScale(Choice):
    group = "group"
    batch = "batch"
    #: Dr. GRPO
    none = "none"


class RatioLevel(Choice):
    token = "token"
    #: GSPO: one ratio per completion
    sequence = "sequence"


class Aggregation(Choice):
    token_mean = "token_mean"
    seq_mean_token_mean = "seq_mean_token_mean"
    seq_mean_token_sum_norm = "seq_mean_token_sum_norm"


class KLEstimator(Choice):
    k1 = "k1"
    k2 = "k2"
    k3 = "k3"


class Truncation(Choice):
    keep = "keep"
    #: no loss on truncated completions
    mask = "mask"
    #: add truncation_penalty to the reward
    penalty = "penalty"


class OffPolicy(Choice):
    none = "none"
    ratio = "ratio"
    tis = "tis"


@dataclass
class SFTConfig:
    """Supervised fine-tuning: negative log-likelihood of the completion tokens."""

    component: ClassVar[str] = "rlkit.algorithms.sft:SFT"

    max_length: int = field(default=512, metadata=at_least(2))
    #: Pack several samples per row (no attention across them, positions restart).
    packing: bool = False


@dataclass
class PreferenceConfig:
    """Options of every pairwise preference loss (rlkit.algorithms.preference); a loss's
    ``Config`` derives from it."""

    #: Starts from the cached SFT warm start on the untrained built-in model (rlkit.models.warm_start).
    starts_from_warm_start: ClassVar[bool] = True

    #: Tokens per row (prompt + completion + EOS); a longer prompt keeps its end.
    max_length: int = field(default=512, metadata=at_least(2))
    #: Mean instead of sum of the completion tokens' log-probabilities.
    average_logprobs: bool = False
    #: Reference checkpoint (same tokenizer); None: the initial policy.
    ref_name_or_path: Optional[str] = None
    #: Compute each pair's reference log-probabilities once and reuse them; False:
    #: recompute them in every forward pass.
    precompute_ref: bool = True


@dataclass
class DPOConfig(PreferenceConfig):
    """Direct preference optimisation against a frozen reference (sigmoid, hinge, IPO or robust loss)."""

    component: ClassVar[str] = "rlkit.algorithms.dpo:DPO"

    beta: float = field(default=0.1, metadata=above(0))
    #: sigmoid | hinge | ipo | robust (formulas in rlkit.algorithms.losses.dpo_loss).
    loss_type: DPOLoss = DPOLoss.sigmoid
    #: e of sigmoid (cDPO) and robust (rDPO, e < 0.5); must be 0 for hinge and ipo.
    label_smoothing: float = field(default=0.0, metadata=between(0, 1))
    #: Weight of the per-token NLL of the chosen completions added to the loss (0: off).
    nll_weight: float = field(default=0.0, metadata=at_least(0))


@dataclass
class RMConfig:
    """Reward modelling: a scalar head trained on preference pairs (Bradley-Terry loss)."""

    component: ClassVar[str] = "rlkit.algorithms.rm:RewardModelling"
    #: Starts from the cached SFT warm start on the untrained built-in model (rlkit.models.warm_start).
    starts_from_warm_start: ClassVar[bool] = True

    max_length: int = field(default=512, metadata=at_least(2))
    #: c of the centring term c (r_c + r_r)^2, which keeps rewards near zero (0: off).
    center_coef: float = field(default=0.0, metadata=at_least(0))


@dataclass
class SamplingConfig:
    """How the generator samples completions during training."""

    temperature: float = field(default=1.0, metadata=above(0))
    top_p: float = field(default=1.0, metadata=between(0, 1))
    #: 0: no top-k filtering.
    top_k: int = field(default=0, metadata=at_least(0))
    max_new_tokens: int = field(default=16, metadata=at_least(1))
    stop: list[str] = field(default_factory=list)

    def params(self, n: int) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_p, self.top_k, self.max_new_tokens, tuple(self.stop), n)


@dataclass
class GRPOConfig:
    """GRPO and relatives (Dr. GRPO, DAPO, GSPO, RLOO): group-relative advantages, clipped policy loss."""

    component: ClassVar[str] = "rlkit.algorithms.grpo:GRPO"
    #: Starts from the cached SFT warm start on the untrained built-in model (rlkit.models.warm_start).
    starts_from_warm_start: ClassVar[bool] = True

    #: Completions per prompt (>= 2: advantages are relative to the group).
    group_size: int = field(default=8, metadata=at_least(2))
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    #: mean | loo (leave-one-out, as RLOO)
    baseline: Baseline = Baseline.mean
    #: group | batch | none (Dr. GRPO)
    scale: AdvantageScale = AdvantageScale.group
    #: token | sequence (GSPO)
    level: RatioLevel = RatioLevel.token
    eps_low: float = field(default=0.2, metadata=between(0, 1))
    eps_high: float = field(default=0.2, metadata=at_least(0))
    #: Dual clip c > 1 for negative advantages (null: off).
    dual_clip: Optional[float] = field(default=None, metadata=above(1))
    #: token_mean | seq_mean_token_mean | seq_mean_token_sum_norm
    aggregation: Aggregation = Aggregation.token_mean
    #: KL weight; the reference model is only loaded when it is > 0.
    kl_beta: float = field(default=0.0, metadata=at_least(0))
    #: k1 | k2 | k3
    kl_estimator: KLEstimator = KLEstimator.k3
    ref_name_or_path: Optional[str] = None
    #: Passes over each rollout batch, and optimizer updates per pass.
    epochs: int = field(default=1, metadata=at_least(1))
    minibatches: int = field(default=1, metadata=at_least(1))
    #: Drop groups whose rewards are all equal (no signal) and refill with new prompts.
    dynamic_sampling: bool = False
    max_sampling_rounds: int = field(default=4, metadata=at_least(1))
    #: keep | mask (no loss on truncated completions) | penalty (add truncation_penalty to the reward)
    truncation: Truncation = Truncation.keep
    truncation_penalty: float = -1.0
    #: Completions per held-out prompt for pass@k (1: greedy accuracy only).
    eval_k: int = field(default=1, metadata=at_least(1))
    #: Correction for rollouts sampled by older weights (asynchronous rollouts,
    #: cluster.async_rollouts): none | ratio (the clipped ratio is taken against the
    #: generator's log-probabilities, the behaviour policy) | tis (each token's loss is
    #: weighted by the truncated importance weight min(exp(old - generator), tis_cap)).
    off_policy: OffPolicy = OffPolicy.none
    tis_cap: float = field(default=2.0, metadata=above(0))


@dataclass
class PPOConfig:
    """PPO with a value model: GAE advantages, clipped policy and value losses."""

    component: ClassVar[str] = "rlkit.algorithms.ppo:PPO"
    #: Starts from the cached SFT warm start on the untrained built-in model (rlkit.models.warm_start).
    starts_from_warm_start: ClassVar[bool] = True

    #: Completions per prompt (1 is classic PPO; more gives more data per prompt).
    samples_per_prompt: int = field(default=4, metadata=at_least(1))
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    gamma: float = field(default=1.0, metadata=between(0, 1))
    lam: float = field(default=0.95, metadata=between(0, 1))
    #: Whiten advantages over the valid tokens of the whole batch (all ranks).
    whiten_advantages: bool = True
    eps_low: float = field(default=0.2, metadata=between(0, 1))
    eps_high: float = field(default=0.2, metadata=at_least(0))
    dual_clip: Optional[float] = field(default=None, metadata=above(1))
    #: Value clip range around the old values.
    value_clip: float = field(default=0.2, metadata=at_least(0))
    vf_coef: float = field(default=0.1, metadata=at_least(0))
    #: Per-token KL penalty (k1) in the reward; the reference model is only loaded when > 0.
    kl_coef: float = field(default=0.0, metadata=at_least(0))
    ref_name_or_path: Optional[str] = None
    #: Initial value model (e.g. a reward model); default: the policy's initial checkpoint.
    value_name_or_path: Optional[str] = None
    #: Value optimizer learning rate and gradient clip; default: ``trainer.lr`` / ``trainer.max_grad_norm``.
    value_lr: Optional[float] = field(default=None, metadata=above(0))
    value_max_grad_norm: Optional[float] = field(default=None, metadata=above(0))
    #: Passes over each rollout batch, and optimizer updates per pass (the clipped
    #: objective matters from the second update of a batch on).
    epochs: int = field(default=2, metadata=at_least(1))
    minibatches: int = field(default=2, metadata=at_least(1))
    #: Added to the score of completions cut at ``max_new_tokens``.
    truncation_penalty: float = 0.0
    #: Completions per held-out prompt for pass@k (1: greedy accuracy only).
    eval_k: int = field(default=1, metadata=at_least(1))
