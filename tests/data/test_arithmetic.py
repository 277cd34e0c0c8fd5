import re

import pytest

from rlkit.data.arithmetic import ArithmeticTask
from rlkit.types import SampleKind


def task(**overrides):
    return ArithmeticTask(ArithmeticTask.Config(train_size=500, eval_size=50, **overrides))


def test_deterministic_and_held_out():
    a, b = task(), task()
    assert a.load("train", SampleKind.SFT) == b.load("train", SampleKind.SFT)
    eval_prompts = {s.prompt for s in a.load("eval", SampleKind.PROMPT)}
    assert len(eval_prompts) == 50
    assert not eval_prompts & {s.prompt for s in a.load("train", SampleKind.PROMPT)}
    assert task(seed=7).load("train", SampleKind.SFT) != a.load("train", SampleKind.SFT)


def test_answers_are_correct_and_sizes_follow_config():
    samples = task(digits=3, operations=["-"]).load("train", SampleKind.SFT)
    assert len(samples) == 500
    for s in samples:
        a, _, b = s.prompt[0].content.removeprefix("What is ").removesuffix("?").split()
        assert int(s.completion) == int(a) - int(b) == int(s.answer)
        assert int(a) < 1000 and int(b) < 1000


def test_preference_pairs_differ():
    pairs = task().load("eval", SampleKind.PREFERENCE)
    assert all(p.chosen != p.rejected for p in pairs)


def test_worked_solutions_compute_every_column_and_end_with_the_answer():
    for digits in (1, 2, 3):
        samples = task(digits=digits, worked_fraction=1.0).load("train", SampleKind.SFT)
        for s in samples:
            work, answer = s.completion.rsplit(" so ", 1)
            assert answer == s.answer
            clauses = work.split()
            if s.answer.startswith("-"):  # a negative difference is worked reversed
                top, bottom = map(int, clauses.pop(0).split("-"))
                assert top - bottom == -int(s.answer)
            assert len(clauses) == digits
            for clause in clauses:
                left, value = clause.split("=")
                assert eval(left) == int(value)  # e.g. "4-1-3" == 0


def test_worked_fraction_sets_the_share_of_worked_demonstrations():
    assert not any(" so " in s.completion for s in task().load("train", SampleKind.SFT))
    half = task(worked_fraction=0.5).load("train", SampleKind.SFT)
    assert 0.4 < sum(" so " in s.completion for s in half) / len(half) < 0.6
    assert half == task(worked_fraction=0.5).load("train", SampleKind.SFT)
    assert all(" so " not in p.chosen for p in task(worked_fraction=1.0).load("train", SampleKind.PREFERENCE))


def test_the_verifier_reads_the_answer_of_a_worked_solution():
    from rlkit.rewards.math import MathVerifier
    from rlkit.types import Completion, PromptSample

    def is_correct(text: str, answer: str) -> bool:
        completion = Completion(prompt_index=0, token_ids=[], text=text, logprobs=[], truncated=False)
        return MathVerifier(MathVerifier.Config()).is_correct(PromptSample("q", answer=answer), completion)

    assert is_correct("47-38 17-8=9 4-1-3=0 so -9", "-9")
    assert not is_correct("7+8=15 4+3+1=8 so 84", "85")


def test_bad_worked_fraction_is_named():
    with pytest.raises(ValueError, match="data.worked_fraction"):
        task(worked_fraction=1.5)


def test_one_digit_problems_hold_out_a_quarter_when_eval_size_is_too_large(caplog):
    task = ArithmeticTask(ArithmeticTask.Config(digits=1, train_size=300))
    held_out = task.load("eval", SampleKind.PROMPT)
    assert len(held_out) == 50 and "data.eval_size=200 is over half of the 200 distinct 1-digit problems" in caplog.text
    assert not {s.prompt for s in held_out} & {s.prompt for s in task.load("train", SampleKind.PROMPT)}


def test_multiplication_and_tool_demonstrations():
    """tool_fraction of the problems are demonstrated as a calculator call, then the answer
    after the tool's message; the tool's result is in the prompt, never a target."""
    from rlkit.environments.calculator import CalculatorConfig, CalculatorEnvironment
    from rlkit.types import Message

    samples = task(digits=3, operations=["*"], tool_fraction=0.5).load("train", SampleKind.SFT)
    calls = [s for s in samples if s.completion.startswith("<calc>")]
    answers_after_tool = [s for s in samples if len(s.prompt) == 3]
    assert len(calls) == len(answers_after_tool) and 0.4 < len(calls) / (len(samples) - len(calls)) < 0.6
    env = CalculatorEnvironment(CalculatorConfig())
    for call, after in zip(calls, answers_after_tool):
        assert after.prompt[1:] == (Message("assistant", call.completion), Message("tool", call.answer))
        assert env.step(None, call.completion).observation == after.completion == call.answer
        # The call repeats the question's expression verbatim.
        expression = call.completion.removeprefix("<calc>").removesuffix("</calc>")
        a, b = map(int, expression.split(" * "))
        assert a * b == int(call.answer) and call.prompt[0].content == f"What is {expression}?"
    assert task(digits=3, operations=["*"]).load("train", SampleKind.SFT)[0].completion.isdigit()


def test_reading_the_tool_result_is_demonstrated_on_more_problems_than_the_call():
    """tool_result_fraction: every demonstrated call has its result-reading sample, and more
    problems get one; those problems are also answered directly in their first turn."""
    samples = task(digits=3, operations=["*"], tool_fraction=0.2, tool_result_fraction=0.6).load("train", SampleKind.SFT)
    first_turns = [s for s in samples if len(s.prompt) == 1]
    calls = {s.prompt for s in first_turns if s.completion.startswith("<calc>")}
    results = [s for s in samples if len(s.prompt) == 3]
    assert len(first_turns) == 500 and 0.15 < len(calls) / 500 < 0.25 and 0.55 < len(results) / 500 < 0.65
    assert calls < {s.prompt[:1] for s in results}
    assert all(s.completion == s.prompt[2].content == s.answer for s in results)


@pytest.mark.parametrize("overrides, message", [
    ({"operations": ["/"]}, "choose from '+', '-', '*'"),
    ({"operations": ["*"], "worked_fraction": 0.5}, "'+' and '-' only"),
    ({"tool_fraction": 0.5, "chat": False}, "need data.chat=true"),
    ({"tool_result_fraction": 0.5, "chat": False}, "need data.chat=true"),
    ({"tool_fraction": -0.1}, "data.tool_fraction must be in"),
    ({"tool_fraction": 0.5, "tool_result_fraction": 0.2}, "data.tool_result_fraction (0.2) must be at least"),
])
def test_bad_multiplication_and_tool_settings_are_named(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        task(**overrides)
