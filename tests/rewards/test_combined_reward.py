"""CombinedReward: weights, labels, parts and children built through build_child."""

from typing import Any

import pytest

from rlkit.rewards.base import Reward
from rlkit.rewards.combined import CombinedReward
from rlkit.rewards.format import FormatReward
from rlkit.rewards.math import MathVerifier
from rlkit.rewards.python import CallableReward
from rlkit.types import Completion, PromptSample

REGISTRY = {"math": MathVerifier, "format": FormatReward, "callable": CallableReward}


def build_child(node: dict[str, Any]) -> Reward:
    """A stand-in for the framework's registry lookup."""
    fields = dict(node)
    cls = REGISTRY[fields.pop("name")]
    return cls(cls.Config(**fields))


def half_and_half(sample: PromptSample, completion: Completion) -> dict[str, float]:
    return {"a": 0.5, "b": 0.5}


def test_weighted_sum_and_parts():
    config = CombinedReward.Config(
        rewards=[
            {"name": "math", "weight": 2.0},
            {"name": "format", "weight": 0.5, "pattern": r"\\boxed"},
            {"name": "format", "label": "short", "pattern": r".{0,15}", "mode": "fullmatch"},
            {"name": "callable", "weight": -1.0, "function": f"{__name__}:half_and_half"},
        ]
    )
    reward = CombinedReward(config, build_child=build_child)
    assert [(label, weight) for label, weight, _ in reward.children] == [
        ("math", 2.0),
        ("format", 0.5),
        ("short", 1.0),
        ("callable", -1.0),
    ]
    samples = [PromptSample(prompt="q", answer="4")] * 2
    texts = [r"it is \boxed{4}", "it is 5, I think so"]
    out = reward(samples, [Completion(0, [0], text, [0.0], False) for text in texts])
    assert out.scores == [2.0 + 0.5 + 1.0 - 1.0, -1.0]
    assert out.parts == {
        "math": [1.0, 0.0],
        "format": [1.0, 0.0],
        "short": [1.0, 0.0],
        "callable": [1.0, 1.0],
        "callable/a": [0.5, 0.5],
        "callable/b": [0.5, 0.5],
    }
    assert out.failures == 0


def test_children_failures_are_summed():
    config = CombinedReward.Config(
        rewards=[{"name": "math", "on_error": "zero"}, {"name": "format", "pattern": "x"}]
    )
    reward = CombinedReward(config, build_child=build_child)
    out = reward([PromptSample(prompt="q")], [Completion(0, [0], "x", [0.0], False)])
    assert out.scores == [1.0] and out.failures == 1


@pytest.mark.parametrize(
    "rewards, message",
    [
        ([], "at least one"),
        ([{"weight": 1.0}], r"rewards\[0\]: needs 'name'"),
        (
            [{"name": "math", "weight": "high"}],
            r"rewards\[0\] \(math\): weight must be a finite number",
        ),
        ([{"name": "math"}, {"name": "math"}], r"rewards\[1\]: label 'math' is used twice"),
    ],
)
def test_bad_entries(rewards, message):
    with pytest.raises(ValueError, match=message):
        CombinedReward(CombinedReward.Config(rewards=rewards), build_child=build_child)
