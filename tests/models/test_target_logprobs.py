"""target_logprobs computes logits only from the first target column on: log-probs,
entropies and gradients equal those of the full-logits computation."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from rlkit.algorithms.losses import sequence_logprobs, sft_loss, token_entropy
from rlkit.data.collate import collate, pack, tokenize
from rlkit.models.forward import accepts_logits_to_keep, target_logprobs
from rlkit.types import Message

PROMPTS = ["What is 12 + 7?", "Compute 3 - 1, then add 40 to the result, please.", "Add 5 and 6."]
COMPLETIONS = ["19", "42", "The answer is 11"]


def full_logits_logprobs(model, batch, temperature=1.0):
    """The reference: logits of every position, then the target log-probs and entropies."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                   position_ids=batch.position_ids, use_cache=False).logits[:, :-1] / temperature
    mask = batch.target_mask[:, 1:]
    return sequence_logprobs(logits, batch.input_ids[:, 1:], mask), mask, token_entropy(logits.detach())


class NoLogitsToKeep(nn.Module):
    """A model whose forward does not take ``logits_to_keep`` (all logits, then sliced)."""

    def __init__(self, model):
        super().__init__()
        self.inner = model

    def forward(self, input_ids, attention_mask, position_ids, use_cache):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          use_cache=use_cache)


@pytest.fixture
def rows(tiny):
    _, tokenizer = tiny
    return [tokenize(tokenizer, (Message("user", p),) if i else p, c, 512)
            for i, (p, c) in enumerate(zip(PROMPTS, COMPLETIONS))]


@pytest.mark.parametrize("layout", ["padded", "packed"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_equal_to_full_logits_with_gradients(tiny, rows, layout, temperature):
    model, tokenizer = tiny
    batch = collate(rows, tokenizer.pad_token_id) if layout == "padded" else pack(rows, tokenizer.pad_token_id, 64)
    assert int(batch.target_mask[:, 1:].any(0).nonzero()[0]) > 0  # the fast path has columns to skip
    results = []
    for compute in (target_logprobs, full_logits_logprobs):
        model.zero_grad()
        if compute is target_logprobs:
            logps, mask, entropy = compute(model, batch, temperature, with_entropy=True)
        else:
            logps, mask, entropy = compute(model, batch, temperature)
        sft_loss(logps, mask, float(mask.sum())).backward()
        grads = [p.grad.clone() for p in model.parameters()]
        results.append((logps.detach(), entropy[mask], grads))
    (fast, fast_entropy, fast_grads), (slow, slow_entropy, slow_grads) = results
    assert fast.shape == slow.shape
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-6)
    torch.testing.assert_close(fast_entropy, slow_entropy, rtol=0, atol=1e-6)
    for a, b in zip(fast_grads, slow_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_models_without_logits_to_keep_get_the_same_result(tiny, rows):
    model, tokenizer = tiny
    batch = collate(rows, tokenizer.pad_token_id)
    wrapped = NoLogitsToKeep(model)
    assert accepts_logits_to_keep(model) and not accepts_logits_to_keep(wrapped)
    with torch.no_grad():
        torch.testing.assert_close(target_logprobs(wrapped, batch)[0], target_logprobs(model, batch)[0], rtol=0, atol=0)


def test_a_batch_without_targets_has_zero_logprobs(tiny, rows):
    model, tokenizer = tiny
    batch = collate(rows, tokenizer.pad_token_id)
    batch.target_mask[:] = False
    with torch.no_grad():
        logps, mask, entropy = target_logprobs(model, batch, with_entropy=True)
    assert logps.shape == mask.shape == entropy.shape == (len(rows), batch.input_ids.shape[1] - 1)
    assert not logps.any()


def test_a_trainable_model_and_its_frozen_copy_give_bitwise_equal_logprobs(tiny):
    """A frozen reference equal to the policy must score its pairs exactly as the policy does
    (DPO's step-0 ties, a zero KL), although PyTorch multiplies a weight that requires grad
    by another path than a frozen one."""
    model, tokenizer = tiny
    # Short answers after longer prompts, as in preference pairs: logits of the last few columns.
    batch = collate([tokenize(tokenizer, f"What is {a} + {b}?", str(a + b), 512) for a in range(10) for b in range(0, 10, 2)],
                    tokenizer.pad_token_id)
    frozen = copy.deepcopy(model).requires_grad_(False)
    assert next(model.parameters()).requires_grad
    with torch.no_grad():
        assert torch.equal(target_logprobs(model, batch)[0], target_logprobs(frozen, batch)[0])
