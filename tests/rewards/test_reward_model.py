"""RewardModelReward: batched scores of a sequence-classification checkpoint, read as in
reward-model training, with the rewards' error convention."""

from __future__ import annotations

import logging

import pytest
import torch

from rlkit.config import ModelConfig
from rlkit.data.collate import tokenize
from rlkit.models.loading import export_pretrained, load_model
from rlkit.rewards.base import RewardError
from rlkit.rewards.reward_model import RewardModelReward
from rlkit.types import Completion, Message, PromptSample

SAMPLES = [
    PromptSample((Message("user", "What is 2 + 3?"),)),
    PromptSample("Q: What is 12 - 30?\nA:"),
    PromptSample((Message("system", "Be brief."), Message("user", "Name a colour."))),
]
TEXTS = ["5", " -18", "Blue, like the sky at noon."]


def completions(texts):
    return [Completion(i, [], text, [], False) for i, text in enumerate(texts)]


@pytest.fixture(scope="module")
def checkpoint(tiny, tiny_model_dir, tmp_path_factory):
    """A sequence-classification checkpoint (untrained head) as ``algo=rm`` saves one."""
    torch.manual_seed(0)
    model = load_model(ModelConfig(name_or_path=str(tiny_model_dir)), "sequence_classification",
                       pad_token_id=tiny[1].pad_token_id)
    directory = tmp_path_factory.mktemp("rm")
    export_pretrained(model, tiny[1], directory)
    return directory


def make(checkpoint, **config) -> RewardModelReward:
    return RewardModelReward(RewardModelReward.Config(path=str(checkpoint), device="cpu", **config))


def test_scores_are_the_models_scalar_at_the_last_token_in_any_batching(checkpoint):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    expected = []
    for sample, text in zip(SAMPLES, TEXTS):
        ids = tokenize(tokenizer, sample.prompt, text, 1024).input_ids
        with torch.no_grad():
            expected.append(model(input_ids=torch.tensor([ids])).logits.item())
    one_by_one = make(checkpoint, batch_size=1)(SAMPLES, completions(TEXTS))
    batched = make(checkpoint, batch_size=3)(SAMPLES, completions(TEXTS))
    assert one_by_one.scores == pytest.approx(expected, abs=1e-5)
    assert batched.scores == pytest.approx(expected, abs=1e-5)
    assert batched.failures == 0


def test_shift_and_scale(checkpoint):
    raw = make(checkpoint)(SAMPLES, completions(TEXTS)).scores
    scaled = make(checkpoint, shift=1.0, scale=4.0)(SAMPLES, completions(TEXTS)).scores
    assert scaled == pytest.approx([(r - 1.0) / 4.0 for r in raw], abs=1e-6)


def test_errors_raise_or_score_zero(checkpoint, caplog):
    broken = [SAMPLES[0], PromptSample(prompt=None), SAMPLES[2]]
    with pytest.raises(RewardError, match=r"RewardModelReward\(.*\) failed on sample 1"):
        make(checkpoint)(broken, completions(TEXTS))
    good = make(checkpoint)(SAMPLES, completions(TEXTS)).scores
    with caplog.at_level(logging.WARNING, logger="rlkit.rewards.reward_model"):
        out = make(checkpoint, on_error="zero")(broken, completions(TEXTS))
    assert out.failures == 1 and out.scores[1] == 0.0
    assert out.scores[0] == pytest.approx(good[0], abs=1e-5) and out.scores[2] == pytest.approx(good[2], abs=1e-5)
    assert "1 of 3 samples failed and scored 0" in caplog.text


def test_bad_config_and_mismatched_lengths(checkpoint):
    with pytest.raises(ValueError, match="on_error must be one of"):
        make(checkpoint, on_error="ignore")
    with pytest.raises(ValueError, match="2 samples but 3 completions"):
        make(checkpoint)(SAMPLES[:2], completions(TEXTS))
