"""The math verifier on MATH-500-style answer pairs: LaTeX forms that are equal and that are not.

``answers_match(predicted, reference)`` decides numbers and identical strings itself and asks
math-verify (sympy, in a worker process with a time limit) about the rest.
"""

import time

import pytest

from rlkit.rewards.math import MathVerifier, answers_match
from rlkit.types import Completion, PromptSample

# (predicted, reference): the first six are the pairs issue 14 found judged different.
EQUAL = [
    ("x=3", "3"),
    (r"\$18", "18"),
    (r"\pi/2", r"\frac{\pi}{2}"),
    (r"\frac{\sqrt{2}}{2}", r"\frac{\sqrt2}{2}"),
    ("10^{3}", "1000"),
    (r"\{1,2\}", r"\{2,1\}"),
    (r"\dfrac{7}{2}", "3.5"),
    (r"\frac{1}{\sqrt{2}}", r"\frac{\sqrt{2}}{2}"),
    (r"2\sqrt{3}", r"\sqrt{12}"),
    (r"\sqrt{8}", r"2\sqrt{2}"),
    ("(x+1)^2", "x^2+2x+1"),
    (r"\left(1, 2\right)", "(1,2)"),
    ("[1,3)", "[1, 3)"),
    (r"(-\infty, 2]", r"(-\infty,2]"),
    (r"x \in [2, 5]", "[2,5]"),
    ("3+2i", "2i+3"),
    (r"5\text{ cm}", "5"),
    (r"30^\circ", "30"),
    ("1,000", "1000"),
    (r"\boxed{\frac{3}{4}}", "0.75"),
    (r"\text{(B)}", "B"),
    ("y = 2x + 1", "2x+1"),
    (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}"),
    (r"\frac{2}{4}", r"\frac{1}{2}"),
    (r"-\frac{1}{3}", r"\frac{-1}{3}"),
    (r"6\pi", r"6 \pi"),
    ("3, 5", "5, 3"),
    (r"\infty", r"\infty"),
]
DIFFERENT = [
    ("6", "7"),
    ("-5", "5"),
    (r"\pi", "3.14"),
    (r"\sqrt{2}", "1.414"),
    (r"\frac{1}{2}", r"\frac{1}{3}"),
    (r"2\sqrt{3}", r"3\sqrt{2}"),
    ("10^{2}", "1000"),
    ("x=4", "3"),
    ("x+1", "y+1"),
    ("(x+1)^2", "x^2+1"),
    ("[1,3]", "[1,3)"),
    ("(1,2)", "(2,1)"),
    (r"\{1,2\}", r"\{1,3\}"),
    (r"\infty", r"-\infty"),
    ("3+2i", "3-2i"),
]


def test_the_table_has_at_least_40_pairs():
    assert len(EQUAL) + len(DIFFERENT) >= 40


@pytest.mark.parametrize("predicted, reference", EQUAL)
def test_equal_answers(predicted, reference):
    assert answers_match(predicted, reference)


@pytest.mark.parametrize("predicted, reference", DIFFERENT)
def test_different_answers(predicted, reference):
    assert not answers_match(predicted, reference)


def test_symbolic_off_keeps_numbers_and_strings_only():
    assert answers_match(r"\dfrac{7}{2}", "3.5", symbolic=False)
    assert not answers_match("x=3", "3", symbolic=False)


def test_a_comparison_past_its_time_limit_is_different_and_the_next_one_works():
    start = time.monotonic()
    # One integer power that sympy computes in a single C call (no signal can stop it).
    assert not answers_match("9^{9^{9^{9}}}", "1", timeout_s=1.0)
    assert time.monotonic() - start < 30
    assert answers_match("x=3", "3")  # a fresh worker replaced the killed one


def test_verifier_scores_latex_completions():
    verifier = MathVerifier(MathVerifier.Config())
    samples = [PromptSample(prompt="q", answer=r"\frac{\pi}{2}")] * 3
    texts = [r"so the angle is $\boxed{\pi/2}$", r"The answer is $\frac{\pi}{3}$.", "I give up"]
    completions = [Completion(prompt_index=0, token_ids=[0], text=t, logprobs=[0.0], truncated=False) for t in texts]
    assert verifier(samples, completions).scores == [1.0, 0.0, 0.0]


def test_majority_answer_votes_by_value():
    from rlkit.rewards.math import majority_answer

    texts = ["so 0.5", r"it is $\frac{1}{2}$", "the answer is 3", "no idea", "answer: 3", "#### 1/2"]
    assert majority_answer(texts) == "0.5"  # three votes for one half, two for 3
    assert majority_answer(["answer: 3", "answer: 4"]) == "3"  # a tie goes to the first
    assert majority_answer(["no idea", ""]) is None


def test_majority_vote_picks_a_completion_with_the_majority_answer():
    from rlkit.trainer.evaluation import majority_vote

    texts = ["so 7", "answer: 0.5", r"$\boxed{\frac{1}{2}}$", "no idea"]
    completions = [Completion(prompt_index=0, token_ids=[0], text=t, logprobs=[0.0], truncated=False) for t in texts]
    assert majority_vote(completions).text == "answer: 0.5"
    assert majority_vote(completions[3:]) is None
