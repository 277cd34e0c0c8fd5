"""What online RL algorithms (GRPO, PPO, plugins) share: rollouts, the update plan, global
statistics, per-token metrics and evaluation.

A subclass states its idea -- advantages and the loss -- and uses:

* :meth:`OnlineAlgorithm.sample` -- ``n`` completions per prompt, scored by the reward (with
  ``env=``: ``n`` multi-turn episodes, observation tokens out of the loss mask);
* :meth:`OnlineAlgorithm.plan` -- ``epochs`` passes over a rollout batch, each split into
  ``minibatches`` optimizer updates (shuffled when there is more than one update);
* :meth:`OnlineAlgorithm.micro_chunks` -- an update's rows in micro-batches;
* :meth:`OnlineAlgorithm.no_grad_forward` -- old, reference or value forward passes over a
  batch, micro-batch by micro-batch on the device;
* :meth:`OnlineAlgorithm.global_moments` -- mean and variance over every data-parallel rank;
* :meth:`OnlineAlgorithm.token_metrics` -- entropy and the generator/trainer log-prob mismatch.

Its config has ``sampling`` (:class:`~rlkit.algorithms.config.SamplingConfig`), ``epochs``, ``minibatches`` and
``eval_k``; its micro-batches have a ``batch`` (:class:`~rlkit.data.collate.TokenBatch`),
whose completion tokens and sequences are the ``tokens`` and ``sequences`` totals that
``loss`` receives.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor

from rlkit.algorithms.base import Algorithm, TrainContext
from rlkit.algorithms.rollout import Rollouts, in_chunks, sample_rollouts
from rlkit.data.collate import TokenBatch, chunks
from rlkit.environments.evaluation import evaluate_episodes
from rlkit.environments.rollout import EpisodeRunner
from rlkit.trainer.evaluation import evaluate_prompts
from rlkit.types import PromptSample, SampleKind


class OnlineAlgorithm(Algorithm):
    sample_kind = SampleKind.PROMPT

    def __init__(self, config: Any, ctx: TrainContext):
        super().__init__(config, ctx)
        if ctx.reward is None and ctx.environment is None:
            raise ValueError(f"algo={type(self).__name__.lower()} needs a reward: add e.g. reward=math")
        #: Multi-turn episodes in ``env=`` (None: one completion per rollout).
        self.episodes = EpisodeRunner(ctx.environment, ctx.generator, ctx.tokenizer) if ctx.environment else None

    def sample(self, prompts: Sequence[PromptSample], n: int, truncation_penalty: float = 0.0) -> Rollouts:
        """``n`` completions (with ``env=``: episodes) of each prompt with their rewards
        (``truncation_penalty`` added to those cut at ``max_new_tokens``) and the rollout metrics."""
        return sample_rollouts(self.ctx, prompts, self.config.sampling.params(n), truncation_penalty, self.episodes)

    def plan(self, num_rows: int, update: Callable[[list[int]], list[Any]]) -> list[list[Any]]:
        """``epochs`` x ``minibatches`` updates, ``update(rows)`` building each one's micro-batches.
        With more than one update the rows are shuffled every epoch."""
        cfg = self.config
        several = cfg.epochs * cfg.minibatches > 1
        generator = torch.Generator().manual_seed(int(torch.randint(2**31, (1,))))
        updates = []
        for _ in range(cfg.epochs):
            order = torch.randperm(num_rows, generator=generator) if several else torch.arange(num_rows)
            updates += [update(rows.tolist()) for rows in order.chunk(cfg.minibatches)]
        return updates

    def micro_chunks(self, rows: list[int]) -> list[list[int]]:
        """``rows`` in micro-batches of ``trainer.micro_batch_size``."""
        return chunks(rows, self.ctx.trainer.micro_batch_size)

    def no_grad_forward(self, fn: Callable[[TokenBatch], Tensor], batch: TokenBatch) -> Tensor:
        """``fn`` (a forward pass returning per-row tensors) over ``batch`` without gradients,
        a micro-batch at a time on the device; the result on the CPU."""
        return in_chunks(fn, batch, self.ctx.trainer.micro_batch_size, self.ctx.backend.device)

    def counts(self, micro_batch: Any) -> dict[str, float]:
        """Completion tokens and non-empty completions of the micro-batch."""
        mask = micro_batch.batch.target_mask[:, 1:]
        return {"tokens": float(mask.sum()), "sequences": float((mask.sum(-1) > 0).sum())}

    def global_moments(self, values: Tensor, mask: Optional[Tensor] = None) -> tuple[float, float]:
        """Mean and unbiased variance of ``values`` (where ``mask``) over all data-parallel ranks."""
        backend = self.ctx.backend
        mask = torch.ones_like(values, dtype=torch.bool) if mask is None else mask
        n = backend.all_reduce_sum(float(mask.sum()))
        mean = backend.all_reduce_sum(float((values * mask).sum())) / max(n, 1.0)
        squares = backend.all_reduce_sum(float((((values - mean) * mask) ** 2).sum()))
        return mean, squares / max(n - 1, 1.0)

    @staticmethod
    def token_metrics(logps: Tensor, generator_logps: Tensor, entropy: Tensor, mask: Tensor,
                      tokens: float) -> dict[str, float]:
        """This micro-batch's share (over the update's ``tokens``) of the mean next-token
        entropy and of the mean absolute difference between the trainer's and the
        generator's log-probabilities of the sampled tokens."""
        mismatch = (logps.detach() - generator_logps).abs()
        return {"entropy": float((entropy * mask).sum()) / tokens,
                "mismatch/logprob_abs_diff": float((mismatch * mask).sum()) / tokens}

    def evaluate(self, samples: Sequence[PromptSample]) -> dict[str, float]:
        cfg = self.config
        if self.episodes is not None:
            return evaluate_episodes(self.episodes, samples, self.ctx.reward, self.ctx.judge,
                                     self.ctx.trainer.eval_max_new_tokens, k=cfg.eval_k,
                                     sampling=cfg.sampling.params(cfg.eval_k))
        return evaluate_prompts(self.ctx.generator, samples, self.ctx.reward, self.ctx.judge,
                                self.ctx.trainer.eval_max_new_tokens, k=cfg.eval_k, sampling=cfg.sampling.params(cfg.eval_k))
