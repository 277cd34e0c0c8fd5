"""Reward modelling: a scalar head read at the last real token, Bradley-Terry with margins,
global denominators, and training end to end into a model that loads as a reward."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from rlkit.algorithms.base import TrainContext
from rlkit.algorithms.rm import RewardModelling
from rlkit.backends.single import SingleBackend
from rlkit.config import LoraConfig, ModelConfig, TrainerConfig, typed_run_config
from rlkit.data.collate import collate, tokenize
from rlkit.data.pairs import pair_batches
from rlkit.loggers.jsonl import read_metrics
from rlkit.models.forward import forward_logits
from rlkit.models.loading import export_pretrained, load_model
from rlkit.rewards.reward_model import RewardModelReward
from rlkit.build import resolve_components
from rlkit.launch import train
from rlkit.trainer.update import update_totals
from rlkit.types import Completion, Message, PreferenceSample, PromptSample, SampleKind


@pytest.fixture(scope="module")
def reward_model(tiny_model_dir, tiny):
    torch.manual_seed(0)  # the new head's initial weights
    return load_model(ModelConfig(name_or_path=str(tiny_model_dir)), "sequence_classification",
                      pad_token_id=tiny[1].pad_token_id)


PAIRS = [
    PreferenceSample((Message("user", "What is 2 + 3?"),), "5", "6", margin=1.0),
    PreferenceSample("Q: What is 12 - 30?\nA:", " -18", " -8"),
    PreferenceSample((Message("user", "Name a colour."),), "Blue, like the sky at noon.", "No", margin=0.5),
    PreferenceSample((Message("user", "What is 7 + 8?"),), "15", "51"),
]


def make_rm(model, tokenizer, micro_batch_size=4, center_coef=0.0, micro_batch_tokens=0) -> RewardModelling:
    ctx = TrainContext(policy=model, tokenizer=tokenizer, backend=SingleBackend(SingleBackend.Config(device="cpu")),
                       trainer=TrainerConfig(micro_batch_size=micro_batch_size, eval_batch_size=micro_batch_size,
                                             micro_batch_tokens=micro_batch_tokens),
                       model=ModelConfig())
    return RewardModelling(RewardModelling.Config(max_length=64, center_coef=center_coef), ctx)


def alone(model, tokenizer, prompt, completion) -> float:
    """The score of one unpadded sequence."""
    batch = collate([tokenize(tokenizer, prompt, completion, 64)], tokenizer.pad_token_id)
    with torch.no_grad():
        return forward_logits(model, batch).item()


def test_scalar_head_needs_and_records_the_pad_id(reward_model, tiny, tiny_model_dir):
    assert reward_model.config.num_labels == 1
    assert reward_model.config.pad_token_id == tiny[1].pad_token_id != tiny[1].eos_token_id
    with pytest.raises(ValueError, match="pad_token_id"):
        load_model(ModelConfig(name_or_path=str(tiny_model_dir)), "sequence_classification")
    with pytest.raises(ValueError, match="unknown model kind 'value'"):
        load_model(ModelConfig(name_or_path=str(tiny_model_dir)), "value")


def test_score_is_read_at_the_last_real_token(reward_model, tiny):
    rm = make_rm(reward_model, tiny[1])
    (pairs,) = pair_batches(tiny[1], PAIRS, 4, 64)
    assert (pairs.tokens.input_ids == tiny[1].pad_token_id).any()  # rows of different lengths
    with torch.no_grad():
        _, chosen, rejected = rm.score(pairs)
    expected_chosen = [alone(reward_model, tiny[1], s.prompt, s.chosen) for s in PAIRS]
    expected_rejected = [alone(reward_model, tiny[1], s.prompt, s.rejected) for s in PAIRS]
    torch.testing.assert_close(chosen, torch.tensor(expected_chosen), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rejected, torch.tensor(expected_rejected), rtol=1e-5, atol=1e-5)


def test_loss_is_bradley_terry_with_row_margins_and_centring(reward_model, tiny):
    rm = make_rm(reward_model, tiny[1], center_coef=0.01)
    [[micro]] = rm.prepare(PAIRS).updates
    out = rm.loss(micro, rm.counts(micro))
    r_c = torch.tensor([alone(reward_model, tiny[1], s.prompt, s.chosen) for s in PAIRS])
    r_r = torch.tensor([alone(reward_model, tiny[1], s.prompt, s.rejected) for s in PAIRS])
    margin = torch.tensor([1.0, 0.0, 0.5, 0.0])
    expected = (-F.logsigmoid(r_c - r_r - margin) + 0.01 * (r_c + r_r) ** 2).mean()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.metrics["accuracy"] == ((r_c > r_r).float().mean() + 0.5 * (r_c == r_r).float().mean()).item()
    assert out.metrics["rewards/margin"] == pytest.approx((r_c - r_r).mean().item(), abs=1e-5)


@pytest.mark.parametrize("split", [dict(micro_batch_size=1), dict(micro_batch_size=4, micro_batch_tokens=60)])
def test_update_does_not_depend_on_micro_batch_split(reward_model, tiny, split):
    """One pair per micro-batch, or (trainer.micro_batch_tokens) pairs grouped by length."""
    model = copy.deepcopy(reward_model).double()

    def update(micro_batch_size, micro_batch_tokens=0):
        rm = make_rm(model, tiny[1], micro_batch_size, center_coef=0.1, micro_batch_tokens=micro_batch_tokens)
        model.zero_grad()
        update = rm.prepare(PAIRS).updates[0]
        assert micro_batch_size == 4 and not micro_batch_tokens or len(update) > 1
        totals = update_totals(rm, update, rm.ctx.backend)
        total = sum(rm.loss(m, totals).loss for m in update)
        total.backward()
        return total.item(), {n: p.grad.clone() for n, p in model.named_parameters()}

    (loss_1x4, grads_1x4), (loss_4x1, grads_4x1) = update(4), update(**split)
    assert loss_4x1 == pytest.approx(loss_1x4, rel=1e-12)
    for name, grad in grads_1x4.items():
        torch.testing.assert_close(grads_4x1[name], grad, rtol=1e-9, atol=1e-12, msg=name)


def test_lora_reward_model_trains_its_head_and_exports_merged(tiny, tiny_model_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    config = ModelConfig(name_or_path=str(tiny_model_dir), lora=LoraConfig(enabled=True, r=4))
    model = load_model(config, "sequence_classification", pad_token_id=tiny[1].pad_token_id)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("score" in n for n in trainable) and any("lora_" in n for n in trainable)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.normal_(0, 0.1)
    export_pretrained(model, tiny[1], tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    prompt, completion = PAIRS[0].prompt, PAIRS[0].chosen
    assert alone(loaded, tiny[1], prompt, completion) == pytest.approx(alone(model, tiny[1], prompt, completion), abs=1e-5)


@pytest.mark.slow
def test_reward_model_from_an_sft_run_learns_held_out_preferences(compose, sft_run, tmp_path):
    from transformers import AutoModelForSequenceClassification

    cfg = compose(["algo=rm", f"model.name_or_path={sft_run.final}", *sft_run.overrides, "trainer.batch_size=128",
                   "trainer.micro_batch_size=128", "trainer.lr=1e-3", "trainer.warmup_steps=5", "trainer.max_steps=40",
                   "trainer.eval_every=40"])
    final = train(cfg, tmp_path)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert {"loss", "accuracy", "rewards/chosen", "rewards/rejected", "rewards/margin"} <= set(records[-2])
    assert final["eval/pref_accuracy"] >= 0.95 and final["eval/loss"] < records[0]["eval/loss"]

    # The export is a plain Hugging Face sequence classifier, and scores as a reward.
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "final")
    assert model.config.num_labels == 1 and model.config.architectures == ["LlamaForSequenceClassification"]
    held_out = resolve_components(typed_run_config(cfg))["data"].build().load("eval", SampleKind.PREFERENCE)
    reward = RewardModelReward(RewardModelReward.Config(path=str(tmp_path / "final"), device="cpu"))
    prompts = [PromptSample(p.prompt) for p in held_out]
    chosen = reward(prompts, [Completion(0, [], p.chosen, [], False) for p in held_out]).scores
    rejected = reward(prompts, [Completion(0, [], p.rejected, [], False) for p in held_out]).scores
    accuracy = sum(c > r for c, r in zip(chosen, rejected)) / len(held_out)
    assert accuracy >= 0.95
    assert accuracy == pytest.approx(final["eval/pref_accuracy"], abs=1 / len(held_out))
