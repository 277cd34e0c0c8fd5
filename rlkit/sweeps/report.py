"""A sweep's jobs as a table: best first by one metric, as text (fixed width) or CSV.

Rows come from :func:`rlkit.sweeps.jobs.collect`. The overrides column of the text table
holds what sets each job apart (those every job shares are listed once below it); a
``requeues`` column appears when Slurm requeued some job (time limit, preemption).
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rlkit.sweeps.jobs import STATUSES, JobResult, job_order

__all__ = [
    "clip",
    "common_overrides",
    "default_metric",
    "format_table",
    "infer_descending",
    "metric_keys",
    "short_label",
    "summary_table",
    "write_csv",
]

# Metric names where smaller is better (the sort direction when none is given).
_LOWER_IS_BETTER = re.compile(r"loss|perplexity|ppl|error|err\b|kl\b|_kl|/kl|mse|mae|regret|nll")


def infer_descending(metric: str) -> bool:
    """Sort direction for ``metric`` when none is given: losses ascend, the rest descend."""
    return not _LOWER_IS_BETTER.search(metric.lower())


def _sorted(results: Sequence[JobResult], sort_by: str, descending: bool | None) -> list[JobResult]:
    if descending is None:
        descending = infer_descending(sort_by)

    def key(r: JobResult) -> tuple:
        value = r.metrics.get(sort_by, math.nan)
        missing = math.isnan(value)
        return (missing, 0.0 if missing else (-value if descending else value), job_order(r))

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


def metric_keys(results: Sequence[JobResult], first: str | None = None) -> list[str]:
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
    Keys: job, job_id, status, step, requeues (when Slurm requeued some job), overrides, one
    per override key, every final metric
    (``sort_by`` first, then ``eval/*``, then the rest; missing ones are ``None``), error,
    log, job_dir.
    """
    params = _override_params(results)
    metrics = metric_keys(results, first=sort_by)
    requeued = any(r.requeues for r in results)
    rows = []
    for r in _sorted(results, sort_by, descending):
        row: dict[str, Any] = {
            "job": r.name,
            "job_id": r.job_id,
            "status": r.status,
            "step": r.step,
            **({"requeues": r.requeues} if requeued else {}),
            "overrides": " ".join(r.overrides),
        }
        parsed = _parse_overrides(r.overrides)
        for key in params:
            row.setdefault(key, parsed.get(key))
        for key in metrics:
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
    keys = metric_keys(results)
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


def short_label(r: JobResult, common: Sequence[str]) -> str:
    """The overrides that set this job apart from the others of its sweep."""
    if not r.overrides:
        return "-"
    return " ".join(o for o in r.overrides if o not in common) or "-"


def clip(text: str, width: int) -> str:
    """``text``, cut to ``width`` characters with "..." when longer."""
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
    others = [k for k in metric_keys(results) if k != sort_by]
    others = sorted(others, key=lambda k: (not k.startswith("eval/"), "loss" not in k, k))
    others = others[:max_metrics]
    arrow = "v" if descending else "^"
    common = common_overrides(results)
    # (header, right-aligned, cell) per column
    columns: list[tuple[str, bool, Callable[[JobResult], str]]] = [
        ("job", True, lambda r: r.name),
        ("status", False, lambda r: r.status),
        ("step", True, lambda r: _fmt(r.step)),
    ]
    requeued = [r for r in results if r.requeues]
    if requeued:
        columns.append(("requeues", True, lambda r: str(r.requeues)))
    columns.append(
        ("overrides", False, lambda r: clip(short_label(r, common), overrides_width))
    )
    for key in [sort_by, *others]:
        title = f"{sort_by} {arrow}" if key == sort_by else key
        columns.append((title, True, lambda r, key=key: _fmt(r.metrics.get(key))))
    header = [title for title, _, _ in columns]
    body = [[cell(r) for _, _, cell in columns] for r in ordered]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    numeric = {i for i, (_, right, _) in enumerate(columns) if right}

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
    if requeued:
        total = sum(r.requeues for r in requeued)
        out.append(f"requeued by Slurm: {len(requeued)} job(s), {total} time(s) in all")
    failed = [r for r in ordered if r.status == "failed"]
    if failed:
        out.append("")
        out.append("Failed jobs:")
        for r in sorted(failed, key=job_order):
            out.append(f"  job {r.name}: {r.label if r.overrides else '(overrides unknown)'}")
            out.append(f"    error: {r.error or 'unknown'}")
            where = r.log or (str(r.job_dir) if r.job_dir is not None else None)
            if where:
                out.append(f"    log:   {where}")
    return "\n".join(out)


