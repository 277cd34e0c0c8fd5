"""Metrics as JSON Lines: one object per ``log`` call, ``{"step": int, "<metric>": float, ...}``;
sample completions of each evaluation as ``samples/step_<step>.jsonl``, one row per line.

The file is plain text that survives a killed run (each line is flushed) and is read
back by :func:`read_metrics` (plots, sweep summaries). On resume the trainer calls
:func:`truncate_after` with the checkpoint's step so the replayed steps are not doubled.

Non-finite values are written as ``null`` (strict JSON) and read back as ``nan``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from rlkit.loggers.base import Logger, RunInfo, SampleRow
from rlkit.outputs import RunOutputs


class JsonlLogger(Logger):
    """Appends one JSON line per ``log`` call to the run's metrics file
    (:attr:`rlkit.outputs.RunOutputs.metrics`, which resume, plots and summaries read)."""

    @dataclass
    class Config:
        pass

    def __init__(self, config: Config, run: RunInfo) -> None:
        outputs = RunOutputs(Path(run.run_dir))
        self.path = outputs.metrics
        self.samples_dir = outputs.samples
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        if "step" in metrics:
            raise ValueError("'step' is reserved in metrics.jsonl; rename the metric")
        record: dict[str, Any] = {"step": int(step)}
        for key, value in metrics.items():
            value = float(value)  # numpy / torch scalars too
            record[key] = value if math.isfinite(value) else None
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def log_samples(self, rows: Sequence[SampleRow], step: int) -> None:
        """Write ``samples/step_<step>.jsonl`` (replaced when a resumed run repeats the step)."""
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        path = self.samples_dir / f"step_{int(step)}.jsonl"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(dict(row)) + "\n" for row in rows), encoding="utf-8")
        os.replace(tmp, path)

    def close(self) -> None:
        self._file.close()


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """The records of a metrics file, in order (``step`` is an int, ``null`` becomes ``nan``)."""
    return [
        {key: math.nan if value is None else value for key, value in record.items()}
        for _, record in _records(Path(path))
    ]


def truncate_after(path: str | os.PathLike[str], step: int) -> None:
    """Keep only the lines whose step is ``<= step``; atomic (temp file + ``os.replace``).

    Called on resume from a checkpoint taken at ``step``. A missing file is left missing.
    """
    path = Path(path)
    if not path.exists():
        return
    kept = [line for line, record in _records(path) if record["step"] <= step]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.writelines(kept)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(line, record)`` pairs, skipping blank lines and a torn last line of a killed run.

    A line that is not a JSON object raises ValueError naming the file and the line.
    """
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            if not line.endswith("\n"):
                return  # the final write was cut short
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} line {number}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path} line {number}: not a JSON object")
            yield line, record
