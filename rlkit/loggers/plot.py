"""Plots of a run's metrics file (see :mod:`rlkit.loggers.jsonl`), e.g. reward and accuracy."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from rlkit.loggers.jsonl import read_metrics


def plot_metrics(
    metrics_path: str | os.PathLike[str],
    keys: Sequence[str],
    out_path: str | os.PathLike[str],
    title: Optional[str] = None,
) -> Path:
    """Write a PNG with one subplot per key (the key against step) and return its path.

    Steps that did not log a key are skipped; a key never logged gets an empty subplot.
    """
    return plot_runs([Series(None, read_metrics(metrics_path))], keys, out_path, title)


@dataclass
class Series:
    """One run's metric records, drawn from ``first_step`` on the shared step axis."""

    label: Optional[str]
    records: list[dict]
    first_step: int = 0


def plot_runs(
    runs: Sequence[Series],
    keys: Sequence[str],
    out_path: str | os.PathLike[str],
    title: Optional[str] = None,
) -> Path:
    """One subplot per key, each run a labelled line on one step axis (e.g. pipeline stages
    placed one after another). Uses matplotlib's Agg canvas directly: no pyplot, no global
    backend switch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not keys:
        raise ValueError("plotting needs at least one metric key")
    fig = Figure(figsize=(7, 2.2 * len(keys)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0]
    for ax, key in zip(axes, keys):
        drawn = False
        for index, run in enumerate(runs):
            points = [(run.first_step + r["step"], r[key]) for r in run.records if key in r]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, marker="o" if len(points) <= 50 else None, markersize=3, label=run.label,
                        color=f"C{index}")  # a run keeps its colour in every subplot
                drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "not logged", transform=ax.transAxes, ha="center", va="center")
        elif any(run.label for run in runs):
            ax.legend(loc="best", fontsize="small")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("step")
    if title:
        fig.suptitle(title)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=100)
    return out_path
