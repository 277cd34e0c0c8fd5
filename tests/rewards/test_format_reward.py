"""FormatReward: regex modes, flags, and construction errors."""

import pytest

from rlkit.rewards.format import FormatReward
from rlkit.types import Completion, PromptSample


def score(config: FormatReward.Config, *texts: str) -> list[float]:
    completions = [Completion(0, [0], text, [0.0], False) for text in texts]
    return FormatReward(config)([PromptSample(prompt="q")] * len(texts), completions).scores


def test_search_and_fullmatch():
    texts = ("<think>a</think> 4", "4")
    assert score(FormatReward.Config(pattern=r"<think>.*</think>", score=0.5), *texts) == [0.5, 0.0]
    assert score(FormatReward.Config(pattern=r"\d", mode="fullmatch"), *texts) == [0.0, 1.0]


def test_flags():
    text = "<THINK>\nx\n</THINK>"
    assert score(FormatReward.Config(pattern=r"<think>.*</think>"), text) == [0.0]
    config = FormatReward.Config(pattern=r"<think>.*</think>", flags=["DOTALL", "IGNORECASE"])
    assert score(config, text) == [1.0]


@pytest.mark.parametrize(
    "config, message",
    [
        (FormatReward.Config(pattern="(unclosed"), r"invalid pattern '\(unclosed'"),
        (FormatReward.Config(pattern="x", mode="match"), "mode must be one of"),
        (FormatReward.Config(pattern="x", flags=["DOTAL"]), r"unknown regex flags \['DOTAL'\]"),
        (FormatReward.Config(), "needs a pattern"),
    ],
)
def test_bad_config(config, message):
    with pytest.raises(ValueError, match=message):
        FormatReward(config)
