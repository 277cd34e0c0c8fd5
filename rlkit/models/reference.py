"""The frozen reference policy of DPO and KL-regularised RL.

Three ways to get one, cheapest first:

* LoRA training: the policy with its adapters disabled (no second copy of the weights);
* a frozen copy of the initial policy;
* a separate checkpoint (``ref_name_or_path``).
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch
from torch import Tensor, nn

from rlkit.backends.base import Backend
from rlkit.config import ModelConfig
from rlkit.data.collate import TokenBatch
from rlkit.models.forward import target_logprobs
from rlkit.models.loading import frozen_copy, is_lora, load_causal_lm


class ReferencePolicy:
    def __init__(self, policy: nn.Module, backend: Backend, model: ModelConfig, path: str | None = None):
        self.policy = policy
        if path is not None:
            reference = load_causal_lm(ModelConfig(name_or_path=path, dtype=model.dtype, trust_remote_code=model.trust_remote_code))
            self.model = backend.wrap(frozen_copy(reference), trainable=False)
        elif is_lora(policy):
            self.model = None
        else:
            # The initial policy, read again from its checkpoint rather than copied from the
            # policy: a wrapped (sharded) policy cannot be deep-copied, and after a resume
            # the policy holds trained weights, not the initial ones.
            initial = dataclasses.replace(model, lora=dataclasses.replace(model.lora, enabled=False),
                                          gradient_checkpointing=False)
            dtype = next(policy.parameters()).dtype
            self.model = backend.wrap(load_causal_lm(initial).to(dtype).eval().requires_grad_(False), trainable=False)

    @torch.no_grad()
    def logprobs(self, batch: TokenBatch, temperature: float = 1.0) -> Tensor:
        """Per-target log-probabilities under the reference, ``[B, T-1]``."""
        if self.model is not None:
            return target_logprobs(self.model, batch, temperature)[0]
        with self._adapters_disabled():
            return target_logprobs(self.policy, batch, temperature)[0]

    @contextlib.contextmanager
    def _adapters_disabled(self):
        was_training = self.policy.training
        self.policy.eval()
        try:
            with self.policy.disable_adapter():
                yield
        finally:
            self.policy.train(was_training)
