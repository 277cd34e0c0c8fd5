"""TensorBoard event files through torch's public ``SummaryWriter``: scalars, sample
completions as text, and the run's hyperparameters with its final metrics (HParams tab)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from rlkit.loggers.base import Logger, RunInfo, SampleRow, flatten_config

#: Prefix of the final metrics shown in the HParams tab; distinct from the per-step tags so
#: that the final value is not drawn as one more point of the ``eval/...`` curves.
HPARAM_METRIC_PREFIX = "hparams/"


class TensorBoardLogger(Logger):
    """Writes to ``run_dir / subdir``: every metric as a scalar, the samples of each
    evaluation as a markdown table (Text tab, tag ``samples``), and at the end of a completed
    run the flattened config with the final metrics (HParams tab).

    View with ``tensorboard --logdir <run_dir>/tensorboard`` (or a sweep's root directory).
    """

    @dataclass
    class Config:
        subdir: str = "tensorboard"
        flush_secs: int = 30
        """Seconds between flushes to disk; ``close`` flushes the rest."""

    def __init__(self, config: Config, run: RunInfo) -> None:
        # Imported here so that this module, and its Config, load without tensorboard.
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ImportError(
                "TensorBoardLogger needs tensorboard: pip install 'rlkit[tensorboard]'"
            ) from e
        self.log_dir = Path(run.run_dir) / config.subdir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=config.flush_secs)
        self._config = run.config
        self._last_step = 0

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, float(value), int(step))
        self._last_step = int(step)

    def log_samples(self, rows: Sequence[SampleRow], step: int) -> None:
        if rows:
            self.writer.add_text("samples", markdown_table(rows), int(step))

    def log_summary(self, metrics: Mapping[str, float]) -> None:
        hparams = dict(flatten_config(self._config))
        final = {HPARAM_METRIC_PREFIX + key: float(value) for key, value in metrics.items()}
        # run_name=".": the hparams session is this run's own directory, not a new one.
        self.writer.add_hparams(hparams, final, run_name=".", global_step=self._last_step)

    def close(self) -> None:
        self.writer.close()  # flushes


def markdown_table(rows: Sequence[SampleRow]) -> str:
    """Rows as a markdown table (TensorBoard renders text summaries as markdown)."""
    columns = list(rows[0])

    def cell(value: Any) -> str:
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", "<br>")

    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
