"""How a submitit job (Slurm or local) ended, from rlkit's JSON records and submitit's logs.

Two sources, never a pickle:

* the job's own record (:mod:`rlkit.sweeps.records`): ``completed`` and ``failed`` are
  final; ``requeued`` means waiting to run again; ``running`` means it started;
* the stderr logs of its tasks (paths from the submission record, else submitit's
  :class:`~submitit.core.utils.JobPaths` under ``<sweep>/.submitit/%j``), which tell what the
  job could not record itself: Slurm cancelled it (time limit, ``scancel``, a failed node), a
  task was killed (out of memory, a signal), or submitit failed before the job's function
  ran. Slurm appends to the logs of a requeued job, so the last event decides: a cancel "DUE
  TO JOB REQUEUE" clears an earlier verdict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from rlkit.sweeps.records import JobRecord, Submission

__all__ = ["SlurmFacts", "slurm_outcome"]

_SLURM_CANCEL = re.compile(r"\*\*\* (?:JOB|STEP) \S+ ON \S+ CANCELLED AT \S+(.*?)\*\*\*")
_SRUN_TASK_ERROR = re.compile(r"srun: error: \S+: tasks? [\d,-]+: (.+)")
_SUBMITIT_ERROR = "Submitted job triggered an exception"
_REQUEUE = "due to job requeue"


@dataclass
class SlurmFacts:
    """What rlkit's records and submitit's logs hold about one job."""

    job_id: str
    submission: Submission | None = None
    record: JobRecord | None = None
    stderr_logs: list[Path] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        sweep_dir: Path,
        job_id: str,
        submission: Submission | None,
        record: JobRecord | None,
    ) -> SlurmFacts:
        if submission is not None and submission.stderr:
            logs = [Path(p) for p in submission.stderr]
        else:  # a job of submitit's own launcher: its logs' default place, rank 0 first
            logs = _default_stderr_logs(sweep_dir, job_id)
        return cls(job_id, submission, record, logs)

    @property
    def requeues(self) -> int:
        return self.record.requeues if self.record is not None else 0

    def first_log(self) -> str | None:
        existing = [p for p in self.stderr_logs if p.is_file()]
        return str(existing[0]) if existing else None


def _default_stderr_logs(sweep_dir: Path, job_id: str) -> list[Path]:
    try:
        from submitit.core.utils import JobPaths
    except ImportError:  # no submitit here: nothing reads its logs
        return []
    folder = JobPaths(sweep_dir / ".submitit" / "%j", job_id=job_id).folder
    tasks = len(list(folder.glob(f"{job_id}_*_log.err")))
    return [JobPaths(folder, job_id=job_id, task_id=t).stderr for t in range(max(tasks, 1))]


def slurm_outcome(facts: SlurmFacts) -> tuple[str, str | None, str | None]:
    """``(state, error, log)`` of a job.

    state: ``completed``, ``failed`` (with the error and the log that shows it), ``running``,
    ``pending`` (requeued, waiting to start again) or ``submitted`` (no sign of a start).
    """
    record = facts.record
    if record is not None and record.state == "completed":
        return "completed", None, facts.first_log()
    if record is not None and record.state == "failed":
        return "failed", record.error or "job failed", facts.first_log()
    for log in facts.stderr_logs:
        error = _log_verdict(log)
        if error is not None:
            return "failed", error, str(log)
    if record is None:
        return "submitted", None, None
    return ("pending" if record.state == "requeued" else "running"), None, None


def _log_verdict(log: Path) -> str | None:
    """The failure a task's stderr log ends with, else None (the last event decides)."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    verdict: str | None = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if cancel := _SLURM_CANCEL.search(line):
            reason = cancel.group(1).strip().lower()
            if reason == _REQUEUE:
                verdict = None  # requeued: this attempt's end is not the job's
            else:
                verdict = "Slurm cancelled the job" + (f" {reason}" if reason else "")
        elif task_error := _SRUN_TASK_ERROR.search(line):
            # "Terminated" follows a cancel (whose line gives the reason) or a requeue.
            if task_error.group(1).strip() != "Terminated":
                verdict = f"Slurm task ended: {task_error.group(1).strip()}"
        elif _SUBMITIT_ERROR in line:
            verdict = _last_exception_line("\n".join(lines[i + 1 :]))
    return verdict


def _last_exception_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(("submitit ", "srun:", "slurmstepd", "File ", "[")):
            continue
        if re.match(r"^[A-Za-z_][\w.]*(: .*)?$", line):
            return line
    return lines[-1] if lines else "job raised an exception"
