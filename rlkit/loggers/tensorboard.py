"""Scalars as TensorBoard event files, written with tensorboard's own writer (no torch)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from rlkit.loggers.base import Logger, RunInfo


class TensorBoardLogger(Logger):
    """Writes every metric as a scalar to ``run_dir / subdir``; artefacts are not recorded.

    View with ``tensorboard --logdir <run_dir>/tensorboard`` (or a sweep's root directory).
    """

    @dataclass
    class Config:
        subdir: str = "tensorboard"
        flush_secs: int = 30
        """Seconds between flushes to disk; ``close`` flushes the rest."""

    def __init__(self, config: Config, run: RunInfo) -> None:
        # Imported here so that this module, and its Config, load without tensorboard.
        try:
            from tensorboard.compat.proto.event_pb2 import Event
            from tensorboard.compat.proto.summary_pb2 import Summary
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError as e:
            raise ImportError(
                "TensorBoardLogger needs tensorboard: pip install 'rlkit[tensorboard]'"
            ) from e
        self._event, self._summary = Event, Summary
        self.log_dir = Path(run.run_dir) / config.subdir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._writer = EventFileWriter(str(self.log_dir), flush_secs=config.flush_secs)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        values = [
            self._summary.Value(tag=key, simple_value=float(value))
            for key, value in metrics.items()
        ]
        summary = self._summary(value=values)
        self._writer.add_event(self._event(wall_time=time.time(), step=int(step), summary=summary))

    def close(self) -> None:
        self._writer.close()  # flushes
