"""A learned reward: a model trained by ``algo=rm`` scores (prompt, completion) pairs.

Each pair is laid out exactly as in reward-model training (:func:`rlkit.data.collate.tokenize`:
the prompt rendered with the chat template, the completion text, EOS) with the reward
model's own tokenizer, so the policy may use a different one. The scalar is read at the last
real token, in batches of ``batch_size``, and reported as ``(r - shift) / scale``: set
``shift`` and ``scale`` to, e.g., the reward's mean and standard deviation on held-out data
to give it unit scale.

Errors follow the convention of :mod:`rlkit.rewards.base`: a pair that cannot be scored (a
prompt the chat template rejects, a non-finite score) raises ``RewardError`` naming it, or
with ``on_error="zero"`` scores 0 and is counted in ``failures``.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import torch

from rlkit.backends.single import pick_device
from rlkit.config import ModelConfig
from rlkit.data.collate import TokenizedSample, collate, tokenize
from rlkit.models.forward import forward_logits
from rlkit.models.loading import load_model, load_tokenizer
from rlkit.rewards.base import ON_ERROR, Reward, RewardError
from rlkit.rewards.config import RewardModelConfig
from rlkit.types import Completion, PromptSample, RewardOutput

_log = logging.getLogger(__name__)


class RewardModelReward(Reward):
    Config = RewardModelConfig

    def __init__(self, config: RewardModelConfig):
        self.config = config
        if config.on_error not in ON_ERROR:
            raise ValueError(f"{self.name}: on_error must be one of {ON_ERROR}, got {config.on_error!r}")
        if config.scale <= 0 or config.batch_size < 1:
            raise ValueError(f"{self.name}: scale must be > 0 and batch_size >= 1")
        model_config = ModelConfig(name_or_path=config.path, dtype=config.dtype)
        self.tokenizer = load_tokenizer(model_config)
        model = load_model(model_config, "sequence_classification", pad_token_id=self.tokenizer.pad_token_id)
        self.model = model.to(pick_device(config.device)).eval().requires_grad_(False)

    @property
    def name(self) -> str:
        return f"RewardModelReward({self.config.path})"

    @torch.no_grad()
    def __call__(self, samples: Sequence[PromptSample], completions: Sequence[Completion]) -> RewardOutput:
        if len(samples) != len(completions):
            raise ValueError(f"{self.name}: {len(samples)} samples but {len(completions)} completions")
        errors: list[RewardError] = []

        def fail(index: int, cause: Exception) -> None:
            error = RewardError(self.name, index, samples[index], completions[index], cause)
            if self.config.on_error == "raise":
                raise error from cause
            errors.append(error)

        rows: dict[int, TokenizedSample] = {}
        for index, (sample, completion) in enumerate(zip(samples, completions)):
            try:
                rows[index] = tokenize(self.tokenizer, sample.prompt, completion.text, self.config.max_length)
            except Exception as exc:  # any failure to lay out a pair is handled by on_error
                fail(index, exc)
        scores = [0.0] * len(samples)
        indices = list(rows)
        for start in range(0, len(indices), self.config.batch_size):
            chunk = indices[start : start + self.config.batch_size]
            batch = collate([rows[i] for i in chunk], self.tokenizer.pad_token_id).to(self.model.device)
            for index, value in zip(chunk, forward_logits(self.model, batch).squeeze(-1).tolist()):
                if math.isfinite(value):
                    scores[index] = (value - self.config.shift) / self.config.scale
                else:
                    fail(index, ValueError(f"scores must be finite, got {value}"))
        if errors:
            _log.warning("%s: %d of %d samples failed and scored 0; first: %s",
                         self.name, len(errors), len(samples), errors[0])
        return RewardOutput(scores=scores, failures=len(errors))
