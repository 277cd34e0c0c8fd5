"""A sweep's metric against step, one line per job (PNG, matplotlib's Agg canvas)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from rlkit.loggers.jsonl import read_metrics
from rlkit.sweeps.jobs import JobResult, as_float, job_order
from rlkit.sweeps.report import clip, common_overrides, short_label

__all__ = ["plot_filename", "plot_metric"]


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
                (rec["step"], as_float(rec[metric]))
                for rec in read_metrics(r.metrics_path)
                if metric in rec and isinstance(rec.get("step"), int)
            ]
        except (OSError, ValueError):
            continue
        if points:
            lines.append((r, points))

    fig = Figure(figsize=(8, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for r, points in sorted(lines, key=lambda item: job_order(item[0])):
        steps, values = zip(*points)
        ax.plot(
            steps,
            values,
            label=clip(f"{r.name}: {short_label(r, common)}", 60) + (" (failed)" if r.status == "failed" else ""),
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


