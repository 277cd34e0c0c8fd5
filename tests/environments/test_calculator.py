"""The calculator environment and the on_error policy every environment shares."""

from __future__ import annotations

import pytest

from rlkit.environments.base import Environment, EnvironmentConfig, OnError, Turn
from rlkit.environments.calculator import CalculatorConfig, CalculatorEnvironment
from rlkit.types import Message, PromptSample

SAMPLE = PromptSample((Message("user", "What is 347 * 28?"),), "9716")


@pytest.fixture
def env() -> CalculatorEnvironment:
    return CalculatorEnvironment(CalculatorConfig())


def test_a_tool_call_is_answered_with_its_value_and_the_episode_goes_on(env):
    turn = env.safe_step(env.start(SAMPLE), "<calc>347*28</calc>")
    assert turn == Turn(observation="9716", tool_calls=1)
    assert env.stop_strings() == ("</calc>",)


@pytest.mark.parametrize("expression, value", [
    ("347 * 28", "9716"), ("(2+3)*-4", "-20"), ("7/2", "3.5"), ("1/3", "0.333333"), ("2**10", "1024"),
    ("17 // 5", "3"), ("17 % 5", "2"), ("1.5*2", "3"),
])
def test_arithmetic(env, expression, value):
    assert env.safe_step(SAMPLE, f"<calc>{expression}</calc>").observation == value


def test_a_turn_without_a_tool_call_is_the_final_answer(env):
    assert env.safe_step(SAMPLE, "9716") == Turn(done=True)


@pytest.mark.parametrize("text, error", [
    ("<calc>347 *</calc>", "cannot parse '347 *'"),
    ("<calc>__import__('os').system('true')</calc>", "only numbers"),
    ("<calc>1/0</calc>", "division by zero"),
    ("<calc>2**100000</calc>", "exponent 100000"),
    ("<python>print(1)</python>", "unknown tool 'python'; tools: calc"),
    ("<calc>1+1", "unclosed tool call"),
    ("<calc>" + "1+" * 40 + "1</calc>", "longer than 64 characters"),
])
def test_bad_tool_calls_become_error_observations(env, text, error):
    turn = env.safe_step(SAMPLE, text)
    assert turn.tool_errors == 1 and not turn.done
    assert error in turn.observation and turn.observation == turn.error


def test_on_error_zero_reward_ends_the_episode(env):
    env = CalculatorEnvironment(CalculatorConfig(on_error=OnError.zero_reward))
    turn = env.safe_step(SAMPLE, "<calc>1/0</calc>")
    assert turn.done and turn.reward == 0.0 and turn.observation is None and turn.tool_errors == 1


class Raising(Environment):
    def step(self, state, assistant_text):
        raise KeyError("bug")


def test_an_environment_that_raises_is_a_tool_error_not_a_crash():
    turn = Raising(EnvironmentConfig()).safe_step(SAMPLE, "hello")
    assert turn.tool_errors == 1 and turn.observation == "error: Raising raised KeyError: 'bug'"


def test_a_step_must_return_a_turn():
    class Wrong(Environment):
        def step(self, state, assistant_text):
            return "observation"

    with pytest.raises(TypeError, match="Wrong.step must return a Turn, got str"):
        Wrong(EnvironmentConfig()).safe_step(SAMPLE, "x")
