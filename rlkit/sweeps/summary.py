"""Summary of a Hydra multirun (sweep) directory: a sorted table, a CSV and a plot.

    python -m rlkit.sweeps.summary multirun/2025-01-01/12-00-00 --metric eval/accuracy --plot
    rlkit-sweep-summary SWEEP_DIR --metric eval/loss --ascending

The command line over three modules: :mod:`rlkit.sweeps.jobs` (``collect``: what each job's
files and rlkit's records say), :mod:`rlkit.sweeps.report` (the table and the CSV) and
:mod:`rlkit.sweeps.plots` (the PNG). Nothing in the sweep directory is unpickled. This
module must stay light: no torch import (matplotlib only inside ``plot_metric``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rlkit.sweeps.jobs import STATUSES, JobResult, collect
from rlkit.sweeps.plots import plot_filename, plot_metric
from rlkit.sweeps.report import (
    common_overrides,
    default_metric,
    format_table,
    infer_descending,
    metric_keys,
    summary_table,
    write_csv,
)

__all__ = [
    "STATUSES",
    "JobResult",
    "collect",
    "common_overrides",
    "default_metric",
    "format_table",
    "infer_descending",
    "main",
    "plot_filename",
    "plot_metric",
    "summary_table",
    "write_csv",
]


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
        known = ", ".join(metric_keys(results)) or "none"
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
