"""Model-written Python checked by unit tests in a sandbox: HumanEval- and MBPP-style tasks.

A task's tests come with its prompt sample (``PromptSample.metadata``, kept from the
dataset's columns by ``data.metadata``), in either hub schema:

* HumanEval (``openai/openai_humaneval``): ``test`` defines ``check(candidate)``, whose
  top-level statements are the tests (a statement without an ``assert`` runs as part of the
  next test), ``entry_point`` names the function; ``prompt`` (the signature and docstring
  the completion continues) is the program's start.
* MBPP (``google-research-datasets/mbpp``): ``test_list`` (one ``assert`` per test),
  ``test_setup_code``, and optionally ``challenge_test_list``.

Each program runs once per sandbox (:mod:`rlkit.sandbox.harness` runs the tests one by one
after it), and the outcome is the pass fraction with the failures in words.
"""

from __future__ import annotations

import ast
import json
import re
import secrets
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Mapping, Optional

from rlkit.sandbox.bwrap import Execution, Sandbox, Status

#: A fenced code block: ```python ... ``` (or ```py, or no language).
_FENCE = re.compile(r"```(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class UnitTests:
    """Python tests of one task: ``setup`` runs after the program, then each of ``tests``."""

    tests: tuple[str, ...]
    setup: str = ""
    #: Code the program starts with (HumanEval's prompt: imports, signature, docstring).
    preamble: str = ""
    #: The function the tests call, when the program must define it.
    entry_point: Optional[str] = None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], challenge: bool = False) -> "UnitTests":
        """The tests of a sample in HumanEval's or MBPP's schema (``challenge``: with MBPP's
        ``challenge_test_list``); ValueError naming the keys when it has neither."""
        if "test" in metadata and "entry_point" in metadata:
            return humaneval_tests(str(metadata["test"]), str(metadata["entry_point"]), str(metadata.get("prompt", "")))
        if "test_list" in metadata:
            tests = list(metadata["test_list"]) + list((challenge and metadata.get("challenge_test_list")) or [])
            if not tests:
                raise ValueError("the sample's test_list is empty")
            return cls(tests=tuple(map(str, tests)), setup=str(metadata.get("test_setup_code") or ""))
        raise ValueError(
            f"the sample has no unit tests: its metadata has {sorted(metadata) or 'no keys'}, expected "
            "'test' and 'entry_point' (HumanEval) or 'test_list' (MBPP); keep those columns with data.metadata"
        )

    def program(self, completion_text: str) -> str:
        """The program to test: the completion's code (its last fenced block, or all of it),
        after the preamble unless the code defines the entry point itself (then after the
        preamble's imports only)."""
        code = extract_code(completion_text)
        if not self.preamble:
            return code
        if self.entry_point and re.search(rf"^\s*def\s+{re.escape(self.entry_point)}\s*\(", code, re.MULTILINE):
            imports = [line for line in self.preamble.splitlines() if line.startswith(("import ", "from "))]
            return "\n".join([*imports, code])
        return self.preamble + code


def humaneval_tests(test: str, entry_point: str, prompt: str = "") -> UnitTests:
    """HumanEval's ``check(candidate)`` split into its statements, each one test."""
    module = ast.parse(test)
    check = next((node for node in module.body if isinstance(node, ast.FunctionDef) and node.name == "check"), None)
    if check is None or not check.args.args:
        raise ValueError("HumanEval 'test' must define check(candidate)")
    tests, pending = [], []
    for statement in check.body:
        pending.append(ast.unparse(statement))
        if any(isinstance(node, ast.Assert) for node in ast.walk(statement)):
            tests.append("\n".join(pending))
            pending = []
    if pending and tests:
        tests[-1] += "\n" + "\n".join(pending)
    if not tests:
        raise ValueError("HumanEval 'test': check() has no assert statement")
    setup = f"{test}\n{check.args.args[0].arg} = {entry_point}\n"
    return UnitTests(tests=tuple(tests), setup=setup, preamble=prompt, entry_point=entry_point)


def extract_code(text: str) -> str:
    """The last fenced code block of ``text``, or ``text`` itself when it has none."""
    blocks = _FENCE.findall(text)
    return blocks[-1] if blocks else text


@dataclass
class TestOutcome:
    """How a program fared against its tests."""

    passed: int
    total: int
    #: ``(test index, error)`` of each failed test ("not run" when the sandbox ended first).
    failures: list[tuple[int, str]] = field(default_factory=list)
    #: Why no test ran: the program itself failed (its error), else None.
    program_error: Optional[str] = None
    execution: Optional[Execution] = None

    @property
    def fraction(self) -> float:
        return self.passed / self.total

    @property
    def all_passed(self) -> bool:
        return self.passed == self.total

    def feedback(self, tests: UnitTests, max_failures: int = 3, max_output_chars: int = 500) -> str:
        """What a model is told about its program: the count, the first failures (test and
        error), and how the sandbox ended when it did not end normally, with the output tail."""
        lines = [f"{self.passed}/{self.total} tests passed."]
        if self.program_error:
            lines.append(f"The program failed before any test ran: {self.program_error}")
        else:
            for index, error in self.failures[:max_failures]:
                lines.append(f"Failed: {tests.tests[index].strip()}\n  -> {error}")
            if len(self.failures) > max_failures:
                lines.append(f"... and {len(self.failures) - max_failures} more failed.")
        execution = self.execution
        if execution is not None and execution.status not in (Status.ok, Status.error):
            lines.append(f"The sandbox stopped the program: {execution.summary()}.")
        output = (execution.stdout + execution.stderr).strip() if execution else ""
        if output and max_output_chars and (self.program_error or execution.status is not Status.ok):
            lines.append("Output (end):\n" + output[-max_output_chars:])
        return "\n".join(lines)


def run_tests(sandbox: Sandbox, program: str, tests: UnitTests, test_time_s: float = 2.0) -> TestOutcome:
    """Run ``program`` and then ``tests`` in a fresh sandbox. Whatever the program does, the
    result is an outcome (tests not reported before the sandbox ended have failed);
    only a sandbox that cannot start raises (:class:`~rlkit.sandbox.bwrap.SandboxError`)."""
    nonce = secrets.token_hex(16)
    task = {"program": program, "setup": tests.setup, "tests": list(tests.tests), "test_time_s": test_time_s,
            "nonce": nonce}
    execution = sandbox.run(
        [sandbox.python, "-I", "harness.py"],
        {"harness.py": _HARNESS_SOURCE, "task.json": json.dumps(task)},
        report=True,
    )
    results: dict[int, str] = {}
    program_error = None
    for line in execution.report.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not (isinstance(event, list) and event and event[0] == nonce):
            continue  # not written by the harness
        if event[1] == "program":
            program_error = event[2]
        elif event[1] == "test" and isinstance(event[2], int) and 0 <= event[2] < len(tests.tests):
            results.setdefault(event[2], event[3])
    failures = [(index, results.get(index, program_error or "not run: " + execution.summary()))
                for index in range(len(tests.tests)) if results.get(index, "?") != ""]
    return TestOutcome(passed=len(tests.tests) - len(failures), total=len(tests.tests), failures=failures,
                       program_error=program_error, execution=execution)


_HARNESS_SOURCE = resources.files("rlkit.sandbox").joinpath("harness.py").read_text()
