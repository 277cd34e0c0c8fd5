"""DPO: the reference policy, cached reference log-probs, global denominators, end to end.

The loss formulas themselves are tested in test_losses.py.
"""

from __future__ import annotations

import copy

import pytest
import torch

from rlkit.algorithms.base import TrainContext
from rlkit.algorithms.dpo import DPO
from rlkit.backends.single import SingleBackend
from rlkit.config import LoraConfig, ModelConfig, TrainerConfig
from rlkit.data.arithmetic import ArithmeticTask
from rlkit.loggers.jsonl import read_metrics
from rlkit.models.forward import target_logprobs
from rlkit.models.loading import load_causal_lm
from rlkit.launch import train
from rlkit.trainer.update import update_totals
from rlkit.types import SampleKind


@pytest.fixture(scope="module")
def pairs():
    task = ArithmeticTask(ArithmeticTask.Config(train_size=16, eval_size=8))
    return task.load("train", SampleKind.PREFERENCE)[:8]


def make_dpo(policy, tokenizer, model_dir, micro_batch_size=8, micro_batch_tokens=0, **config) -> DPO:
    ctx = TrainContext(policy=policy, tokenizer=tokenizer, backend=SingleBackend(SingleBackend.Config(device="cpu")),
                       trainer=TrainerConfig(micro_batch_size=micro_batch_size, eval_batch_size=micro_batch_size,
                                             micro_batch_tokens=micro_batch_tokens),
                       model=ModelConfig(name_or_path=str(model_dir)))
    return DPO(DPO.Config(max_length=64, **config), ctx)


def perturb_(model, scale=0.02, seed=0):
    """Move ``model`` away from its initial weights, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return model


def run_update(algorithm, samples):
    """Loss, summed metrics and gradients of one update over ``samples``."""
    policy = algorithm.ctx.policy
    policy.zero_grad()
    metrics: dict[str, float] = {}
    update = algorithm.prepare(samples).updates[0]
    totals = update_totals(algorithm, update, algorithm.ctx.backend)
    for micro in update:
        out = algorithm.loss(micro, totals)
        out.loss.backward()
        for key, value in {"loss": out.loss.item(), **out.metrics}.items():
            metrics[key] = metrics.get(key, 0.0) + value
    return metrics, {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}


def test_policy_equal_to_reference_gives_log2_and_chance_accuracy(tiny, tiny_model_dir, pairs):
    dpo = make_dpo(copy.deepcopy(tiny[0]), tiny[1], tiny_model_dir)
    metrics, _ = run_update(dpo, pairs)
    assert metrics["loss"] == pytest.approx(torch.log(torch.tensor(2.0)).item(), rel=1e-6)
    assert metrics["rewards/margin"] == 0 and metrics["rewards/accuracy"] == 0.5


@pytest.mark.parametrize("loss_type, nll_weight, micro_batch_tokens",
                         [("sigmoid", 0.5, 0), ("ipo", 0.0, 0), ("robust", 0.0, 0), ("sigmoid", 0.5, 100)])
def test_update_does_not_depend_on_micro_batch_split(tiny, tiny_model_dir, pairs, loss_type, nll_weight,
                                                     micro_batch_tokens):
    """Split in 4 micro-batches of 2 pairs, or (trainer.micro_batch_tokens) grouped by length."""
    policy = copy.deepcopy(tiny[0]).double()
    options = dict(loss_type=loss_type, nll_weight=nll_weight, label_smoothing=0.1 if loss_type == "robust" else 0.0)
    whole = make_dpo(policy, tiny[1], tiny_model_dir, 8, **options)
    split = make_dpo(policy, tiny[1], tiny_model_dir, 8 if micro_batch_tokens else 2, micro_batch_tokens, **options)
    assert len(split.prepare(pairs).updates[0]) > 1
    perturb_(policy)
    metrics_1x8, grads_1x8 = run_update(whole, pairs)
    metrics_4x2, grads_4x2 = run_update(split, pairs)
    assert metrics_1x8["rewards/margin"] != 0
    assert metrics_4x2 == pytest.approx(metrics_1x8, rel=1e-9, abs=1e-12)
    for name, grad in grads_1x8.items():
        torch.testing.assert_close(grads_4x2[name], grad, rtol=1e-9, atol=1e-12, msg=name)


def test_precomputed_reference_equals_on_the_fly(tiny, tiny_model_dir, pairs):
    policy = copy.deepcopy(tiny[0])
    cached = make_dpo(policy, tiny[1], tiny_model_dir, 4, precompute_ref=True)
    fresh = make_dpo(policy, tiny[1], tiny_model_dir, 4, precompute_ref=False)
    perturb_(policy)
    cached_micro = cached.prepare(pairs).updates[0]
    fresh_micro = fresh.prepare(pairs).updates[0]
    assert all(m.ref_logps is None for m in fresh_micro)
    totals = update_totals(cached, cached_micro, cached.ctx.backend)
    for a, b in zip(cached_micro, fresh_micro):
        assert torch.equal(a.ref_logps, fresh.reference_logps(b.pairs.tokens))
        assert cached.loss(a, totals).metrics == fresh.loss(b, totals).metrics

    # Train the policy further: the reference stays the initial policy, and the cache (now
    # read in other batches) still holds its log-probs.
    perturb_(policy, seed=1)
    regrouped = cached.prepare(pairs[::-1][:5]).updates[0]
    for micro in regrouped:
        torch.testing.assert_close(micro.ref_logps, fresh.reference_logps(micro.pairs.tokens), rtol=0, atol=1e-5, check_dtype=False)
    assert cached.evaluate(pairs) == pytest.approx(fresh.evaluate(pairs), abs=1e-5)


def test_lora_reference_is_the_base_model_with_adapters_disabled(tiny, tiny_model_dir, pairs):
    config = ModelConfig(name_or_path=str(tiny_model_dir), lora=LoraConfig(enabled=True, r=4))
    policy = load_causal_lm(config)
    with torch.no_grad():  # LoRA's B starts at 0; make the adapters change the outputs
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    dpo = make_dpo(policy, tiny[1], tiny_model_dir, precompute_ref=False)
    base = make_dpo(tiny[0], tiny[1], tiny_model_dir)
    micro = dpo.prepare(pairs).updates[0][0]
    reference = dpo.reference_logps(micro.pairs.tokens)
    assert dpo.reference.model is None  # no second copy of the weights
    assert torch.equal(reference, policy_logps(base, micro.pairs))
    assert not torch.allclose(reference, policy_logps(dpo, micro.pairs))


def policy_logps(algorithm, pairs):
    """Completion log-probabilities of ``pairs`` under the algorithm's policy."""
    with torch.no_grad():
        logps, mask, _ = target_logprobs(algorithm.ctx.policy, pairs.tokens)
    return algorithm.sequence_logps(logps, mask)


def test_separate_reference_checkpoint(tiny, tiny_model_dir, pairs):
    dpo = make_dpo(perturb_(copy.deepcopy(tiny[0])), tiny[1], tiny_model_dir, ref_name_or_path=str(tiny_model_dir))
    base = make_dpo(tiny[0], tiny[1], tiny_model_dir)
    micro = dpo.prepare(pairs).updates[0][0]
    torch.testing.assert_close(micro.ref_logps, policy_logps(base, micro.pairs), check_dtype=False)


def test_ipo_is_the_same_with_summed_or_averaged_logprobs(tiny, tiny_model_dir, pairs):
    policy = copy.deepcopy(tiny[0]).double()
    summed, averaged = (make_dpo(policy, tiny[1], tiny_model_dir, loss_type="ipo", average_logprobs=average)
                        for average in (False, True))
    perturb_(policy)
    summed, _ = run_update(summed, pairs)
    averaged, _ = run_update(averaged, pairs)
    assert averaged["loss"] == pytest.approx(summed["loss"], rel=1e-9)


def test_bad_options_fail_at_construction(tiny, tiny_model_dir):
    with pytest.raises(ValueError, match="loss_type must be one of"):
        make_dpo(tiny[0], tiny[1], tiny_model_dir, loss_type="logistic")
    with pytest.raises(ValueError, match="label_smoothing is not used by hinge"):
        make_dpo(tiny[0], tiny[1], tiny_model_dir, loss_type="hinge", label_smoothing=0.1)


@pytest.mark.slow
def test_dpo_learns_held_out_preferences(compose, sft_run, tmp_path):
    cfg = compose(["algo=dpo", f"model.name_or_path={sft_run.final}", *sft_run.overrides, "trainer.batch_size=64",
                   "trainer.micro_batch_size=64", "trainer.lr=3e-4", "trainer.warmup_steps=5", "trainer.max_steps=30",
                   "trainer.eval_every=30"])
    final = train(cfg, tmp_path)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert records[0]["step"] == 0 and records[0]["eval/pref_accuracy"] == 0.5  # policy == reference
    steps = [r for r in records if "rewards/accuracy" in r]
    assert len(steps) == 30 and {"loss", "nll", "rewards/chosen", "rewards/rejected", "rewards/margin"} <= set(steps[0])
    assert steps[-1]["rewards/margin"] > 0 and steps[-1]["loss"] < steps[0]["loss"]
    assert final["eval/pref_accuracy"] >= 0.9 and final["eval/loss"] < records[0]["eval/loss"]
    assert (tmp_path / "final" / "model.safetensors").exists()
