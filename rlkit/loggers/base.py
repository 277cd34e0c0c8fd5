"""The logger interface. Several loggers run at once; each gets every metric."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, Union


@dataclass(frozen=True)
class RunInfo:
    """What a logger may know about the run it records."""

    run_dir: Path
    name: str
    total_steps: int
    config: Mapping[str, Any] = field(default_factory=dict)


#: One sample completion of an evaluation: ``prompt``, ``completion``, ``answer`` (or None),
#: ``correct`` (or None when there is no answer), ``reward`` and ``reward/<part>`` (when a
#: reward is configured). Every row of one call has the same keys.
SampleRow = Mapping[str, Any]


class Logger:
    """Receives scalar metrics per step, sample completions at evaluations and, at the end,
    the final metrics and artefacts (files).

    Built as ``Logger(config, run)`` with ``run`` a :class:`RunInfo`. Only ``log`` is
    required; a logger that cannot record something ignores it.
    """

    Config: type

    @classmethod
    def check(cls, config: Any) -> None:
        """Raise when this logger cannot work (an unreachable server); called once before
        anything is built, so a wrong address fails in seconds."""

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        raise NotImplementedError

    def log_samples(self, rows: Sequence[SampleRow], step: int) -> None:
        """Record the sample completions of the evaluation at ``step`` (a table)."""

    def log_summary(self, metrics: Mapping[str, float]) -> None:
        """Record the final metrics of a run that completed (called once, before ``close``)."""

    def log_artifact(self, path: Path) -> None:
        """Record a file produced by the run (a plot)."""

    def log_model(self, directory: Path) -> None:
        """Record the final model's directory (loggers that can upload it decide by their
        config whether to)."""

    def close(self) -> None:
        """Flush and release resources. Called once, also when the run fails."""


def finish(loggers: Sequence[Logger], metrics: Mapping[str, float], artifacts: Sequence[Path],
           model_dir: Path) -> None:
    """Hand a completed run's final metrics, its files that exist and its model to every logger."""
    for logger in loggers:
        logger.log_summary(metrics)
        for path in artifacts:
            if Path(path).exists():
                logger.log_artifact(Path(path))
        logger.log_model(Path(model_dir))


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Union[str, int, float, bool]]]:
    """``("trainer.lr", 0.001)`` pairs of a nested config: numbers, booleans and strings as
    they are, lists as JSON, None as ``"None"`` (what trackers' hyperparameter views take)."""
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flatten_config(value, name + ".")
        elif isinstance(value, (list, tuple)):
            yield name, json.dumps(value, default=str)
        elif isinstance(value, (str, int, float, bool)):
            yield name, value
        else:
            yield name, str(value)
