"""The shared per-sample machinery: on_error, RewardError messages, result checks, schemas."""

import logging

import pytest
from omegaconf import OmegaConf

from rlkit.rewards.base import PerSampleReward, RewardError
from rlkit.rewards.combined import CombinedReward
from rlkit.rewards.format import FormatReward
from rlkit.rewards.math import MathVerifier
from rlkit.rewards.python import CallableReward
from rlkit.types import Completion, Message, PromptSample


class Picky(PerSampleReward):
    """Fails on completions containing "boom"; returns whatever else it is told to."""

    def score(self, sample: PromptSample, completion: Completion) -> float:
        if "boom" in completion.text:
            raise KeyError("boom")
        return {"nan": float("nan"), "str": "1"}.get(completion.text, 1.0)


def completions(*texts: str) -> list[Completion]:
    return [Completion(0, [0], text, [0.0], False) for text in texts]


def test_raise_names_reward_sample_and_cause():
    samples = [
        PromptSample(prompt="What is 2+2?"),
        PromptSample(prompt=(Message("user", "Say boom " * 20),)),
    ]
    with pytest.raises(RewardError) as info:
        Picky(Picky.Config())(samples, completions("fine", "boom"))
    message = str(info.value)
    assert message.startswith("reward Picky failed on sample 1 (prompt 'Say boom Say boom")
    assert "...', completion 'boom'): KeyError: 'boom'" in message
    assert isinstance(info.value.__cause__, KeyError) and info.value.index == 1


def test_zero_counts_failures_and_warns_once(caplog):
    samples = [PromptSample(prompt="q")] * 4
    with caplog.at_level(logging.WARNING, logger="rlkit.rewards.base"):
        out = Picky(Picky.Config(on_error="zero"))(samples, completions("boom", "ok", "nan", "str"))
    assert out.scores == [0.0, 1.0, 0.0, 0.0] and out.failures == 3
    assert len(caplog.records) == 1
    assert (
        "Picky: 3 of 4 samples failed and scored 0; first: reward Picky failed on sample 0"
        in caplog.text
    )


@pytest.mark.parametrize(
    "text, error", [("nan", "scores must be finite"), ("str", "must be real numbers")]
)
def test_bad_scores_are_errors(text, error):
    with pytest.raises(RewardError, match=error):
        Picky(Picky.Config())([PromptSample(prompt="q")], completions(text))


def test_config_and_length_checks():
    with pytest.raises(ValueError, match="on_error must be one of"):
        Picky(Picky.Config(on_error="ignore"))
    with pytest.raises(ValueError, match="2 samples but 1 completions"):
        Picky(Picky.Config())([PromptSample(prompt="q")] * 2, completions("a"))


@pytest.mark.parametrize("cls", [MathVerifier, FormatReward, CallableReward, CombinedReward])
def test_configs_are_omegaconf_schemas(cls):
    schema = OmegaConf.structured(cls.Config)
    overrides = {
        CombinedReward: {"rewards": [{"name": "math", "weight": 0.5}]},
        FormatReward: {"on_error": "zero", "pattern": "so"},  # pattern and function are mandatory
        CallableReward: {"on_error": "zero", "function": "math:floor"},
    }.get(cls, {"on_error": "zero"})
    merged = OmegaConf.to_object(OmegaConf.merge(schema, overrides))
    assert isinstance(merged, cls.Config)
