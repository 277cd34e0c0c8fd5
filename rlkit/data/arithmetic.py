"""The built-in synthetic task: multi-digit addition, subtraction and multiplication with
verifiable answers.

Multiplication of 3-digit numbers is beyond the built-in tiny model's head arithmetic; with
``tool_fraction`` > 0 part of the SFT demonstrations call the ``calculator`` environment's
tool instead (``<calc>347 * 28</calc>``, then the answer after its result), the task of the
``sft_grpo_tools`` pipeline.

Deterministic from a seed. Held-out problems never appear in the train split. The same
problems serve every algorithm: SFT pairs, preference pairs (correct vs wrong answer) and
RL prompts whose answers a verifier checks.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Optional

from rlkit.data.base import Dataset
from rlkit.environments.base import OBSERVATION_ROLE
from rlkit.environments.calculator import CalculatorEnvironment
from rlkit.types import Message, PreferenceSample, PromptSample, Sample, SampleKind, SFTSample

_log = logging.getLogger(__name__)

OPERATIONS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@dataclass(frozen=True)
class Problem:
    a: int
    op: str
    b: int

    @property
    def answer(self) -> int:
        return OPERATIONS[self.op](self.a, self.b)

    @property
    def question(self) -> str:
        return f"What is {self.a} {self.op} {self.b}?"


@dataclass
class ArithmeticConfig:
    """Addition, subtraction and multiplication problems with verifiable answers, made on the fly (the demo's task)."""

    #: Operands have 1 to ``digits`` digits.
    digits: int = 2
    operations: list[str] = field(default_factory=lambda: ["+", "-"])
    train_size: int = 20000
    eval_size: int = 200
    seed: int = 1234
    #: Chat messages (rendered by the chat template) or raw "Q: ... A:" text prompts.
    chat: bool = True
    #: Preference pairs: the wrong answer is off by min_wrong_offset..max_wrong_offset, either
    #: way. Off by 30 to 50 (3 to 5 tens), the warm start's own log-probabilities rank 96% of
    #: held-out pairs right (off by 10 to 20: 85%; off by 1 to 9, a wrong units digit: 62%),
    #: so preference training sharpens knowledge it has. Surface features decide few pairs:
    #: preferring the shorter answer, or the one nearer zero, is right for 54% and 60%.
    min_wrong_offset: int = 30
    max_wrong_offset: int = 50
    #: Share of SFT demonstrations that work the sum out column by column before the
    #: answer ("7+8=15 4+3+1=8 so 85"); the rest state the answer alone.
    worked_fraction: float = 0.0
    #: Share of SFT problems demonstrated with the calculator tool (env=calculator): a turn
    #: ``<calc>347 * 28</calc>``, then, after the tool's message with the result, the answer
    #: (two samples, one per assistant turn, so the tool's result is never a target).
    tool_fraction: float = 0.0
    #: Share of SFT problems demonstrated reading the tool's result: the answer after the
    #: call and its result (the call itself is a target only for ``tool_fraction`` of them;
    #: the others are also answered directly). Null: ``tool_fraction``. Larger, it teaches
    #: copying the result without making the call more likely than the direct answer.
    tool_result_fraction: Optional[float] = None


class ArithmeticTask(Dataset):
    """The built-in task: arithmetic problems as SFT, preference or prompt samples (no download)."""

    Config = ArithmeticConfig

    def __init__(self, config: ArithmeticConfig):
        if config.digits < 1:
            raise ValueError(f"data.digits must be >= 1, got {config.digits}")
        unknown = set(config.operations) - set(OPERATIONS)
        if unknown or not config.operations:
            raise ValueError(f"data.operations: unsupported {sorted(unknown)}; choose from '+', '-', '*'")
        for key in ("worked_fraction", "tool_fraction", "tool_result_fraction"):
            value = getattr(config, key)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"data.{key} must be in [0, 1], got {value}")
        if config.tool_result_fraction is not None and config.tool_result_fraction < config.tool_fraction:
            raise ValueError(f"data.tool_result_fraction ({config.tool_result_fraction}) must be at least "
                             f"data.tool_fraction ({config.tool_fraction}): every demonstrated call gets its result")
        if config.worked_fraction > 0 and "*" in config.operations:
            raise ValueError("data.worked_fraction: worked solutions exist for '+' and '-' only, not '*'")
        if max(config.tool_fraction, config.tool_result_fraction or 0.0) > 0 and not config.chat:
            raise ValueError("data.tool_fraction and data.tool_result_fraction need data.chat=true "
                             "(tool results are chat messages)")
        if not 1 <= config.min_wrong_offset <= config.max_wrong_offset:
            raise ValueError("data: need 1 <= min_wrong_offset <= max_wrong_offset, got "
                             f"{config.min_wrong_offset} and {config.max_wrong_offset}")
        self.config = config
        self.problems = self._generate()

    def _generate(self) -> dict[str, list[Problem]]:
        cfg = self.config
        rng = random.Random(cfg.seed)
        high = 10**cfg.digits - 1
        space = (high + 1) ** 2 * len(cfg.operations)
        eval_size = cfg.eval_size
        if eval_size > space // 2:
            # Few distinct problems (1 digit: 200): hold out a quarter so most remain to train on.
            eval_size = space // 4
            _log.warning("data.eval_size=%d is over half of the %d distinct %d-digit problems; holding out %d",
                         cfg.eval_size, space, cfg.digits, eval_size)

        def draw() -> Problem:
            return Problem(rng.randint(0, high), rng.choice(cfg.operations), rng.randint(0, high))

        held_out: dict[Problem, None] = {}
        while len(held_out) < eval_size:
            held_out[draw()] = None
        train = []
        while len(train) < cfg.train_size:
            problem = draw()
            if problem not in held_out:
                train.append(problem)
        return {"train": train, "eval": list(held_out)}

    def prompt(self, problem: Problem):
        if self.config.chat:
            return (Message("user", problem.question),)
        return f"Q: {problem.question}\nA:"

    def completion(self, answer: int | str) -> str:
        return str(answer) if self.config.chat else f" {answer}"

    def demonstration(self, problem: Problem, rng: random.Random) -> str:
        """The SFT answer: worked column by column for a ``worked_fraction`` share, else bare."""
        if rng.random() < self.config.worked_fraction:
            return worked_solution(problem, self.config.digits)
        return str(problem.answer)

    def tool_call(self, problem: Problem) -> SFTSample:
        """The calculator call as the first assistant turn.

        The call repeats the question's expression verbatim (``347 * 28``, spaces included),
        so writing it is an exact copy of prompt tokens, the copy a small model learns soonest.
        """
        return SFTSample(self.prompt(problem), CalculatorEnvironment.call(f"{problem.a} {problem.op} {problem.b}"),
                         str(problem.answer))

    def tool_result_answer(self, problem: Problem) -> SFTSample:
        """The answer after the call and the tool's message with its result (never a target)."""
        call = self.tool_call(problem).completion
        after_call = (*self.prompt(problem), Message("assistant", call), Message(OBSERVATION_ROLE, str(problem.answer)))
        return SFTSample(after_call, str(problem.answer), str(problem.answer))

    def wrong_answer(self, problem: Problem, rng: random.Random) -> int:
        offset = rng.randint(self.config.min_wrong_offset, self.config.max_wrong_offset)
        return problem.answer + rng.choice((-1, 1)) * offset

    def load(self, split: str, kind: SampleKind) -> list[Sample]:
        if split not in self.problems:
            raise ValueError(f"unknown split {split!r}; splits: train, eval")
        problems = self.problems[split]
        kind = SampleKind(kind)
        if kind is SampleKind.SFT:
            rng = random.Random(f"{self.config.seed}-{split}-worked")
            tools = random.Random(f"{self.config.seed}-{split}-tool")
            samples: list[Sample] = []
            result_fraction = self.config.tool_result_fraction
            if result_fraction is None:
                result_fraction = self.config.tool_fraction
            for p in problems:
                draw = tools.random()
                if draw < self.config.tool_fraction:
                    samples.append(self.tool_call(p))
                else:
                    samples.append(SFTSample(self.prompt(p), self.completion(self.demonstration(p, rng)), str(p.answer)))
                if draw < result_fraction:
                    samples.append(self.tool_result_answer(p))
            return samples
        if kind is SampleKind.PROMPT:
            return [PromptSample(self.prompt(p), str(p.answer)) for p in problems]
        rng = random.Random(f"{self.config.seed}-{split}-preference")
        return [
            PreferenceSample(self.prompt(p), self.completion(p.answer), self.completion(self.wrong_answer(p, rng)))
            for p in problems
        ]


def worked_solution(problem: Problem, columns: int) -> str:
    """Column arithmetic over ``columns`` places from the ones up, ending with the answer.

    ``47 + 38`` -> ``7+8=15 4+3+1=8 so 85``; ``47 - 38`` -> ``17-8=9 4-1-3=0 so 9``; a
    negative difference is worked as the reversed one, which the first clause states:
    ``38 - 47`` -> ``47-38 17-8=9 4-1-3=0 so -9``. Each clause needs two digits of the
    question and a one-digit sum, which a small model learns far sooner than the answer
    in one go.
    """
    swap = problem.op == "-" and problem.a < problem.b
    top, bottom = (problem.b, problem.a) if swap else (problem.a, problem.b)
    clauses = [f"{top}-{bottom}"] if swap else []
    carry = 0  # carried (addition) or borrowed (subtraction) into the current column
    for place in range(columns):
        x, y = top // 10**place % 10, bottom // 10**place % 10
        if problem.op == "+":
            value = x + y + carry
            clauses.append(f"{x}+{y}" + (f"+{carry}" if carry else "") + f"={value}")
            carry = value // 10
        else:
            borrow = int(x - carry < y)
            value = x + 10 * borrow - carry - y
            clauses.append(f"{x + 10 * borrow}" + (f"-{carry}" if carry else "") + f"-{y}={value}")
            carry = borrow
    return " ".join(clauses) + f" so {problem.answer}"
