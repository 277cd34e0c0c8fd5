"""Summary of a Hydra multirun (sweep) directory: a sorted table, a CSV and a plot.

    python -m rlkit.sweeps.summary multirun/2025-01-01/12-00-00 --metric eval/accuracy --plot
    rlkit-sweep-summary SWEEP_DIR --metric eval/loss --ascending

Layout read (Hydra's default ``<sweep_dir>/<job_num>/``; any depth is found):

* ``<job>/.hydra/overrides.yaml``: the job's overrides (a YAML list of strings); a directory
  holding it is a job directory.
* ``<job>/.hydra/hydra.yaml``: ``hydra.job.num`` and ``hydra.job.id`` (the Slurm job id under
  hydra-submitit-launcher, which names the job's folder under ``<sweep_dir>/.submitit/``).
* ``<job>/metrics.jsonl``: one JSON object per line, ``{"step": int, "<metric>": float}``;
  eval metrics are prefixed ``eval/``. The final value of a metric is its last logged one.
* ``<job>/status.json``: written by the trainer, ``{"status": "running" | "completed" |
  "failed", "step": int, "error": str | null, "log": str | null}``.
* ``<sweep_dir>/.submitit/<slurm_id>/``: submitit's logs. A job without ``status.json`` is
  ``pending`` when submitit knows it, ``failed`` when its logs show an exception or a Slurm
  cancellation (time limit, scancel), and ``unknown`` otherwise. Array tasks that have not
  started yet (no job directory) are listed as ``pending``.

``collect`` -> ``summary_table`` / ``format_table`` / ``write_csv`` / ``plot_metric``.
This module must stay light: no torch import (matplotlib only inside ``plot_metric``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import pickle
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "JobResult",
    "collect",
    "common_overrides",
    "format_table",
    "infer_descending",
    "main",
    "plot_metric",
    "summary_table",
    "write_csv",
]

STATUSES = ("completed", "running", "pending", "failed", "unknown")
METRICS_FILE = "metrics.jsonl"
STATUS_FILE = "status.json"

# Metric names where smaller is better (the sort direction when none is given).
_LOWER_IS_BETTER = re.compile(r"loss|perplexity|ppl|error|err\b|kl\b|_kl|/kl|mse|mae|regret|nll")


@dataclass
class JobResult:
    """One job of a sweep, as far as its files tell."""

    job_dir: Path | None  # None: submitted to Slurm but not started (no job directory yet)
    job_num: int | None  # Hydra's job number (the default sub-directory name)
    job_id: str | None  # the Slurm job id (``1234_5`` for array task 5), when known
    overrides: list[str]
    status: str  # one of STATUSES
    step: int | None = None  # status.json's step, else the last step in metrics.jsonl
    error: str | None = None
    log: str | None = None  # a file with the details (the trainer's log, submitit's stderr)
    metrics: dict[str, float] = field(default_factory=dict)  # final value of every key
    metrics_path: Path | None = None

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


# ----------------------------------------------------------------------------- collect


def collect(sweep_dir: str | os.PathLike[str], metrics_file: str = METRICS_FILE) -> list[JobResult]:
    """Read every job of a Hydra multirun directory, in job-number order.

    A broken file in one job (unreadable JSON, missing overrides) is reported on that job
    (``error``) instead of failing the whole summary.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory not found: {sweep_dir}")
    submitit_dirs = _submitit_dirs(sweep_dir)
    results: list[JobResult] = []
    seen_ids: set[str] = set()
    for job_dir in _job_dirs(sweep_dir):
        result = _read_job(job_dir, metrics_file, submitit_dirs)
        if result.job_id is not None:
            seen_ids.add(result.job_id)
        results.append(result)
    seen_nums = {r.job_num for r in results if r.job_num is not None}
    unstarted: dict[Any, JobResult] = {}
    for job_id, folder in sorted(submitit_dirs.items(), key=lambda item: _natural_key(item[0])):
        if job_id in seen_ids:
            continue
        result = _read_unstarted(job_id, folder)
        # A re-run sweep (same sweep dir) leaves the earlier submissions' folders behind:
        # a job with a directory is that directory; of several submissions, the latest.
        if result.job_num is not None and result.job_num in seen_nums:
            continue
        unstarted[result.job_num if result.job_num is not None else job_id] = result
    results.extend(unstarted.values())
    results.sort(key=_job_order)
    return results


def _job_order(r: JobResult) -> tuple:
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
    for root, dirs, files in os.walk(sweep_dir):
        root_path = Path(root)
        if (root_path / ".hydra" / "overrides.yaml").is_file():
            found.append(root_path)
            if root_path != sweep_dir:
                dirs[:] = []  # a job directory does not hold other jobs
                continue
        # never descend into Hydra/submitit bookkeeping or a run's own outputs
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    # A sweep directory with jobs below it is not itself a job (single runs are).
    if len(found) > 1 and sweep_dir in found:
        found.remove(sweep_dir)
    return found


def _read_job(job_dir: Path, metrics_file: str, submitit_dirs: dict[str, Path]) -> JobResult:
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

    folder = submitit_dirs.get(job_id) if job_id is not None else None
    if folder is not None and result.status not in ("completed", "failed"):
        # The trainer has not recorded an end: ask submitit's files how the job ended.
        state, error, log = _submitit_outcome(folder, job_id)
        if state == "failed":
            result.status, result.error = "failed", error
            result.log = result.log or log
        elif state == "completed" and result.status in ("unknown", "pending"):
            result.status = "completed"
        elif state == "ended" and result.status in ("unknown", "running", "pending"):
            result.status, result.error = "unknown", error
            result.log = result.log or log
        elif result.status == "unknown" and not status_path.is_file():
            result.status = "pending"
    if result.status == "failed" and result.log is None:
        if folder is not None:
            result.log = _first_err_log(folder)
        elif logs := sorted(job_dir.glob("*.log")):
            result.log = str(logs[0])
    if problems:
        result.error = "; ".join(([result.error] if result.error else []) + problems)
    return result


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
    """The last value of every key, and the last step. Tolerates a torn last line."""
    final: dict[str, float] = {}
    last_step: int | None = None
    for record in _read_records(path):
        step = record.get("step")
        if isinstance(step, int):
            last_step = step if last_step is None else max(last_step, step)
        for key, value in record.items():
            if key != "step":
                final[key] = _as_float(value)
    return final, last_step


def _read_records(path: Path) -> Iterable[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        lines = f.readlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if not line.endswith("\n") and i == len(lines):
            return  # the final write of a killed run was cut short
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {i}: {exc.msg}") from None
        if isinstance(record, dict):
            yield record


def _as_float(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# ---------------------------------------------------------------- submitit bookkeeping


def _submitit_dirs(sweep_dir: Path) -> dict[str, Path]:
    """Slurm job id -> submitit folder (hydra-submitit-launcher: ``.submitit/%j``)."""
    root = sweep_dir / ".submitit"
    if not root.is_dir():
        return {}
    # Only folders of submitted tasks (an array's own "<id>/" folder holds just the script).
    return {
        p.name: p
        for p in root.iterdir()
        if p.is_dir()
        and re.fullmatch(r"\d+(_\d+)?", p.name)
        and (p / f"{p.name}_submitted.pkl").is_file()
    }


_SLURM_CANCEL = re.compile(r"\*\*\* (?:JOB|STEP) \S+ ON \S+ CANCELLED AT \S+(.*?)\*\*\*")
_SRUN_TASK_ERROR = re.compile(r"srun: error: \S+: tasks? [\d,-]+: (.+)")


def _first_err_log(folder: Path) -> str | None:
    logs = sorted(folder.glob("*_log.err"))
    return str(logs[0]) if logs else None


def _submitit_outcome(folder: Path, job_id: str) -> tuple[str, str | None, str | None]:
    """How a submitit job ended, from its folder: ``(state, error, log)``.

    state: ``failed`` (Slurm cancelled it, a task was killed or crashed, the function
    raised, or Hydra's job returned FAILED), ``completed`` (the function returned),
    ``ended`` (a result exists but cannot be read) or ``pending`` (no outcome yet).
    """
    for err_log in sorted(folder.glob("*_log.err")):
        try:
            text = err_log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        cancel = _SLURM_CANCEL.search(text)
        if cancel:
            reason = cancel.group(1).strip().lower()
            return (
                "failed",
                "Slurm cancelled the job" + (f" {reason}" if reason else ""),
                str(err_log),
            )
        task_error = _SRUN_TASK_ERROR.search(text)
        if task_error:
            return "failed", f"Slurm task ended: {task_error.group(1).strip()}", str(err_log)
    results = sorted(folder.glob(f"{job_id}_*_result.pkl"))
    if not results:
        return "pending", None, None
    err_log = _first_err_log(folder)
    try:
        with results[0].open("rb") as f:
            outcome, value = pickle.load(f)
    except Exception as exc:  # noqa: BLE001 - the result's classes may not import here
        return (
            "ended",
            f"job ended; its result is unreadable here ({type(exc).__name__}: {exc})",
            err_log,
        )
    if outcome == "error":
        return "failed", _last_exception_line(str(value)), err_log
    # hydra-submitit-launcher returns Hydra's JobReturn; a task that raised is FAILED there
    # and its traceback appears in no log (the Hydra process re-raises it at the end).
    job_status = getattr(getattr(value, "status", None), "name", None)
    if job_status == "FAILED":
        exc = getattr(value, "_return_value", None)
        message = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else "job failed"
        return "failed", message, err_log
    return "completed", None, err_log


def _last_exception_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(("submitit ", "srun:", "slurmstepd:", "File ", "[")):
            continue
        if re.match(r"^[A-Za-z_][\w.]*(: .*)?$", line):
            return line
    return lines[-1] if lines else "job raised an exception"


def _read_unstarted(job_id: str, folder: Path) -> JobResult:
    """A submitted array task without a job directory (queued, or died before Hydra ran)."""
    overrides, job_num = _submitted_args(folder / f"{job_id}_submitted.pkl")
    state, error, log = _submitit_outcome(folder, job_id)
    return JobResult(
        job_dir=None,
        job_num=job_num,
        job_id=job_id,
        overrides=overrides,
        status={"ended": "unknown"}.get(state, state),
        error=error,
        log=log if state in ("failed", "ended") else None,
    )


def _submitted_args(path: Path) -> tuple[list[str], int | None]:
    """Overrides and job number from submitit's pickled submission (best effort).

    The pickle is the sweep's own file (written by hydra-submitit-launcher); loading it
    imports the launcher and the task's module. Any failure just means "unknown".
    """
    if not path.is_file():
        return [], None
    try:
        with path.open("rb") as f:
            submission = pickle.load(f)
        args = submission.args
        overrides = [str(x) for x in args[0]]
        return overrides, int(args[2])
    except Exception:  # noqa: BLE001 - optional information
        return [], None


# ----------------------------------------------------------------------------- tables


def infer_descending(metric: str) -> bool:
    """Sort direction for ``metric`` when none is given: losses ascend, the rest descend."""
    return not _LOWER_IS_BETTER.search(metric.lower())


def _sorted(results: Sequence[JobResult], sort_by: str, descending: bool | None) -> list[JobResult]:
    if descending is None:
        descending = infer_descending(sort_by)

    def key(r: JobResult) -> tuple:
        value = r.metrics.get(sort_by, math.nan)
        missing = math.isnan(value)
        return (missing, 0.0 if missing else (-value if descending else value), _job_order(r))

    return sorted(results, key=key)


def _override_params(results: Sequence[JobResult]) -> list[str]:
    """Override keys, in first-seen order (``+a.b=1`` -> ``a.b``)."""
    keys: list[str] = []
    for r in results:
        for key in _parse_overrides(r.overrides):
            if key not in keys:
                keys.append(key)
    return keys


def _parse_overrides(overrides: Sequence[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            continue
        parsed[key.lstrip("+~")] = value
    return parsed


def _metric_keys(results: Sequence[JobResult], first: str | None = None) -> list[str]:
    keys = sorted({k for r in results for k in r.metrics})
    ordered = sorted(keys, key=lambda k: (not k.startswith("eval/"), k))
    if first is not None:
        ordered = [first] + [k for k in ordered if k != first]
    return ordered


def summary_table(
    results: Sequence[JobResult], sort_by: str, descending: bool | None = None
) -> list[dict[str, Any]]:
    """One dict per job, best first by ``sort_by`` (jobs without it last).

    ``descending=None`` infers the direction from the name (see :func:`infer_descending`).
    Keys: job, job_id, status, step, overrides, one per override key, every final metric
    (``sort_by`` first, then ``eval/*``, then the rest; missing ones are ``None``), error,
    log, job_dir.
    """
    params = _override_params(results)
    metric_keys = _metric_keys(results, first=sort_by)
    rows = []
    for r in _sorted(results, sort_by, descending):
        row: dict[str, Any] = {
            "job": r.name,
            "job_id": r.job_id,
            "status": r.status,
            "step": r.step,
            "overrides": " ".join(r.overrides),
        }
        parsed = _parse_overrides(r.overrides)
        for key in params:
            row.setdefault(key, parsed.get(key))
        for key in metric_keys:
            if key not in row:
                row[key] = r.metrics.get(key)
        row["error"] = r.error
        row["log"] = r.log
        row["job_dir"] = str(r.job_dir) if r.job_dir is not None else None
        rows.append(row)
    return rows


def write_csv(
    results: Sequence[JobResult],
    path: str | os.PathLike[str],
    sort_by: str | None = None,
    descending: bool | None = None,
) -> Path:
    """Write :func:`summary_table`'s rows as CSV (missing values empty) and return the path."""
    sort_by = sort_by or default_metric(results) or ""
    rows = summary_table(results, sort_by, descending)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    if not columns:
        columns = ["job", "job_id", "status", "step", "overrides", "error", "log", "job_dir"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return path


def default_metric(results: Sequence[JobResult]) -> str | None:
    """The metric to sort by when none is named: the first ``eval/*`` one, else any."""
    keys = _metric_keys(results)
    return keys[0] if keys else None


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def common_overrides(results: Sequence[JobResult]) -> list[str]:
    """Overrides every job of a sweep shares (none for fewer than two jobs), in order."""
    known = [r.overrides for r in results if r.overrides]
    if len(known) < 2:
        return []
    return [o for o in known[0] if all(o in other for other in known[1:])]


def _short_label(r: JobResult, common: Sequence[str]) -> str:
    """The overrides that set this job apart from the others of its sweep."""
    if not r.overrides:
        return "-"
    return " ".join(o for o in r.overrides if o not in common) or "-"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(
    results: Sequence[JobResult],
    sort_by: str,
    descending: bool | None = None,
    max_metrics: int = 3,
    overrides_width: int = 60,
) -> str:
    """A fixed-width text table (best first), a status count, and the failed jobs' errors.

    The overrides column holds what sets each job apart; those every job shares are listed
    once below the table. The failed jobs are listed with all their overrides.
    """
    if descending is None:
        descending = infer_descending(sort_by)
    ordered = _sorted(results, sort_by, descending)
    others = [k for k in _metric_keys(results) if k != sort_by]
    others = sorted(others, key=lambda k: (not k.startswith("eval/"), "loss" not in k, k))
    others = others[:max_metrics]
    arrow = "v" if descending else "^"
    common = common_overrides(results)
    header = ["job", "status", "step", "overrides", f"{sort_by} {arrow}", *others]
    body = [
        [
            r.name,
            r.status,
            _fmt(r.step),
            _clip(_short_label(r, common), overrides_width),
            _fmt(r.metrics.get(sort_by)),
            *(_fmt(r.metrics.get(k)) for k in others),
        ]
        for r in ordered
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    numeric = {0, 2, *range(4, len(header))}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    out = [line(header), line(["-" * w for w in widths]), *(line(row) for row in body)]
    counts = {s: 0 for s in STATUSES}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    out.append("")
    if common:
        out.append(f"every job: {' '.join(common)}")
    out.append(f"{len(results)} job(s): " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    failed = [r for r in ordered if r.status == "failed"]
    if failed:
        out.append("")
        out.append("Failed jobs:")
        for r in sorted(failed, key=_job_order):
            out.append(f"  job {r.name}: {r.label if r.overrides else '(overrides unknown)'}")
            out.append(f"    error: {r.error or 'unknown'}")
            where = r.log or (str(r.job_dir) if r.job_dir is not None else None)
            if where:
                out.append(f"    log:   {where}")
    return "\n".join(out)


# ------------------------------------------------------------------------------- plot


def plot_metric(
    results: Sequence[JobResult], metric: str, out_path: str | os.PathLike[str]
) -> Path:
    """A PNG of ``metric`` against step, one line per job labelled by its overrides.

    Jobs that never logged ``metric`` are left out (the legend says how many); failed jobs
    are dashed. Uses matplotlib's Agg canvas directly (no pyplot, no global backend).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lines = []
    common = common_overrides(results)
    for r in results:
        if r.metrics_path is None or not r.metrics_path.is_file():
            continue
        try:
            points = [
                (rec["step"], _as_float(rec[metric]))
                for rec in _read_records(r.metrics_path)
                if metric in rec and isinstance(rec.get("step"), int)
            ]
        except (OSError, ValueError):
            continue
        if points:
            lines.append((r, points))

    fig = Figure(figsize=(8, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for r, points in sorted(lines, key=lambda item: _job_order(item[0])):
        steps, values = zip(*points)
        ax.plot(
            steps,
            values,
            label=_clip(f"{r.name}: {_short_label(r, common)}", 60) + (" (failed)" if r.status == "failed" else ""),
            linestyle="--" if r.status == "failed" else "-",
            marker="o" if len(points) <= 30 else None,
            markersize=3,
        )
    if not lines:
        ax.text(
            0.5, 0.5, f"no job logged {metric}", transform=ax.transAxes, ha="center", va="center"
        )
    missing = len(results) - len(lines)
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(
        f"{metric} ({len(lines)} job(s)" + (f", {missing} without it)" if missing else ")")
    )
    ax.grid(alpha=0.3)
    if lines:
        ax.legend(
            fontsize="small",
            loc="best" if len(lines) <= 8 else "upper left",
            bbox_to_anchor=None if len(lines) <= 8 else (1.01, 1.0),
        )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=100)
    return out_path


def plot_filename(metric: str) -> str:
    """``summary_<metric>.png`` with path separators and odd characters replaced."""
    return f"summary_{re.sub(r'[^A-Za-z0-9._-]+', '_', metric).strip('_')}.png"


# -------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rlkit-sweep-summary",
        description="Summarise a Hydra multirun directory: table, summary.csv, optional plot.",
    )
    parser.add_argument("sweep_dir", type=Path, help="the multirun directory (hydra.sweep.dir)")
    parser.add_argument(
        "--metric",
        help="final metric to sort by, e.g. eval/accuracy (default: the first eval/* metric)",
    )
    direction = parser.add_mutually_exclusive_group()
    direction.add_argument(
        "--ascending",
        dest="descending",
        action="store_false",
        default=None,
        help="smallest first (default: inferred; losses ascend)",
    )
    direction.add_argument(
        "--descending", dest="descending", action="store_true", help="largest first"
    )
    parser.add_argument(
        "--plot",
        action="store_true",
        help="also write summary_<metric>.png (metric against step, one line per job)",
    )
    parser.add_argument(
        "--csv",
        type=Path,
        default=None,
        help="where to write the CSV (default: SWEEP_DIR/summary.csv)",
    )
    args = parser.parse_args(argv)

    try:
        results = collect(args.sweep_dir)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not results:
        print(
            f"error: no Hydra job directories (.hydra/overrides.yaml) under {args.sweep_dir}",
            file=sys.stderr,
        )
        return 2
    metric = args.metric or default_metric(results)
    if metric is None:
        print("warning: no job has logged metrics yet", file=sys.stderr)
        metric = "eval/accuracy"
    elif not any(metric in r.metrics for r in results):
        known = ", ".join(_metric_keys(results)) or "none"
        print(f"warning: no job logged {metric!r} (known metrics: {known})", file=sys.stderr)

    csv_path = write_csv(
        results, args.csv or args.sweep_dir / "summary.csv", metric, args.descending
    )
    print(format_table(results, metric, args.descending))
    print(f"\nwrote {csv_path}")
    if args.plot:
        png = plot_metric(results, metric, args.sweep_dir / plot_filename(metric))
        print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
