"""env=python: episodes of code, real sandboxed test runs, and the test output as the observation."""

from __future__ import annotations

from dataclasses import replace

import pytest

import rlkit
from rlkit.config import component_config
from rlkit.environments.base import OnError
from rlkit.environments.python import PythonEnvironment
from rlkit.types import PromptSample
from tests.data import hub_fixtures

SIMILAR = hub_fixtures.mbpp_rows()[1]  # similar_elements: 3 asserts


@pytest.fixture(scope="module")
def env() -> PythonEnvironment:
    """env=python as `python -m rlkit ... env=python env.sandbox.wall_time_s=20` builds it."""
    config = rlkit.compose(["algo=grpo", "env=python", "env.sandbox.wall_time_s=20",
                            "env.test_time_s=0.5", "env.max_turns=3"])
    cls, env_config = component_config("env", config.env, "environments")
    assert cls is PythonEnvironment and env_config.max_turns == 3
    return cls(env_config)


def mbpp_sample() -> PromptSample:
    return PromptSample(SIMILAR["text"], metadata={k: SIMILAR[k] for k in ("test_list", "test_setup_code")})


def test_an_episode_ends_when_every_test_passes_and_its_rewards_sum_to_the_pass_fraction(env):
    episode = env.start(mbpp_sample())
    first = env.safe_step(episode, "```python\ndef similar_elements(a, b):\n    return (4, 5)\n```")
    assert not first.done and first.tool_calls == 1 and first.tool_errors == 0
    assert first.reward == pytest.approx(1 / 3)
    assert first.observation == (
        "1/3 tests passed.\n"
        "Failed: assert similar_elements((1, 2, 3, 4),(5, 4, 3, 7)) == (3, 4)\n  -> AssertionError\n"
        "Failed: assert similar_elements((11, 12, 14, 13),(17, 15, 14, 13)) == (13, 14)\n  -> AssertionError")
    second = env.safe_step(episode, f"Fixed:\n```python\n{SIMILAR['code']}\n```")
    assert second.done and second.observation is None and second.reward == pytest.approx(2 / 3)
    assert first.reward + second.reward == pytest.approx(1.0)


def test_a_program_that_crashes_is_told_its_error_and_output(env):
    episode = env.start(mbpp_sample())
    turn = env.safe_step(episode, "print('trying a guess')\nraise RuntimeError('no idea')\n")
    assert not turn.done and turn.reward == 0.0 and turn.tool_errors == 0
    assert turn.observation == ("0/3 tests passed.\nThe program failed before any test ran: RuntimeError: no idea\n"
                                "Output (end):\ntrying a guess")
    syntax = env.safe_step(episode, "similar_elements = lambda a, b: (\n")
    assert "The program failed before any test ran: SyntaxError: '(' was never closed (solution.py, line 1)" in syntax.observation


def test_a_program_the_sandbox_stops_is_a_tool_error_per_on_error(env):
    hang = "```python\nimport time\ntime.sleep(60)\n```"
    env = PythonEnvironment(replace(env.config, sandbox=replace(env.config.sandbox, wall_time_s=1.5)))
    episode = env.start(mbpp_sample())
    turn = env.safe_step(episode, hang)
    assert (turn.done, turn.reward, turn.tool_errors) == (False, 0.0, 1)
    assert turn.observation.startswith("error: 0/3 tests passed.") and "The sandbox stopped the program: timeout" in turn.observation
    strict = PythonEnvironment(replace(env.config, on_error=OnError.zero_reward))
    ended = strict.safe_step(strict.start(mbpp_sample()), hang)
    assert (ended.done, ended.reward, ended.observation, ended.tool_errors) == (True, 0.0, None, 1)


def test_a_round_runs_its_sandboxes_at_once_with_the_turns_in_order(env):
    """env.workers sandboxes at a time give the turns one at a time does, in the episodes' order."""
    programs = [f"```python\ndef similar_elements(a, b):\n    return {answer}\n```"
                for answer in ("(4, 5)", "(3, 4)", "()", "(13, 14)")] + [f"```python\n{SIMILAR['code']}\n```",
                                                                        "raise SystemExit(1)", "import time; time.sleep(1)"]
    rounds = {}
    for workers in (1, 4):
        parallel = PythonEnvironment(replace(env.config, workers=workers))
        states = parallel.start_all([mbpp_sample()] * len(programs))
        rounds[workers] = (parallel.step_all(states, programs), [s.pass_fraction for s in states])
    assert rounds[4] == rounds[1]
    assert [t.reward for t in rounds[4][0]] == pytest.approx([1 / 3, 1 / 3, 0, 1 / 3, 1, 0, 0])
    assert [t.done for t in rounds[4][0]] == [False] * 4 + [True, False, False]


def test_humaneval_turns_continue_the_prompt_or_restate_the_function(env):
    row = hub_fixtures.humaneval_rows()[0]
    sample = PromptSample(row["prompt"], metadata={k: row[k] for k in ("prompt", "test", "entry_point")})
    continued = env.safe_step(env.start(sample), row["canonical_solution"])
    restated = env.safe_step(env.start(sample), "```python\ndef below_zero(operations: List[int]) -> bool:\n"
                                                "    return False\n```")
    assert continued.done and continued.reward == 1.0
    assert not restated.done and restated.reward == 0.5 and restated.observation.startswith("2/4 tests passed.")


def test_a_sample_without_unit_tests_is_refused_at_the_start(env):
    with pytest.raises(ValueError, match="the sample has no unit tests.*keep those columns with data.metadata"):
        env.start(PromptSample("What is 2 + 2?", answer="4"))


def test_the_rollout_feeds_the_test_report_back_as_masked_observations(env, tiny):
    """Real episodes: the built-in tiny model's turns (cut at any letter or digit: short) run
    in the sandbox, and each report comes back as a tool message the loss does not score."""
    import string

    import torch

    from rlkit.environments.rollout import EpisodeRunner, episode_scores
    from rlkit.generators.config import HFGeneratorConfig
    from rlkit.generators.hf import HFGenerator
    from rlkit.types import SamplingParams

    model, tokenizer = tiny
    # Room for a report in the tiny model's 512 positions (its vocabulary spells most text byte by byte).
    env = PythonEnvironment(replace(env.config, max_turns=2, max_tokens=400, max_failures_shown=1))
    runner = EpisodeRunner(env, HFGenerator(HFGeneratorConfig(), model, tokenizer), tokenizer)
    torch.manual_seed(0)
    episodes = runner.run([mbpp_sample()], SamplingParams(max_new_tokens=8, n=3, stop=tuple(string.ascii_letters + string.digits)))
    answered = [e for e in episodes if e.tool_calls]
    assert answered, [e.messages for e in episodes]
    for episode in answered:
        reports = [m.content for m in episode.messages if m.role == env.config.observation_role]
        assert reports and len(reports) <= episode.tool_calls <= episode.turns
        assert all(r.startswith("0/3 tests passed.") for r in reports)
        assert not all(episode.loss_mask) and any(episode.loss_mask)
    assert episode_scores(episodes)[0] == [0.0] * len(episodes)
