"""A verifier for math answers: extract the final answer, compare it with the reference.

``extract_answer`` and ``answers_match`` are pure functions, shared with evaluation.

Numbers are understood in these forms: ``42``, ``-3.5``, ``.5``, ``1,234,567``, ``3/4``,
``\\frac{3}{4}`` (also ``\\dfrac``, ``\\tfrac``, ``\\frac34``, ``-\\frac{1}{2}``), inside
``$...$``, ``\\(...\\)``, ``\\[...\\]``, ``\\boxed{...}``, ``\\left( ... \\right)`` or
parentheses, with a trailing period. A percent sign is dropped: ``50%`` reads as 50.
Answers that are not both numbers are equal when their normalized strings are (ignoring
case, whitespace and the wrappers above), else when Hugging Face's ``math-verify`` finds them
symbolically equal (``x=3`` and ``3``, ``\\pi/2`` and ``\\frac{\\pi}{2}``, ``10^{3}`` and
``1000``, ``\\{1,2\\}`` and ``\\{2,1\\}``). The numeric and string paths decide most
answers of arithmetic tasks in microseconds; sympy is imported and called only for the rest,
under a per-comparison time limit.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import re
import select
import subprocess
import sys
from dataclasses import dataclass
from typing import IO, Sequence

from rlkit.rewards.base import PerSampleReward
from rlkit.types import Completion, PromptSample

_log = logging.getLogger(__name__)

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
    boxed = last_boxed(text)
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
    predicted: str,
    reference: str,
    rel_tol: float = 1e-6,
    abs_tol: float = 1e-9,
    symbolic: bool = True,
    timeout_s: float = 5.0,
) -> bool:
    """Whether ``predicted`` agrees with ``reference``: numerically within tolerance when
    both are numbers; otherwise equal as normalized strings, or (``symbolic``) judged
    equal by ``math-verify`` within ``timeout_s`` seconds (a comparison that runs out of
    time counts as different)."""
    p, r = _to_number(predicted), _to_number(reference)
    if p is not None and r is not None:
        return math.isclose(p, r, rel_tol=rel_tol, abs_tol=abs_tol)
    if _normalize(predicted).lower() == _normalize(reference).lower():
        return True
    return symbolic and symbolically_equal(predicted, reference, timeout_s)


def symbolically_equal(predicted: str, reference: str, timeout_s: float = 5.0) -> bool:
    """``math-verify``'s judgement of two LaTeX answers (``reference`` is the gold one:
    ``x=3`` matches a reference ``3``), made in a worker process that is killed and
    replaced when one comparison takes over ``timeout_s`` seconds (then: different).

    A process, not a signal, bounds the time: sympy spends it in single C calls (``9^{9^{9^9}}``
    is one integer power) that no Python-level signal handler can interrupt.
    """
    try:
        return _worker().compare(predicted, reference, timeout_s)
    except TimeoutError:
        _log.warning("math verifier: comparing %r with %r took over %ss; judged different",
                     predicted[:80], reference[:80], timeout_s)
        return False


def compare_symbolically(predicted: str, reference: str) -> bool:
    """math-verify's ``verify(parse(reference), parse(predicted))``, with no time limit."""
    from math_verify import parse, verify

    # Its own timeouts (signal.alarm) are off: the caller's process bounds the time.
    gold = parse(_as_latex(reference), parsing_timeout=None)
    target = parse(_as_latex(predicted), parsing_timeout=None)
    return bool(gold and target and verify(gold, target, timeout_seconds=None))


def serve(stdin: IO[str], stdout: IO[str]) -> None:
    """The worker process (``python -m rlkit.rewards.math``): one JSON ``[predicted,
    reference]`` per line in, ``true``/``false`` per line out, until stdin closes."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # its "timeout is disabled" notices
    compare_symbolically("x=1", "1")  # sympy and the LaTeX parser load before "ready": untimed

    print("ready", file=stdout, flush=True)
    for line in stdin:
        predicted, reference = json.loads(line)
        try:
            equal = compare_symbolically(predicted, reference)
        except Exception:  # an answer sympy cannot read is not equal to anything
            equal = False
        print(json.dumps(equal), file=stdout, flush=True)


class _SymbolicWorker:
    """One worker process per rlkit process, started on first use, so the numeric and
    string paths never pay sympy's ~2 s import. A subprocess of its own (not
    multiprocessing), so it never re-imports the user's ``__main__``."""

    START_TIMEOUT_S = 120.0

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None

    def compare(self, predicted: str, reference: str, timeout_s: float) -> bool:
        if self._process is None or self._process.poll() is not None:
            self._start()
        self._process.stdin.write(json.dumps([predicted, reference]) + "\n")
        self._process.stdin.flush()
        return json.loads(self._read_line(timeout_s))

    def _start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "rlkit.rewards.math"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        try:
            ready = self._read_line(self.START_TIMEOUT_S)
        except TimeoutError:
            ready = None
        if ready != "ready":
            self.stop()
            raise RuntimeError("the math-verify worker process (python -m rlkit.rewards.math) did not start")

    def _read_line(self, timeout_s: float) -> str:
        """The worker's next line; kills it and raises TimeoutError after ``timeout_s``."""
        readable, _, _ = select.select([self._process.stdout], [], [], timeout_s)
        if not readable:
            self.stop()
            raise TimeoutError
        return self._process.stdout.readline().strip()

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process.stdin.close()
            self._process.stdout.close()
        self._process = None


_WORKER: _SymbolicWorker | None = None


def _worker() -> _SymbolicWorker:
    global _WORKER
    if _WORKER is None:
        _WORKER = _SymbolicWorker()
        atexit.register(_WORKER.stop)
    return _WORKER


def _as_latex(answer: str) -> str:
    """``answer`` in math mode for math-verify's LaTeX extraction, unless it already is."""
    s = answer.strip()
    if s.startswith(("$", "\\(", "\\[")) or _BOXED.match(s):
        return s
    return f"${s}$"


def answer_key(answer: str) -> str:
    """A key under which equal answers meet: the value of a number, else the normalized,
    lower-cased text (symbolically equal forms such as ``\\pi/2`` and ``\\frac{\\pi}{2}`` stay apart)."""
    number = _to_number(answer)
    return f"{number:.9g}" if number is not None else _normalize(answer).lower()


def majority_answer(texts: Sequence[str]) -> str | None:
    """The final answer most of ``texts`` state (maj@k's vote; ties go to the answer seen
    first); None when none states one."""
    votes: dict[str, int] = {}
    first: dict[str, str] = {}
    for text in texts:
        answer = extract_answer(text)
        if answer is None:
            continue
        key = answer_key(answer)
        votes[key] = votes.get(key, 0) + 1
        first.setdefault(key, answer)
    return first[max(votes, key=votes.__getitem__)] if votes else None


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
        #: Compare answers that are not both numbers with math-verify (sympy) too.
        symbolic: bool = True
        #: Seconds one symbolic comparison may take before it counts as different.
        symbolic_timeout_s: float = 5.0

    config: Config

    def is_correct(self, sample: PromptSample, completion: Completion) -> bool | None:
        if sample.answer is None:
            return None
        predicted = extract_answer(completion.text)
        c = self.config
        return predicted is not None and answers_match(
            predicted, sample.answer, c.rel_tol, c.abs_tol, c.symbolic, c.symbolic_timeout_s
        )

    def score(self, sample: PromptSample, completion: Completion) -> float:
        correct = self.is_correct(sample, completion)
        if correct is None:
            raise ValueError("sample has no reference answer")
        return self.config.correct_score if correct else self.config.wrong_score


def last_boxed(text: str) -> str | None:
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


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)
