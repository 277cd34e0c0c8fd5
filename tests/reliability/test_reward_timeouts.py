"""Reward time limits: a hung scoring call is abandoned and handled by ``on_error``."""

from __future__ import annotations

import threading
import time

import pytest

from rlkit.rewards.base import RewardError
from rlkit.rewards.python import CallableReward
from rlkit.types import Completion, PromptSample

#: Released at teardown, so the threads left behind by the hung calls end with the test.
RELEASE = threading.Event()


def hangs_on_request(sample: PromptSample, completion: Completion) -> float:
    """Scores the completion's length; a completion saying "hang" never returns (until released)."""
    if completion.text == "hang":
        RELEASE.wait()
    return float(len(completion.text))


def slow(sample: PromptSample, completion: Completion) -> float:
    time.sleep(0.2)
    return 1.0


@pytest.fixture(autouse=True)
def release_hung_calls():
    RELEASE.clear()
    yield
    RELEASE.set()


def score(texts: list[str], function: str = "hangs_on_request", **config):
    reward = CallableReward(CallableReward.Config(function=f"{__name__}:{function}", **config))
    completions = [Completion(i, [0], text, [0.0], False) for i, text in enumerate(texts)]
    return reward([PromptSample(prompt="q")] * len(texts), completions)


def test_hung_sample_is_abandoned_and_scores_zero_with_on_error_zero():
    start = time.monotonic()
    out = score(["ab", "hang", "abcd"], sample_timeout_s=0.3, on_error="zero")
    assert time.monotonic() - start < 2.0
    assert out.scores == [2.0, 0.0, 4.0]  # the sample after the hung one is still scored
    assert out.failures == 1


def test_hung_sample_raises_naming_the_limit_with_on_error_raise():
    with pytest.raises(RewardError, match=r"failed on sample 1 .*RewardTimeout: .*reward.sample_timeout_s=0.3"):
        score(["ab", "hang", "abcd"], sample_timeout_s=0.3)


def test_batch_limit_fails_the_samples_left_unscored():
    out = score(["a"] * 10, function="slow", timeout_s=0.5, on_error="zero")
    scored = sum(s == 1.0 for s in out.scores)
    assert 1 <= scored <= 4 and out.failures == 10 - scored
    assert out.scores == [1.0] * scored + [0.0] * (10 - scored)  # the first ones, in order


def test_batch_limit_stops_a_hung_call_too():
    with pytest.raises(RewardError, match=r"reward.timeout_s=0.3 for the batch"):
        score(["hang", "a"], timeout_s=0.3)


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="reward.sample_timeout_s must be a positive number"):
        score(["a"], sample_timeout_s=0)


def fails(sample: PromptSample, completion: Completion) -> float:
    raise ArithmeticError("no score for you")


def test_errors_of_the_function_still_name_the_sample_with_a_limit_set():
    with pytest.raises(RewardError, match=r"failed on sample 0 .*ArithmeticError: no score for you"):
        score(["a"], function="fails", timeout_s=5)
