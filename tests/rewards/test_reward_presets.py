"""Every built-in reward composes as its config option with the overrides its docs give, and scores."""

import pytest

from rlkit.config import typed_run_config
from rlkit.build import build_reward, resolve_components
from rlkit.types import Completion, PromptSample


@pytest.mark.parametrize("overrides, expected", [
    (["reward=math", "reward.on_error=zero"], {"score": 1.0}),
    (["reward=format", "reward.pattern= so "], {"score": 1.0}),
    (["reward=callable", "reward.function=tests.rewards.test_reward_presets:length"], {"score": 4.0}),
    (["reward=combined", 'reward.rewards=[{name: math, weight: 1.0}, {name: format, pattern: "so", weight: 0.1}]'],
     {"score": 1.1, "parts": {"math": [1.0], "format": [1.0]}}),
])
def test_reward_presets_build_and_score(compose, overrides, expected):
    reward = build_reward(resolve_components(typed_run_config(compose(["algo=grpo", *overrides])))["reward"])
    sample = PromptSample("What is 47 + 38?", answer="85")
    completion = Completion(prompt_index=0, token_ids=[], text="7+8=15 4+3+1=8 so 85", logprobs=[], truncated=False)
    out = reward([sample], [completion])
    assert out.scores == pytest.approx([expected["score"]])
    for part, values in expected.get("parts", {}).items():
        assert out.parts[part] == pytest.approx(values)


def length(sample, completion) -> float:
    return float(len(completion.text.split()))
