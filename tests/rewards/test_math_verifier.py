"""MathVerifier and its pure helpers: answer extraction, number parsing, matching."""

import pytest

from rlkit.rewards.math import MathVerifier, answers_match, extract_answer
from rlkit.types import Completion, PromptSample


def completion(text: str) -> Completion:
    return Completion(prompt_index=0, token_ids=[0], text=text, logprobs=[0.0], truncated=False)


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so $\boxed{\frac{1}{2}}$ is it", r"\frac{1}{2}"),
        (r"\boxed{\left( -\frac{1}{4} \right)}", r"\left( -\frac{1}{4} \right)"),
        (r"first \boxed{1}, then \boxed{2}", "2"),
        (r"\boxed{x} and \boxed{3", "x"),  # an unclosed box is ignored
        (r"The answer is 7, not \boxed{8}", "8"),  # a box wins over a marker
        ("The answer is 42.", "42"),
        ("answer: (B)", "(B)"),
        ("ANSWER IS $\\dfrac{3}{4}$. Done.", "$\\dfrac{3}{4}$"),
        ("So the answer is 12 apples", "12"),
        ("The answer is 3 + 4 = 7", "7"),
        ("work...\n#### 1,234", "1,234"),
        ("Final Answer: The final answer is $5$. I hope it is correct.", "$5$"),
        ("I have 3 cats and -5 dogs", "-5"),
        ("10-4 leaves 6, then 10-4", "4"),  # a minus after a digit is subtraction
        ("it is 3/4 of it", "3/4"),
        (r"half is \tfrac{1}{2}", r"\tfrac{1}{2}"),
        ("no numbers here", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "predicted, reference",
    [
        ("0.5", r"\frac{1}{2}"),
        (r"\dfrac{3}{4}", "0.75"),
        (r"\frac34", "3/4"),
        ("-0.25", r"-\frac{1}{4}"),
        (r"$\frac{-1}{4}$", "-.25"),
        (r"\left( 2 \right)", "2"),
        ("1,234,567", "1234567"),
        ("1{,}234", "1234"),
        ("42.", "42"),
        ("42", "42.0"),
        ("50%", "50"),
        (r"50\%", "50"),
        (r"\boxed{7}", "7"),
        ("(B)", "b"),
        (r"\text{Yes}", "yes"),
        ("x + 1", "x+1"),
    ],
)
def test_answers_match(predicted, reference):
    assert answers_match(predicted, reference)
    assert answers_match(reference, predicted)


@pytest.mark.parametrize(
    "predicted, reference",
    [("0.5", "0.51"), ("-3", "3"), ("1/3", "0.33"), ("1/0", "0"), ("A", "B"), ("12,34", "1234")],
)
def test_answers_differ(predicted, reference):
    assert not answers_match(predicted, reference)


def test_tolerance():
    assert answers_match("0.3333333333", "1/3")
    assert not answers_match("0.3333", "1/3")
    assert answers_match("0.3333", "1/3", rel_tol=1e-3)
    assert answers_match("0.000000000001", "0")


def test_verifier_scores():
    verifier = MathVerifier(MathVerifier.Config(correct_score=2.0, wrong_score=-1.0))
    samples = [PromptSample(prompt="q", answer=r"\frac{1}{2}")] * 3
    texts = ["so it is 0.5", "The answer is 0.6.", "I don't know"]
    out = verifier(samples, [completion(text) for text in texts])
    assert out.scores == [2.0, -1.0, -1.0]
    assert out.parts == {} and out.failures == 0


def test_verifier_needs_reference():
    verifier = MathVerifier(MathVerifier.Config(on_error="zero"))
    out = verifier([PromptSample(prompt="q")], [completion("42")])
    assert out.scores == [0.0] and out.failures == 1
