"""The trials of an Optuna sweep in the order they ran, with the best value so far.

    python -m rlkit.sweeps.optuna_trials SWEEP_DIR --metric eval/accuracy --direction maximize

The ``+sweep=*_optuna`` presets register :class:`OptunaTrials` as a Hydra callback, so the
table is printed and ``optuna_trials.csv`` / ``optuna_trials.png`` (the objective against
the trial number, and the best so far) are written in the sweep directory when the search
ends. hydra-optuna-sweeper gives trial ``n`` the job number ``n``; a trial's value is the
final ``metric`` of its job (what the task function returned to Optuna).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from hydra.experimental.callback import Callback

from rlkit.sweeps.summary import JobResult, collect

CSV_FILE = "optuna_trials.csv"
PLOT_FILE = "optuna_trials.png"


@dataclass
class Trial:
    number: int
    params: dict[str, str]
    status: str
    value: Optional[float]
    best_so_far: Optional[float]


def trials(results: Sequence[JobResult], metric: str, maximize: bool, params: Sequence[str] = ()) -> list[Trial]:
    """One Trial per job, in job-number order; ``params`` are the searched keys (default:
    the override keys whose value differs between jobs)."""
    overrides = [dict(o.split("=", 1) for o in r.overrides if "=" in o) for r in results]
    if not params:
        keys = sorted({k for o in overrides for k in o})
        params = [k for k in keys if len({o.get(k) for o in overrides}) > 1]
    rows, best = [], None
    for number, (result, values) in enumerate(zip(results, overrides)):
        value = result.metrics.get(metric) if result.status == "completed" else None
        if value is not None and math.isnan(value):
            value = None
        if value is not None and (best is None or (value > best if maximize else value < best)):
            best = value
        rows.append(Trial(number=result.job_num if result.job_num is not None else number,
                          params={k: values.get(k, "") for k in params}, status=result.status,
                          value=value, best_so_far=best))
    return rows


def format_trials(rows: Sequence[Trial], metric: str) -> str:
    params = list(rows[0].params) if rows else []
    header = ["trial", *params, metric, "best so far", "status"]
    table = [[str(t.number), *map(_fmt_param, t.params.values()), _fmt(t.value), _fmt(t.best_so_far), t.status]
             for t in rows]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *table]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def write_trials_csv(rows: Sequence[Trial], metric: str, path: Path) -> Path:
    params = list(rows[0].params) if rows else []
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", *params, metric, "best_so_far", "status"])
        for t in rows:
            writer.writerow([t.number, *t.params.values(), _csv(t.value), _csv(t.best_so_far), t.status])
    return path


def plot_trials(rows: Sequence[Trial], metric: str, path: Path) -> Path:
    """Each trial's value (dots) and the best so far (a step line) against the trial number."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    done = [t for t in rows if t.value is not None]
    ax.plot([t.number for t in done], [t.value for t in done], "o", label="trial")
    best = [t for t in rows if t.best_so_far is not None]
    ax.step([t.number for t in best], [t.best_so_far for t in best], where="post", label="best so far")
    failed = [t.number for t in rows if t.value is None]
    if failed:
        ax.plot(failed, [min((t.value for t in done), default=0.0)] * len(failed), "x", color="red",
                label="failed / no value")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.savefig(path, dpi=100)
    return path


def report(sweep_dir: Path, metric: str, maximize: bool, params: Sequence[str] = ()) -> str:
    """Table printed, CSV and plot written in ``sweep_dir``; returns the table."""
    rows = trials(collect(sweep_dir), metric, maximize, params)
    if not rows:
        return f"{sweep_dir}: no trials"
    write_trials_csv(rows, metric, sweep_dir / CSV_FILE)
    plot_trials(rows, metric, sweep_dir / PLOT_FILE)
    return (f"Optuna trials ({'max' if maximize else 'min'}imising {metric}):\n{format_trials(rows, metric)}\n"
            f"written: {sweep_dir / CSV_FILE}, {sweep_dir / PLOT_FILE}")


class OptunaTrials(Callback):
    """Hydra callback of the ``*_optuna`` sweep presets: :func:`report` when the search ends."""

    def __init__(self, metric: str, direction: str = "maximize") -> None:
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"OptunaTrials: direction must be maximize or minimize, got {direction!r}")
        self.metric, self.maximize = metric, direction == "maximize"

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        params = list(config.hydra.sweeper.get("params") or {})
        print(report(Path(str(config.hydra.sweep.dir)), self.metric, self.maximize, params), flush=True)


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4g}"


def _fmt_param(value: str) -> str:
    """Sampled floats to 4 significant digits (the CSV keeps them whole)."""
    try:
        return value if float(value).is_integer() and "." not in value else f"{float(value):.4g}"
    except ValueError:
        return value


def _csv(value: Optional[float]) -> str:
    return "" if value is None else repr(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlkit.sweeps.optuna_trials", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--metric", required=True, help="the objective, e.g. eval/accuracy")
    parser.add_argument("--direction", choices=("maximize", "minimize"), default="maximize")
    args = parser.parse_args(argv)
    print(report(args.sweep_dir, args.metric, args.direction == "maximize"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
