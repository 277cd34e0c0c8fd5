"""The jobs of a Hydra multirun (sweep) directory, as far as their files tell.

Layout read (Hydra's default ``<sweep_dir>/<job_num>/``; any depth is found):

* ``<job>/.hydra/overrides.yaml``: the job's overrides (a YAML list of strings); a directory
  holding it is a job directory.
* ``<job>/.hydra/hydra.yaml``: ``hydra.job.num`` and ``hydra.job.id`` (the Slurm job id under
  a submitit launcher).
* ``<job>/metrics.jsonl``: one JSON object per line, ``{"step": int, "<metric>": float}``;
  eval metrics are prefixed ``eval/``. The final value of a metric is its last logged one.
* ``<job>/status.json``: written by the trainer, ``{"status": "running" | "completed" |
  "failed", "step": int, "error": str | null, "log": str | null}``.
* ``<sweep_dir>/.rlkit/``: the JSON records of rlkit's submitit launchers
  (:mod:`rlkit.sweeps.records`) and the logs they name (:mod:`rlkit.sweeps.slurm_state`).
  A job without ``status.json`` is ``pending`` until it starts, ``failed`` when its record
  or its logs say so (an exception, a Slurm cancellation), ``unknown`` otherwise. Submitted
  jobs that have not started yet (no job directory) are listed as ``pending``.

Every file is parsed as YAML (safe loader), JSON or text: nothing from the sweep directory
is unpickled. Light module: no torch, no submitit.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlkit.loggers.jsonl import read_metrics
from rlkit.outputs import METRICS_FILE, STATUS_FILE
from rlkit.sweeps.records import read_job_records, read_submissions
from rlkit.sweeps.slurm_state import SlurmFacts, slurm_outcome

__all__ = ["METRICS_FILE", "STATUSES", "STATUS_FILE", "JobResult", "collect", "job_order"]

STATUSES = ("completed", "running", "pending", "failed", "unknown")


@dataclass
class JobResult:
    """One job of a sweep, as far as its files tell."""

    job_dir: Path | None  # None: submitted but not started (no job directory yet)
    job_num: int | None  # Hydra's job number (the default sub-directory name)
    job_id: str | None  # the Slurm job id (``1234_5`` for array task 5), when known
    overrides: list[str]
    status: str  # one of STATUSES
    step: int | None = None  # status.json's step, else the last step in metrics.jsonl
    error: str | None = None
    log: str | None = None  # a file with the details (the trainer's log, submitit's stderr)
    metrics: dict[str, float] = field(default_factory=dict)  # final value of every key
    metrics_path: Path | None = None
    requeues: int = 0  # how often Slurm requeued the job (time limit, preemption)

    @property
    def name(self) -> str:
        """A short identifier: the job number, else the Slurm id, else the directory name."""
        if self.job_num is not None:
            return str(self.job_num)
        if self.job_id is not None:
            return self.job_id
        return self.job_dir.name if self.job_dir is not None else "?"

    @property
    def label(self) -> str:
        """The overrides, space separated (what distinguishes this job in a sweep)."""
        return " ".join(self.overrides) if self.overrides else f"job {self.name}"


def collect(sweep_dir: str | os.PathLike[str], metrics_file: str = METRICS_FILE) -> list[JobResult]:
    """Read every job of a Hydra multirun directory, in job-number order.

    A broken file in one job (unreadable JSON, missing overrides) is reported on that job
    (``error``) instead of failing the whole summary.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory not found: {sweep_dir}")
    submissions = read_submissions(sweep_dir)
    job_records = read_job_records(sweep_dir)

    def facts(job_id: str | None) -> SlurmFacts | None:
        if job_id is None:
            return None
        return SlurmFacts.of(sweep_dir, job_id, submissions.get(job_id), job_records.get(job_id))

    results = [_read_job(job_dir, metrics_file, facts) for job_dir in _job_dirs(sweep_dir)]
    seen_ids = {r.job_id for r in results}
    seen_nums = {r.job_num for r in results if r.job_num is not None}
    for job_id, submission in submissions.items():
        # A re-run sweep submits a job number again: its directory is that job.
        if job_id not in seen_ids and submission.job_num not in seen_nums:
            results.append(_read_unstarted(facts(job_id)))
    results.sort(key=job_order)
    return results


def job_order(r: JobResult) -> tuple:
    """Job number first, then Slurm id, then directory."""
    return (
        r.job_num is None,
        r.job_num if r.job_num is not None else 0,
        _natural_key(r.job_id or ""),
        str(r.job_dir or ""),
    )


def _natural_key(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _job_dirs(sweep_dir: Path) -> list[Path]:
    found = []
    for root, dirs, _files in os.walk(sweep_dir):
        root_path = Path(root)
        if (root_path / ".hydra" / "overrides.yaml").is_file():
            found.append(root_path)
            if root_path != sweep_dir:
                dirs[:] = []  # a job directory does not hold other jobs
                continue
        # never descend into Hydra/submitit/rlkit bookkeeping or a run's own outputs
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    # A sweep directory with jobs below it is not itself a job (single runs are).
    if len(found) > 1 and sweep_dir in found:
        found.remove(sweep_dir)
    return found


def _read_job(
    job_dir: Path, metrics_file: str, facts: Callable[[str | None], SlurmFacts | None]
) -> JobResult:
    problems: list[str] = []
    overrides: list[str] = []
    try:
        overrides = _read_overrides(job_dir / ".hydra" / "overrides.yaml")
    except (OSError, ValueError, TypeError) as exc:
        problems.append(f"unreadable overrides.yaml: {exc}")
    job_num, job_id = _read_hydra_job(job_dir)
    if job_num is None and job_dir.name.isdigit():
        job_num = int(job_dir.name)

    metrics: dict[str, float] = {}
    last_step: int | None = None
    metrics_path = job_dir / metrics_file
    if metrics_path.is_file():
        try:
            metrics, last_step = _final_metrics(metrics_path)
        except (OSError, ValueError) as exc:
            problems.append(f"unreadable {metrics_file}: {exc}")

    result = JobResult(
        job_dir=job_dir,
        job_num=job_num,
        job_id=job_id,
        overrides=overrides,
        status="unknown",
        step=last_step,
        metrics=metrics,
        metrics_path=metrics_path if metrics_path.is_file() else None,
    )

    status_path = job_dir / STATUS_FILE
    if status_path.is_file():
        try:
            status = json.loads(status_path.read_text(encoding="utf-8"))
            if not isinstance(status, dict):
                raise TypeError("not a JSON object")
        except (OSError, ValueError, TypeError) as exc:
            problems.append(f"unreadable {STATUS_FILE}: {exc}")
        else:
            result.status = str(status.get("status") or "unknown")
            if isinstance(status.get("step"), int):
                result.step = status["step"]
            result.error = status.get("error") or None
            result.log = status.get("log") or None

    slurm = facts(job_id)
    if slurm is not None:
        result.requeues = slurm.requeues
        outcome = slurm_outcome(slurm)
        if outcome[0] == "pending" and result.status != "completed":
            # Requeued: the attempt that Slurm stopped may have recorded "failed"; it runs again.
            result.status, result.error, result.log = "pending", None, None
        elif result.status not in ("completed", "failed"):
            # The trainer has not recorded an end: ask the job's record and logs.
            _merge_outcome(result, outcome, has_status=status_path.is_file())
    if result.status == "failed" and result.log is None:
        if slurm is not None:
            result.log = slurm.first_log()
        elif logs := sorted(job_dir.glob("*.log")):
            result.log = str(logs[0])
    if problems:
        result.error = "; ".join(([result.error] if result.error else []) + problems)
    return result


def _merge_outcome(
    result: JobResult, outcome: tuple[str, str | None, str | None], has_status: bool
) -> None:
    state, error, log = outcome
    if state == "failed":
        result.status, result.error = "failed", error
        result.log = result.log or log
    elif state == "completed" and result.status in ("unknown", "pending"):
        result.status = "completed"
    elif result.status == "unknown" and state == "running":
        result.status = "running"
    elif result.status == "unknown" and not has_status and state == "submitted":
        result.status = "pending"


def _read_unstarted(slurm: SlurmFacts) -> JobResult:
    """A submitted job without a job directory (queued, or died before Hydra ran)."""
    state, error, log = slurm_outcome(slurm)
    assert slurm.submission is not None
    return JobResult(
        job_dir=None,
        job_num=slurm.submission.job_num,
        job_id=slurm.job_id,
        overrides=list(slurm.submission.overrides),
        status={"submitted": "pending"}.get(state, state),
        error=error,
        log=log if state == "failed" else None,
        requeues=slurm.requeues,
    )


def _read_overrides(path: Path) -> list[str]:
    import yaml  # PyYAML ships with omegaconf/hydra

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data is None:
        return []
    if not isinstance(data, list):
        raise TypeError("expected a list of override strings")
    return [str(x) for x in data]


def _read_hydra_job(job_dir: Path) -> tuple[int | None, str | None]:
    """``hydra.job.num`` and ``hydra.job.id`` from ``.hydra/hydra.yaml`` (if readable)."""
    path = job_dir / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return None, None
    try:
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        job = data["hydra"]["job"]
    except Exception:  # noqa: BLE001 - optional information
        return None, None
    num = job.get("num")
    job_id = job.get("id")
    num = int(num) if isinstance(num, int) or (isinstance(num, str) and num.isdigit()) else None
    # The basic launcher leaves placeholders ("job_id_for_0", "???"): not a Slurm id.
    if not isinstance(job_id, (str, int)) or not re.fullmatch(r"\d+(_\d+)?", str(job_id)):
        job_id = None
    return num, (str(job_id) if job_id is not None else None)


def _final_metrics(path: Path) -> tuple[dict[str, float], int | None]:
    """The last value of every key, and the last step (a torn last line is ignored)."""
    final: dict[str, float] = {}
    last_step: int | None = None
    for record in read_metrics(path):
        step = record.get("step")
        if isinstance(step, int):
            last_step = step if last_step is None else max(last_step, step)
        for key, value in record.items():
            if key != "step":
                final[key] = as_float(value)
    return final, last_step


def as_float(value: Any) -> float:
    """A metric value as a float (nan for null or non-numbers)."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
