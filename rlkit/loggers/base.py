"""The logger interface. Several loggers run at once; each gets every metric."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


@dataclass(frozen=True)
class RunInfo:
    """What a logger may know about the run it records."""

    run_dir: Path
    name: str
    total_steps: int
    config: Mapping[str, Any] = field(default_factory=dict)


class Logger:
    """Receives scalar metrics per step and, at the end, artefacts (files).

    Built as ``Logger(config, run)`` with ``run`` a :class:`RunInfo`.
    """

    Config: type

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        raise NotImplementedError

    def log_artifact(self, path: Path) -> None:
        """Record a file produced by the run (a plot, the final model's directory)."""

    def close(self) -> None:
        """Flush and release resources. Called once, also when the run fails."""
