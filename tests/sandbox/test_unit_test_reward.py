"""reward=python: completions run against HumanEval/MBPP unit tests in real sandboxes; the
score is the pass fraction, and code that misbehaves only fails its own sample."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rlkit.build import build_reward, resolve_components
from rlkit.config import typed_run_config
from rlkit.rewards.base import RewardError
from rlkit.sandbox import SandboxUnavailable
from rlkit.sandbox.unit_tests import UnitTests, humaneval_tests
from rlkit.types import Completion, PromptSample
from tests.data import hub_fixtures


def completion(text: str) -> Completion:
    return Completion(prompt_index=0, token_ids=[], text=text, logprobs=[], truncated=False)


def humaneval_sample(index: int) -> PromptSample:
    row = hub_fixtures.humaneval_rows()[index]
    return PromptSample(row["prompt"], metadata={k: row[k] for k in ("prompt", "test", "entry_point")})


def mbpp_sample(index: int) -> PromptSample:
    row = hub_fixtures.mbpp_rows()[index]
    return PromptSample(row["text"], metadata={k: row[k] for k in ("test_list", "test_setup_code", "challenge_test_list")})


@pytest.fixture(scope="module")
def resolved():
    """reward=python as `python -m rlkit algo=grpo reward=python ...` resolves it."""
    from tests.conftest import compose_overrides

    config = typed_run_config(compose_overrides([
        "algo=grpo", "reward=python", "reward.on_error=zero", "reward.test_time_s=1",
        "reward.sandbox.wall_time_s=3", "reward.sandbox.cpu_time_s=2", "reward.workers=2"]))
    return resolve_components(config)["reward"]


@pytest.fixture(scope="module")
def reward(resolved):
    return build_reward(resolved)


def test_humaneval_check_splits_into_one_test_per_assert_statement():
    tests = humaneval_tests(hub_fixtures.humaneval_rows()[1]["test"], "sum_squares")
    assert tests.tests == (
        "values = [candidate(n) for n in range(5)]\nassert values == [0, 1, 5, 14, 30]",
        "for n in range(5, 50):\n    assert candidate(n) == n * (n + 1) * (2 * n + 1) // 6",
    )
    assert tests.setup.endswith("\ncandidate = sum_squares\n")


def test_reference_solutions_pass_and_wrong_ones_score_their_pass_fraction(reward):
    humaneval, mbpp = hub_fixtures.humaneval_rows(), hub_fixtures.mbpp_rows()
    samples = [humaneval_sample(0), humaneval_sample(1), humaneval_sample(0), mbpp_sample(0), mbpp_sample(1),
               humaneval_sample(0)]
    completions = [
        completion(humaneval[0]["canonical_solution"]),  # continues the prompt
        completion(humaneval[1]["canonical_solution"]),
        completion("    return False\n"),  # right on 2 of the 4 asserts
        completion(f"Here you go:\n```python\n{mbpp[0]['code']}\n```\nDone."),  # chat reply with a code block
        completion("```python\ndef similar_elements(a, b):\n    return (4, 5)\n```"),  # 1 of 3
        completion("from typing import List\n\ndef below_zero(operations: List[int]) -> bool:\n"
                   "    return min([0] + [sum(operations[:i + 1]) for i in range(len(operations))]) < 0\n"),
    ]
    out = reward(samples, completions)
    assert out.scores == pytest.approx([1.0, 1.0, 0.5, 1.0, 1 / 3, 1.0]) and out.failures == 0
    assert [reward.is_correct(s, c) for s, c in zip(samples, completions)] == [True, True, False, True, False, True]


#: The program's own pipes: stdout, stderr and the harness's report channel.
PIPES = ("import os\npipes = [fd for fd in range(3, 64) if os.path.exists(f'/proc/self/fd/{fd}')"
         " and os.readlink(f'/proc/self/fd/{fd}').startswith('pipe:')]\nassert pipes\n")
CHEATS = {
    "exits before the tests": "import sys\nsys.exit(0)",
    "prints a pass report": "print('4/4 tests passed')\nprint('[\"x\", \"test\", 0, \"\"]')",
    "forges the report channel": PIPES + "for fd in pipes:\n    for i in range(4):\n"
                                 "        os.write(fd, ('[\"guess\", \"test\", %d, \"\"]\\n' % i).encode())",
    "floods the report channel": PIPES + "while True:\n    for fd in pipes:\n        os.write(fd, b'x' * 65536)",
    "rewrites assert failures": "import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {})",
    "loops forever": "while True:\n    pass",
    "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
    "memory hog": "x = [bytearray(2**26) for _ in range(1000)]",
    "huge output": "while True:\n    print('x' * 10000)",
    "kills its parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(-1, signal.SIGKILL)",
    "network": "import urllib.request\nurllib.request.urlopen('http://1.1.1.1', timeout=1)",
}


def test_misbehaving_code_fails_its_own_sample_only(reward):
    good = hub_fixtures.humaneval_rows()[0]["canonical_solution"]
    texts = [good, *CHEATS.values(), good]
    samples = [humaneval_sample(0)] * len(texts)
    out = reward(samples, [completion(t) for t in texts])
    scores = dict(zip(["first", *CHEATS, "last"], out.scores))
    assert scores == {"first": 1.0, **{name: 0.0 for name in CHEATS}, "last": 1.0}
    assert out.failures == 0  # failed tests, not failed scoring


def test_a_test_that_hangs_fails_alone(resolved):
    # A wall time that the 1 s test limit cannot reach, even on a busy machine.
    reward = resolved.cls(replace(resolved.config, sandbox=replace(resolved.config.sandbox, wall_time_s=30.0)))
    sample = PromptSample("p", metadata={"test_list": ["assert f(1) == 1", "assert f(2) == 2", "assert f(3) == 3"],
                                         "test_setup_code": ""})
    code = "def f(x):\n    while x == 2:\n        pass\n    return x\n"
    outcome = reward.outcome(sample, completion(code))
    assert (outcome.passed, outcome.total) == (2, 3)
    assert outcome.failures == [(1, "TestTimeout: test took too long")]
    assert outcome.feedback(UnitTests.from_metadata(sample.metadata)).startswith(
        "2/3 tests passed.\nFailed: assert f(2) == 2\n  -> TestTimeout")


def test_a_sample_without_tests_is_a_reward_error(resolved):
    strict = resolved.cls(replace(resolved.config, on_error="raise"))
    with pytest.raises(RewardError, match=r"sample 0 .*has no unit tests: its metadata has no keys, expected 'test' "
                                          r"and 'entry_point' \(HumanEval\) or 'test_list' \(MBPP\)"):
        strict([PromptSample("What is 2 + 2?", answer="4")], [completion("4")])
    assert strict.is_correct(PromptSample("What is 2 + 2?", answer="4"), completion("4")) is None


def test_a_missing_sandbox_stops_the_run_before_training(resolved):
    config = replace(resolved.config, sandbox=replace(resolved.config.sandbox, bwrap="no-bwrap-here"))
    with pytest.raises(SandboxUnavailable, match=r"bubblewrap \('no-bwrap-here'\) not found.*apt-get install -y bubblewrap"):
        resolved.cls(config)


def test_sandbox_limits_are_checked_while_composing():
    from rlkit.api import compose_dict
    from rlkit.config import check_config

    with pytest.raises(Exception, match=r"reward.sandbox.cpu_time_s must be >= 1, got 0"):
        check_config(compose_dict(["algo=grpo", "reward=python", "reward.sandbox.cpu_time_s=0"]))
