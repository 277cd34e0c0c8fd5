"""The logger interface. Several loggers run at once; each gets every metric."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping


class Logger:
    """Receives scalar metrics per step and, at the end, artefacts (files)."""

    Config: type

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        raise NotImplementedError

    def log_artifact(self, path: Path) -> None:
        """Record a file produced by the run (a plot, the final model's directory)."""

    def close(self) -> None:
        """Flush and release resources. Called once, also when the run fails."""
