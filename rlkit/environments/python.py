"""The built-in ``python`` environment: the model writes code, the sandbox runs it against the
task's unit tests, and the test output is the observation, until every test passes.

Tasks are HumanEval/MBPP-style prompt samples whose unit tests are in their metadata
(``data=humaneval``, ``data=mbpp``; :mod:`rlkit.sandbox.unit_tests`). Each assistant turn's
code (its last fenced block, or the whole turn) runs in a fresh sandbox (:mod:`rlkit.sandbox`)
with the tests after it:

* every test passes: the episode is done;
* otherwise the observation says how many passed and the first failures with their errors
  (and the end of the output when the program crashed), and the model may try again.

Rewards: each turn's is the change in pass fraction since the previous turn, so an
episode's rewards sum to the pass fraction of its last program, whether it ended by passing,
at ``env.max_turns`` or at the token budget. A program the sandbox had to stop (wall time,
CPU time, output size, a signal) is a tool error handled by ``env.on_error``: that turn
scores 0 and the pass fraction stays where it was.

A round's programs run ``env.workers`` sandboxes at a time (each sandbox is a subprocess
the step waits on, so threads suffice), their turns returned in the episodes' order.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

from rlkit.environments.base import Environment, EnvironmentConfig, ToolError, Turn
from rlkit.sandbox.bwrap import Sandbox, SandboxConfig, Status
from rlkit.sandbox.unit_tests import UnitTests, run_tests
from rlkit.schema import above, at_least
from rlkit.types import PromptSample


@dataclass
class PythonEnvConfig(EnvironmentConfig):
    """Code checked by the task's unit tests in a sandbox; the test output is the observation."""

    #: Limits of each execution (one per assistant turn: the program, then its tests).
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    #: Seconds each test may take before it fails and the next one runs.
    test_time_s: float = field(default=2.0, metadata=above(0))
    #: Also run MBPP's ``challenge_test_list``.
    challenge_tests: bool = False
    #: Failed tests described in an observation (the rest are counted).
    max_failures_shown: int = field(default=3, metadata=at_least(1))
    #: Characters of the program's output shown when it crashed or was stopped.
    max_output_chars: int = field(default=500, metadata=at_least(0))
    #: Sandboxes run at once in a round of episodes (as ``reward.workers`` for reward=python).
    workers: int = field(default=4, metadata=at_least(1))


@dataclass
class CodeEpisode:
    """One task's tests and the pass fraction of the last program run."""

    tests: UnitTests
    pass_fraction: float = 0.0


class PythonEnvironment(Environment):
    """Runs each turn's code against the sample's unit tests; see the module docstring."""

    Config = PythonEnvConfig
    config: PythonEnvConfig

    def __init__(self, config: PythonEnvConfig):
        super().__init__(config)
        self.sandbox = Sandbox(config.sandbox)  # checked now: a missing bwrap stops the run before training

    def start(self, sample: PromptSample) -> CodeEpisode:
        return CodeEpisode(UnitTests.from_metadata(sample.metadata, self.config.challenge_tests))

    def step_all(self, states: Sequence[CodeEpisode], assistant_texts: Sequence[str]) -> list[Turn]:
        if self.config.workers == 1 or len(states) < 2:
            return super().step_all(states, assistant_texts)
        with ThreadPoolExecutor(min(self.config.workers, len(states))) as pool:
            return list(pool.map(self.safe_step, states, assistant_texts))

    def step(self, state: CodeEpisode, assistant_text: str) -> Turn:
        c = self.config
        outcome = run_tests(self.sandbox, state.tests.program(assistant_text), state.tests, c.test_time_s)
        feedback = outcome.feedback(state.tests, c.max_failures_shown, c.max_output_chars)
        if outcome.execution.status not in (Status.ok, Status.error):
            raise ToolError(feedback)
        reward = outcome.fraction - state.pass_fraction
        state.pass_fraction = outcome.fraction
        if outcome.all_passed:
            return Turn(observation=None, reward=reward, done=True, tool_calls=1)
        return Turn(observation=feedback, reward=reward, tool_calls=1)
