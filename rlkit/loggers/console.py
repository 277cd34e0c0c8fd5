"""A tqdm progress bar over the run's steps, with a few live metrics in its postfix."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Mapping, Optional

from tqdm import tqdm

from rlkit.loggers.base import Logger, RunInfo


class ConsoleLogger(Logger):
    """Progress bar on stderr; ``eval/*`` metrics are also printed as a line of their own.

    ``step`` is read as the number of steps done. The bar starts at the first logged
    step, so a resumed run shows its own rate rather than an instant jump.
    """

    @dataclass
    class Config:
        keys: list[str] = field(default_factory=lambda: ["loss", "reward/mean", "eval/accuracy"])
        """Metrics shown in the postfix (their latest value), when they have been logged."""
        every: int = 1
        """Move the bar every this many steps (eval lines and the last step always show)."""
        mininterval: Optional[float] = None
        """Seconds between redraws; None: 0.1 on a terminal, 30 otherwise (CI logs)."""
        disable: bool = False
        """No bar; ``eval/*`` lines are still printed."""

    def __init__(self, config: Config, run: RunInfo) -> None:
        self.config = config
        self.total_steps = run.total_steps
        self._latest: dict[str, float] = {}
        self._bar: Optional[tqdm] = None

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        evals = {key: value for key, value in metrics.items() if key.startswith("eval/")}
        if evals:
            tqdm.write(f"step {step}: " + "  ".join(f"{k}={_fmt(v)}" for k, v in evals.items()))
        for key in self.config.keys:
            if key in metrics:
                self._latest[key] = float(metrics[key])
        if self.config.disable or (step % self.config.every and step < self.total_steps):
            return
        postfix = " ".join(
            f"{key}={_fmt(self._latest[key])}" for key in self.config.keys if key in self._latest
        )
        if self._bar is None:
            self._bar = self._open_bar(initial=step, postfix=postfix)
        else:
            self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(step - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def _open_bar(self, initial: int, postfix: str) -> tqdm:
        mininterval = self.config.mininterval
        if mininterval is None:
            mininterval = 0.1 if sys.stderr.isatty() else 30.0
        return tqdm(
            total=self.total_steps,
            initial=initial,
            postfix=postfix,
            unit="step",
            mininterval=mininterval,
            miniters=1,  # redraw on time alone, never wait for several steps
            dynamic_ncols=True,
        )


def _fmt(value: float) -> str:
    """Four significant digits: ``0.1235``, ``1235``, ``1.235e+05``."""
    return f"{float(value):.4g}"
