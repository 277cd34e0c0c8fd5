"""The files of a run directory, each with one owner.

    <run dir>/
        metrics.jsonl      one JSON object per logged step (the jsonl logger writes it)
        metrics.png        the algorithm's plot keys against step, drawn at the end
        status.json        running | completed | failed: step, error, final metrics (RunStatus)
        eval.json          the figures of an evaluation run (rlkit.evaluate)
        checkpoints/       step_XXXXXXXX/ directories (rlkit.trainer.checkpoint)
        final/             the final model in Hugging Face format
        placement.jsonl    cluster=... runs: which Ray node each actor ran on (rlkit.cluster.nodes)
        manifest.json      what produced the run: versions, command, input hashes (rlkit.manifest)
        samples/           step_N.jsonl: completions of held-out prompts at each evaluation
        data/              rows handed to rlkit.train in memory, as JSONL (rlkit.api)

Every reader and writer of these paths takes them from :class:`RunOutputs` (the trainer,
the launchers, loggers, pipelines, sweep summaries), and ``status.json`` is read and
written only through :class:`RunStatus`. This module imports neither torch nor Hydra.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

METRICS_FILE = "metrics.jsonl"
MANIFEST_FILE = "manifest.json"
STATUS_FILE = "status.json"
STATUSES = ("running", "completed", "failed")


@dataclass
class RunStatus:
    """The content of ``status.json``."""

    #: running | completed | failed
    status: str
    #: Optimizer steps taken when the status was written.
    step: int = 0
    #: ``Type: message`` of the failure (``rank R: ...`` when a launched rank failed).
    error: Optional[str] = None
    #: The final held-out metrics of a completed run.
    metrics: dict[str, float] = field(default_factory=dict)
    #: The log file holding a failure's traceback (set by the sweep callback).
    log: Optional[str] = None

    @classmethod
    def read(cls, path: Path) -> Optional["RunStatus"]:
        """The status in ``path``, or None when it is missing or not a status record."""
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("status") not in STATUSES:
            return None
        return cls(status=record["status"], step=int(record.get("step") or 0), error=record.get("error"),
                   metrics=dict(record.get("metrics") or {}), log=record.get("log"))

    def write(self, path: Path) -> None:
        """Replace ``path`` atomically (a reader never sees half a record). Strict JSON:
        a non-finite metric is written as ``null``, as in metrics.jsonl."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        record = asdict(self)
        record["metrics"] = {key: _finite_or_none(value) for key, value in self.metrics.items()}
        tmp.write_text(json.dumps(record, allow_nan=False), encoding="utf-8")
        tmp.replace(path)


@dataclass(frozen=True)
class RunOutputs:
    """Where a run writes: paths of its files, and its status."""

    run_dir: Path

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def final(self) -> Path:
        return self.run_dir / "final"

    @property
    def metrics(self) -> Path:
        return self.run_dir / METRICS_FILE

    @property
    def metrics_plot(self) -> Path:
        return self.run_dir / "metrics.png"

    @property
    def placement(self) -> Path:
        return self.run_dir / "placement.jsonl"

    @property
    def manifest(self) -> Path:
        return self.run_dir / MANIFEST_FILE

    @property
    def samples(self) -> Path:
        """``step_N.jsonl`` files of sample completions, one per evaluation."""
        return self.run_dir / "samples"

    @property
    def data(self) -> Path:
        """Rows given to :func:`rlkit.train` in memory, written as ``<split>.jsonl``."""
        return self.run_dir / "data"

    @property
    def status_file(self) -> Path:
        return self.run_dir / STATUS_FILE

    @property
    def evaluation(self) -> Path:
        """``eval.json``: the figures of ``python -m rlkit.evaluate`` or an evaluation stage."""
        return self.run_dir / "eval.json"

    def status(self) -> Optional[RunStatus]:
        return RunStatus.read(self.status_file)

    def write_status(self, status: str, step: int, error: str | None = None,
                     metrics: dict[str, float] | None = None) -> None:
        RunStatus(status, step, error, dict(metrics or {})).write(self.status_file)

    def mark_failed(self, error: str, log: str | None = None, keep_recorded_error: bool = False) -> None:
        """Mark the run failed at its recorded step; ``log`` names the file with the traceback.
        ``keep_recorded_error`` keeps an error the trainer already recorded (the first cause).
        A completed run stays completed."""
        current = self.status() or RunStatus("failed")
        if current.status == "completed":
            return
        if not (keep_recorded_error and current.status == "failed" and current.error):
            current.error = error
        current.status = "failed"
        current.log = log if log is not None else current.log
        current.write(self.status_file)

    def completed(self) -> Optional[RunStatus]:
        """The status of a run that completed here (its final model exists), else None."""
        status = self.status()
        if status is None or status.status != "completed" or not (self.final / "config.json").exists():
            return None
        return status


def _finite_or_none(value):
    return value if not isinstance(value, float) or math.isfinite(value) else None
