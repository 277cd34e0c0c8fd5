"""rlkit's own JSON records of the jobs of a submitit sweep (Slurm or local processes).

submitit keeps its state in pickles (``<sweep>/.submitit/<id>/<id>_submitted.pkl`` and
``_result.pkl``); unpickling a file from a sweep directory runs whatever code it names, so
rlkit never reads them. Instead its launchers (:mod:`rlkit.sweeps.submitit_launchers`)
write what a summary needs as JSON, under ``<sweep dir>/.rlkit/``:

* ``submitted.jsonl``: one line per submitted job, appended by the launcher when it submits
  (a re-run sweep appends again; the last line of a job number wins)::

      {"job_id": "12_3", "job_num": 3, "overrides": ["algo.beta=0.1"],
       "resources": {"tasks_per_node": 1, "cpus_per_task": 1, ...},
       "stderr": [".../12_3_0_log.err"], "submitted_at": 1735732800.0}

* ``jobs/<job_id>.json``: written by the job itself (in its own process, on the node) when
  it starts, when Slurm's time-limit signal makes it requeue itself, and when it ends::

      {"job_id": "12_3", "job_num": 3, "state": "running" | "requeued" | "completed" | "failed",
       "error": null, "starts": 2, "requeues": 1, "host": "node7", "updated_at": ...}

  ``requeues`` is Slurm's restart count of the job (``SLURM_RESTART_COUNT``), ``starts`` how
  many times the job's function began.

Both are written atomically (temporary file + rename) or appended by whole lines, so a
killed writer leaves the previous record; readers skip what they cannot parse.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "JOB_STATES",
    "JobRecord",
    "Submission",
    "append_submissions",
    "read_job_records",
    "read_submissions",
    "update_job_record",
]

RECORDS_DIR = ".rlkit"
SUBMITTED_FILE = "submitted.jsonl"
JOBS_DIR = "jobs"
JOB_STATES = ("running", "requeued", "completed", "failed")


@dataclass
class Submission:
    """A job as its launcher submitted it."""

    job_id: str
    job_num: int
    overrides: list[str]
    resources: dict[str, Any] = field(default_factory=dict)
    stderr: list[str] = field(default_factory=list)  # submitit's stderr log of each task
    submitted_at: float = 0.0


@dataclass
class JobRecord:
    """A job as it last recorded itself."""

    job_id: str
    job_num: int | None = None
    state: str = "running"  # one of JOB_STATES
    error: str | None = None
    starts: int = 0
    requeues: int = 0
    host: str | None = None
    updated_at: float = 0.0


def _records_dir(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / RECORDS_DIR


def append_submissions(sweep_dir: str | os.PathLike[str], submissions: Iterable[Submission]) -> Path:
    """Append one JSON line per submission to ``<sweep_dir>/.rlkit/submitted.jsonl``."""
    path = _records_dir(Path(sweep_dir)) / SUBMITTED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(asdict(s)) + "\n" for s in submissions)
    with path.open("a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return path


def read_submissions(sweep_dir: str | os.PathLike[str]) -> dict[str, Submission]:
    """Job id -> its submission (for a job number submitted again, only the latest)."""
    path = _records_dir(Path(sweep_dir)) / SUBMITTED_FILE
    latest_by_num: dict[int, Submission] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        submission = _parse(line, Submission)
        if submission is not None:
            latest_by_num[submission.job_num] = submission
    return {s.job_id: s for s in latest_by_num.values()}


def _parse(text: str, kind: type) -> Any:
    """``kind(**json)`` with type checks on the fields a reader relies on; None if invalid."""
    try:
        data = json.loads(text)
        record = kind(**data) if isinstance(data, dict) else None
    except (ValueError, TypeError):
        return None
    if record is None or not isinstance(record.job_id, str):
        return None
    if isinstance(record, Submission):
        if not isinstance(record.job_num, int) or not isinstance(record.overrides, list):
            return None
        record.overrides = [str(o) for o in record.overrides]
        record.stderr = [str(p) for p in record.stderr] if isinstance(record.stderr, list) else []
    elif record.state not in JOB_STATES or not isinstance(record.requeues, int):
        return None
    return record


def _job_record_path(sweep_dir: Path, job_id: str) -> Path:
    return _records_dir(sweep_dir) / JOBS_DIR / f"{job_id}.json"


def read_job_records(sweep_dir: str | os.PathLike[str]) -> dict[str, JobRecord]:
    """Job id -> the job's own latest record."""
    folder = _records_dir(Path(sweep_dir)) / JOBS_DIR
    if not folder.is_dir():
        return {}
    records = {}
    for path in folder.glob("*.json"):
        try:
            record = _parse(path.read_text(encoding="utf-8", errors="replace"), JobRecord)
        except OSError:
            continue
        if record is not None and record.job_id == path.stem:
            records[record.job_id] = record
    return records


def update_job_record(
    sweep_dir: str | os.PathLike[str],
    job_id: str,
    *,
    state: str,
    job_num: int | None = None,
    error: str | None = None,
    started: bool = False,
    requeues: int | None = None,
) -> JobRecord:
    """Set a job's state (``started``: one more start) and write its record atomically."""
    if state not in JOB_STATES:
        raise ValueError(f"job state must be one of {JOB_STATES}, not {state!r}")
    path = _job_record_path(Path(sweep_dir), job_id)
    try:
        record = _parse(path.read_text(encoding="utf-8"), JobRecord) or JobRecord(job_id)
    except OSError:
        record = JobRecord(job_id)
    record.state, record.error = state, error
    if job_num is not None:
        record.job_num = job_num
    if started:
        record.starts += 1
        record.host = socket.gethostname()
    if requeues is not None:
        record.requeues = requeues
    record.updated_at = time.time()
    _write_json(path, asdict(record))
    return record


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)
