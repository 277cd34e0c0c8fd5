"""A verifier for math answers: extract the final answer, compare it with the reference.

``extract_answer`` and ``answers_match`` are pure functions, shared with evaluation.

Numbers are understood in these forms: ``42``, ``-3.5``, ``.5``, ``1,234,567``, ``3/4``,
``\\frac{3}{4}`` (also ``\\dfrac``, ``\\tfrac``, ``\\frac34``, ``-\\frac{1}{2}``), inside
``$...$``, ``\\(...\\)``, ``\\[...\\]``, ``\\boxed{...}``, ``\\left( ... \\right)`` or
parentheses, with a trailing period. A percent sign is dropped: ``50%`` reads as 50.
Answers that are not numbers are compared as strings, ignoring case, whitespace and the
wrappers above.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rlkit.rewards.base import PerSampleReward
from rlkit.types import Completion, PromptSample

# A plain decimal: digits with optional thousands separators, optional fraction digits.
_DECIMAL = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+"
# \frac{a}{b}, \dfrac{a}{b}, \tfrac{a}{b} or the shorthand \frac ab.
_TEX_FRAC = r"\\[dt]?frac\s*(?:\{[^{}]*\}\s*\{[^{}]*\}|\d\s*\d)"
# A number as it appears in running text. The sign counts only when it does not follow a
# word, digit or closing bracket, so "10-4" is not read as "-4".
_NUMBER_IN_TEXT = re.compile(
    rf"(?:(?<![\w.)}}\]])-\s*)?(?:{_TEX_FRAC}|(?:{_DECIMAL})(?:\s*/\s*(?:{_DECIMAL}))?)"
)
# What introduces a stated answer: "answer: ", "answer is ", "the answer is: ", "#### ".
_ANSWER_MARKER = re.compile(r"answer\s*(?:is\s*:?|:)|####", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?:\s|$)")

# Whole-answer forms, matched against normalized answers (whitespace removed).
_PLAIN = re.compile(rf"[-+]?(?:{_DECIMAL})")
_FRACTION = re.compile(
    rf"\\[dt]?frac\s*(?:\{{(?P<tn>[^{{}}]*)\}}\s*\{{(?P<td>[^{{}}]*)\}}|(?P<dn>\d)\s*(?P<dd>\d))"
    rf"|(?P<n>[-+]?(?:{_DECIMAL}))\s*/\s*(?P<d>[-+]?(?:{_DECIMAL}))"
)
_WRAPPERS = (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("(", ")"))
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_SPACING = re.compile(r"\\left|\\right|\\[,;:! ]")


def extract_answer(text: str) -> str | None:
    """The final answer stated in ``text``, or None when it states none.

    In order of priority: the content of the last ``\\boxed{...}`` (nested braces allowed);
    the rest of the sentence after the last "answer: ", "answer is " or "#### " (if that
    is not itself a number but contains numbers, the last of them); the last number in the
    text.
    """
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    for marker in reversed(list(_ANSWER_MARKER.finditer(text))):
        line = text[marker.end() :].split("\n", maxsplit=1)[0]
        answer = _SENTENCE_END.split(line, maxsplit=1)[0].strip()
        if answer:
            numbers = _NUMBER_IN_TEXT.findall(answer)
            return answer if _to_number(answer) is not None or not numbers else numbers[-1]
    numbers = _NUMBER_IN_TEXT.findall(text)
    return numbers[-1] if numbers else None


def answers_match(
    predicted: str, reference: str, rel_tol: float = 1e-6, abs_tol: float = 1e-9
) -> bool:
    """Whether two answers agree: numerically within tolerance when both are numbers,
    otherwise as normalized strings."""
    p, r = _to_number(predicted), _to_number(reference)
    if p is not None and r is not None:
        return math.isclose(p, r, rel_tol=rel_tol, abs_tol=abs_tol)
    return _normalize(predicted).lower() == _normalize(reference).lower()


class MathVerifier(PerSampleReward):
    """``correct_score`` when the completion's final answer (``extract_answer``) matches
    ``sample.answer`` (``answers_match``), else ``wrong_score``. A sample without a
    reference answer is an error."""

    @dataclass
    class Config(PerSampleReward.Config):
        rel_tol: float = 1e-6
        abs_tol: float = 1e-9
        correct_score: float = 1.0
        wrong_score: float = 0.0

    config: Config

    def score(self, sample: PromptSample, completion: Completion) -> float:
        if sample.answer is None:
            raise ValueError("sample has no reference answer")
        predicted = extract_answer(completion.text)
        correct = predicted is not None and answers_match(
            predicted, sample.answer, self.config.rel_tol, self.config.abs_tol
        )
        return self.config.correct_score if correct else self.config.wrong_score


def _last_boxed(text: str) -> str | None:
    """The content of the last balanced ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``."""
    for opening in reversed(list(_BOXED.finditer(text))):
        end = _closing_brace(text, opening.end())
        if end is not None:
            return text[opening.end() : end]
    return None


def _closing_brace(text: str, start: int) -> int | None:
    """The index of the brace closing the group whose content starts at ``start``."""
    depth = 1
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return None


def _unwrap(s: str) -> str:
    """``s`` without one wrapper (``\\boxed{}``, ``$ $``, parentheses, ...) around all of it."""
    boxed = _BOXED.match(s)
    if boxed and _closing_brace(s, boxed.end()) == len(s) - 1:
        return s[boxed.end() : -1]
    for left, right in _WRAPPERS:
        if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
            inner = s[len(left) : -len(right)]
            if _balanced(inner, left, right):
                return inner
    return s


def _balanced(inner: str, left: str, right: str) -> bool:
    """Whether the wrapper pair around ``inner`` encloses it as a single group."""
    if left == right or len(left) > 1:
        return left not in inner and right not in inner
    depth = 0
    for char in inner:
        depth += {left: 1, right: -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _normalize(answer: str) -> str:
    """``answer`` without wrappers around it, spacing and text commands, a trailing period
    or percent sign, and whitespace."""
    s = _SPACING.sub("", _TEXT_COMMAND.sub(r"\1", answer)).replace("{,}", ",")
    previous = None
    while s != previous:
        previous = s
        s = _unwrap(s.strip().rstrip(".").removesuffix("\\%").removesuffix("%").strip())
    return re.sub(r"\s+", "", s)


def _to_number(answer: str) -> float | None:
    """The value of ``answer`` if it is a single number in a supported form, else None."""
    s = _normalize(answer)
    if _PLAIN.fullmatch(s):
        return float(s.replace(",", ""))
    if s.startswith("-"):
        magnitude = _to_number(s[1:])
        return None if magnitude is None else -magnitude
    fraction = _FRACTION.fullmatch(s)
    if fraction is None:
        return None
    numerator, denominator = next(
        (fraction[n], fraction[d])
        for n, d in (("tn", "td"), ("dn", "dd"), ("n", "d"))
        if fraction[n] is not None
    )
    num, den = _to_number(numerator), _to_number(denominator)
    if num is None or den is None or den == 0:
        return None
    return num / den
