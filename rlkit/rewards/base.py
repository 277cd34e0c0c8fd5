"""The reward interface: (sample, completion) pairs in, one scalar each out.

Most rewards score one completion at a time; they subclass ``PerSampleReward`` and
implement ``score``. The base class owns the batching and the one error-handling policy
every reward shares (``on_error`` in its config):

* ``"raise"`` (default): the first failing sample raises ``RewardError``, whose message
  names the reward, the sample's index and a short preview of its prompt and completion.
* ``"zero"``: a failing sample scores 0 (and 0 in every part), ``RewardOutput.failures``
  counts it, and one warning per batch reports how many failed and the first error.

Time limits (``timeout_s`` for the whole batch, ``sample_timeout_s`` for one sample; null:
none) turn a hung scoring call into such a failure: the call is abandoned, its sample fails
with :class:`RewardTimeout`, and ``on_error`` decides as for any other error. With a limit
set, samples are scored in a daemon thread that is left behind when a call hangs. Python
code (loops, sleeps, sockets, subprocesses) is abandoned this way; a C extension that
never releases the GIL cannot be, and belongs in a subprocess of the reward function.
"""

from __future__ import annotations

import logging
import math
import numbers
import queue
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Optional, Sequence, Union

from rlkit.schema import Choice, above
from rlkit.types import Completion, PromptSample, RewardOutput

_log = logging.getLogger(__name__)

#: What a reward does with a sample it fails to score (see the module docstring). Built
#: with the functional API because ``raise`` is a keyword (OmegaConf matches member names).
OnError = Choice("OnError", [("raise", "raise"), ("zero", "zero")])
ON_ERROR = tuple(OnError)

#: What ``PerSampleReward.score`` returns: a score, or named parts whose sum is the score.
Score = Union[float, Mapping[str, float]]


class Reward(ABC):
    """A batched reward.

    Implementations set ``Config`` to a dataclass (the typed schema of their config
    group entry) and are constructed as ``Reward(config)``.
    """

    Config: type

    @abstractmethod
    def __call__(
        self, samples: Sequence[PromptSample], completions: Sequence[Completion]
    ) -> RewardOutput:
        """Score ``completions[i]``, a completion of ``samples[i]``."""

    def is_correct(self, sample: PromptSample, completion: Completion) -> Optional[bool]:
        """Whether ``completion`` answers ``sample`` correctly, or None when this reward
        cannot tell (it scores style, or the sample has no reference answer). Held-out
        ``accuracy`` and ``pass@k`` and the training ``accuracy`` count these verdicts."""
        return None

    @property
    def judges_correctness(self) -> bool:
        """Whether this reward gives verdicts (overrides :meth:`is_correct`)."""
        return type(self).is_correct is not Reward.is_correct


class RewardError(RuntimeError):
    """A reward raised on one sample; the original exception is ``__cause__``."""

    def __init__(
        self,
        reward: str,
        index: int,
        sample: PromptSample,
        completion: Completion,
        cause: BaseException,
    ):
        self.reward, self.index = reward, index
        super().__init__(
            f"reward {reward} failed on sample {index} "
            f"(prompt {_preview(_prompt_text(sample))}, completion {_preview(completion.text)}): "
            f"{type(cause).__name__}: {cause}"
        )


class RewardTimeout(TimeoutError):
    """A scoring call took longer than its time limit and was abandoned."""


class PerSampleReward(Reward):
    """A reward computed independently for each (sample, completion) pair.

    Subclasses derive their ``Config`` from ``PerSampleReward.Config`` (which adds
    ``on_error``), call ``super().__init__(config)`` and implement ``score``.
    """

    @dataclass
    class Config:
        on_error: OnError = OnError["raise"]  # raise | zero, see the module docstring
        #: Seconds one batch may take (null: no limit); samples left unscored then fail.
        timeout_s: Optional[float] = field(default=None, metadata=above(0))
        #: Seconds one sample may take (null: no limit); a slower call is abandoned and fails.
        sample_timeout_s: Optional[float] = field(default=None, metadata=above(0))

    def __init__(self, config: PerSampleReward.Config):
        self.config = config
        if config.on_error not in ON_ERROR:
            raise ValueError(
                f"{self.name}: on_error must be one of {ON_ERROR}, got {config.on_error!r}"
            )
        for key in ("timeout_s", "sample_timeout_s"):
            limit = getattr(config, key)
            if limit is not None and not (isinstance(limit, (int, float)) and limit > 0):
                raise ValueError(f"reward.{key} must be a positive number of seconds or null, got {limit!r}")

    @property
    def name(self) -> str:
        """How errors and warnings refer to this reward."""
        return type(self).__name__

    @abstractmethod
    def score(self, sample: PromptSample, completion: Completion) -> Score:
        """The score of one completion, or a mapping of named parts that sum to it."""

    def __call__(
        self, samples: Sequence[PromptSample], completions: Sequence[Completion]
    ) -> RewardOutput:
        """Score each pair; parts are reported when ``score`` returns mappings.

        A part missing from one sample's mapping counts 0 for that sample.
        """
        if len(samples) != len(completions):
            raise ValueError(
                f"{self.name}: {len(samples)} samples but {len(completions)} completions"
            )
        scores: list[float] = []
        rows: list[dict[str, float]] = []
        errors: list[RewardError] = []
        for index, result in enumerate(self._score_all(samples, completions)):
            sample, completion = samples[index], completions[index]
            try:
                score, parts = _checked(result())
            except Exception as exc:  # any failure of the scoring code is handled by on_error
                error = RewardError(self.name, index, sample, completion, exc)
                if self.config.on_error == "raise":
                    raise error from exc
                errors.append(error)
                score, parts = 0.0, {}
            scores.append(score)
            rows.append(parts)
        if errors:
            _log.warning(
                "%s: %d of %d samples failed and scored 0; first: %s",
                self.name,
                len(errors),
                len(samples),
                errors[0],
            )
        names = dict.fromkeys(name for row in rows for name in row)
        return RewardOutput(
            scores=scores,
            parts={name: [row.get(name, 0.0) for row in rows] for name in names},
            failures=len(errors),
        )


    def _score_all(
        self, samples: Sequence[PromptSample], completions: Sequence[Completion]
    ) -> Iterator[Callable[[], Score]]:
        """Per sample, in order, a thunk returning its score or raising its error."""
        batch_limit, sample_limit = self.config.timeout_s, self.config.sample_timeout_s
        if batch_limit is None and sample_limit is None:
            for sample, completion in zip(samples, completions):
                yield lambda s=sample, c=completion: self.score(s, c)
            return
        batch_deadline = None if batch_limit is None else time.monotonic() + batch_limit
        worker: _ScoringThread | None = None
        try:
            for sample, completion in zip(samples, completions):
                now = time.monotonic()
                waits = [(sample_limit, f"reward.sample_timeout_s={sample_limit:g}")] if sample_limit else []
                if batch_deadline is not None:
                    waits.append((batch_deadline - now, f"reward.timeout_s={batch_limit:g} for the batch"))
                wait, limit = min(waits)
                if wait <= 0:
                    yield _raiser(RewardTimeout(f"not scored: {limit} ran out"))
                    continue
                worker = worker or _ScoringThread(self.score, self.name)
                outcome = worker.submit(sample, completion, wait)
                if outcome is None:
                    worker.abandon()  # it is stuck in the call; the next sample gets a new thread
                    worker = None
                    yield _raiser(RewardTimeout(f"no score after {wait:.3g} s ({limit}); the call was abandoned"))
                else:
                    yield outcome
        finally:
            if worker is not None:
                worker.abandon()


class _ScoringThread:
    """Runs ``score`` calls one at a time in a daemon thread, so a hung one can be left behind."""

    def __init__(self, score: Callable[[PromptSample, Completion], Score], name: str):
        self._score = score
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._run, name=f"reward {name}", daemon=True).start()

    def _run(self) -> None:
        while (task := self._tasks.get()) is not None:
            try:
                value = self._score(*task)
                self._results.put(lambda value=value: value)
            except Exception as exc:
                self._results.put(_raiser(exc))

    def submit(self, sample: PromptSample, completion: Completion, timeout: float) -> Callable[[], Score] | None:
        """The call's outcome as a thunk, or None when it did not return within ``timeout``."""
        self._tasks.put((sample, completion))
        try:
            return self._results.get(timeout=timeout)
        except queue.Empty:
            return None

    def abandon(self) -> None:
        """Stop after the current call (a hung call keeps the daemon thread until exit)."""
        self._tasks.put(None)


def _raiser(exc: Exception) -> Callable[[], Score]:
    def fail() -> Score:
        raise exc

    return fail


def _checked(value: Score) -> tuple[float, dict[str, float]]:
    """The score and named parts of a ``score`` result, validated."""
    if isinstance(value, Mapping):
        parts = {}
        for name, part in value.items():
            if not isinstance(name, str):
                raise TypeError(f"part names must be strings, got {name!r}")
            parts[name] = _finite(part)
        return sum(parts.values()), parts
    return _finite(value), {}


def _finite(value: object) -> float:
    if not isinstance(value, numbers.Real):
        raise TypeError(f"scores must be real numbers, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"scores must be finite, got {value}")
    return float(value)


def _prompt_text(sample: PromptSample) -> str:
    if isinstance(sample.prompt, str):
        return sample.prompt
    return sample.prompt[-1].content if sample.prompt else ""


def _preview(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
