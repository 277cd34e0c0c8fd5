"""CallableReward: functions named as "module:function", scalar and part results."""

import pytest

from rlkit.rewards.python import CallableReward
from rlkit.types import Completion, PromptSample

# This module is imported by pytest under __name__, so functions below are reachable as
# f"{__name__}:<function>" whatever the import mode.


def length_bonus(sample: PromptSample, completion: Completion, per_char: float = 1.0) -> float:
    return per_char * len(completion.text)


def two_parts(sample: PromptSample, completion: Completion) -> dict[str, float]:
    parts = {"exact": float(completion.text == sample.answer)}
    if completion.text:
        parts["nonempty"] = 0.5
    return parts


NOT_CALLABLE = 3


def run(config: CallableReward.Config, samples: list[PromptSample], texts: list[str]):
    completions = [Completion(i, [0], text, [0.0], False) for i, text in enumerate(texts)]
    return CallableReward(config)(samples, completions)


def test_scalar_function_with_kwargs():
    config = CallableReward.Config(function=f"{__name__}:length_bonus", kwargs={"per_char": 0.5})
    out = run(config, [PromptSample(prompt="q")] * 2, ["abcd", ""])
    assert out.scores == [2.0, 0.0] and out.parts == {}


def test_parts_are_summed_and_reported():
    config = CallableReward.Config(function=f"{__name__}:two_parts")
    out = run(config, [PromptSample(prompt="q", answer="yes")] * 3, ["yes", "no", ""])
    assert out.scores == [1.5, 0.5, 0.0]
    assert out.parts == {"exact": [1.0, 0.0, 0.0], "nonempty": [0.5, 0.5, 0.0]}


@pytest.mark.parametrize(
    "function, message",
    [
        ("no_colon", r"'no_colon': expected 'package.module:function'"),
        (
            "rlkit_no_such_module:f",
            r"'rlkit_no_such_module:f': cannot import .*ModuleNotFoundError",
        ),
        ("math:no_such_function", r"'math:no_such_function': module 'math' has no attribute"),
        (f"{__name__}:NOT_CALLABLE", "int object is not callable"),
    ],
)
def test_import_errors_name_the_function(function, message):
    with pytest.raises(ImportError, match=message):
        CallableReward(CallableReward.Config(function=function))
