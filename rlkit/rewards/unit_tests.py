"""``reward=python``: run the completion's code against the sample's unit tests in a
sandbox and score the fraction of tests that pass (HumanEval, MBPP; see
:mod:`rlkit.sandbox.unit_tests` for the schemas and :mod:`rlkit.sandbox.bwrap` for the sandbox).

Whatever the code does -- raise, loop, fork, exhaust memory, flood its output, try the
network -- it only fails its tests: the sample scores what passed before. A sample without
unit tests, or a sandbox that cannot start, is an error handled by ``reward.on_error``.
The sandbox is checked when the reward is built: a missing ``bwrap`` stops the run before
training, naming the install command.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

from rlkit.rewards.base import PerSampleReward
from rlkit.sandbox.bwrap import Sandbox, SandboxConfig
from rlkit.sandbox.unit_tests import TestOutcome, UnitTests, run_tests
from rlkit.schema import above, at_least
from rlkit.types import Completion, PromptSample, RewardOutput


class UnitTestReward(PerSampleReward):
    """The pass fraction of the sample's unit tests; correct when all pass (pass@k)."""

    @dataclass
    class Config(PerSampleReward.Config):
        #: Limits of each execution (one per completion: the program, then its tests).
        sandbox: SandboxConfig = field(default_factory=SandboxConfig)
        #: Seconds each test may take before it fails and the next one runs.
        test_time_s: float = field(default=2.0, metadata=above(0))
        #: Also run MBPP's ``challenge_test_list``.
        challenge_tests: bool = False
        #: Sandboxes run at once while a batch is scored.
        workers: int = field(default=4, metadata=at_least(1))

    config: Config

    #: Outcomes kept (score and is_correct of one completion run its program once).
    CACHE_SIZE = 4096

    def __init__(self, config: Config):
        super().__init__(config)
        self.sandbox = Sandbox(config.sandbox)
        self._outcomes: OrderedDict[tuple[str, UnitTests], TestOutcome] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "UnitTestReward(python)"

    def tests(self, sample: PromptSample) -> UnitTests:
        return UnitTests.from_metadata(sample.metadata, self.config.challenge_tests)

    def outcome(self, sample: PromptSample, completion: Completion) -> TestOutcome:
        """The completion's program against the sample's tests (run once, then remembered)."""
        tests = self.tests(sample)
        key = (tests.program(completion.text), tests)
        with self._lock:
            if key in self._outcomes:
                self._outcomes.move_to_end(key)
                return self._outcomes[key]
        outcome = run_tests(self.sandbox, key[0], tests, self.config.test_time_s)
        with self._lock:
            self._outcomes[key] = outcome
            while len(self._outcomes) > self.CACHE_SIZE:
                self._outcomes.popitem(last=False)
        return outcome

    def __call__(self, samples: Sequence[PromptSample], completions: Sequence[Completion]) -> RewardOutput:
        """Runs the batch's sandboxes ``workers`` at a time, then scores (errors are raised
        again by ``score``, where ``on_error`` handles them)."""
        if self.config.workers > 1 and len(completions) > 1:
            with ThreadPoolExecutor(self.config.workers) as pool:
                list(pool.map(self._prefetch, samples, completions))
        return super().__call__(samples, completions)

    def _prefetch(self, sample: PromptSample, completion: Completion) -> None:
        try:
            self.outcome(sample, completion)
        except Exception:  # raised again, per sample, when score() runs it
            pass

    def score(self, sample: PromptSample, completion: Completion) -> float:
        return self.outcome(sample, completion).fraction

    def is_correct(self, sample: PromptSample, completion: Completion) -> bool | None:
        try:
            self.tests(sample)
        except ValueError:  # no unit tests: no verdict
            return None
        return self.outcome(sample, completion).all_passed
