"""The Hydra callback behind every rlkit multirun: a summary at the end, failures on record.

Registered in ``conf/config.yaml`` under ``hydra.callbacks.sweep_summary``; its settings
are the config's ``sweep_summary`` node (``sweep_summary.metric=eval/accuracy``,
``sweep_summary.plot=false``, ``sweep_summary.enabled=false``).

* End of a multirun: prints the table of :mod:`rlkit.sweeps.summary` and writes
  ``<sweep dir>/summary.csv`` and ``summary_<metric>.png`` -- exactly what
  ``python -m rlkit.sweeps.summary <sweep dir> --plot`` does.
  Hydra calls ``on_multirun_end`` only when every job succeeded: its sweeper re-raises the
  first failed job's exception as soon as the launcher returns (the basic launcher and
  hydra-submitit-launcher both run every job first). So ``on_multirun_start`` also
  registers the summary with :mod:`atexit`; it then runs after Hydra has printed that
  error, and also when the sweep is interrupted (Ctrl-C) while jobs still run.
* End of each job (in the job's own process: locally, or on the Slurm node): a job that
  raised gets its traceback appended to its Hydra log (``<job dir>/<task>.log``; with the
  job log disabled, ``<job dir>/error.log``) and ``status.json`` says ``failed`` with the
  error and that log's path -- also when the job failed before the trainer started (bad
  data path, bad value), which the trainer cannot record. Only the first rank of a
  multi-task job writes.

No torch here: Hydra instantiates this class in every run.
"""

from __future__ import annotations

import atexit
import logging
import os
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from rlkit.outputs import RunOutputs

__all__ = ["SweepSummary", "record_failure"]

_log = logging.getLogger(__name__)


class SweepSummary(Callback):
    def __init__(
        self,
        enabled: bool = True,
        metric: str | None = None,
        descending: bool | None = None,
        plot: bool = True,
    ) -> None:
        self.enabled = enabled
        self.metric = metric
        self.descending = descending
        self.plot = plot
        self.sweep_dir: Path | None = None
        self._summarised = True  # nothing to summarise before a multirun starts

    # --------------------------------------------------------------- multirun (main process)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        if not self.enabled:
            return
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
        self._summarised = False
        atexit.register(self.summarise)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        self.summarise()

    def summarise(self) -> int | None:
        """Print the table, write the CSV (and plot) once; returns the summary's exit code."""
        if self._summarised or self.sweep_dir is None:
            return None
        self._summarised = True
        atexit.unregister(self.summarise)
        from rlkit.sweeps.summary import collect, main

        if not self.sweep_dir.is_dir() or not collect(self.sweep_dir):
            return None  # nothing was launched (e.g. the launcher's resource check stopped it)

        argv = [str(self.sweep_dir)]
        if self.metric:
            argv += ["--metric", self.metric]
        if self.descending is not None:
            argv.append("--descending" if self.descending else "--ascending")
        if self.plot:
            argv.append("--plot")
        print(f"\nSweep summary: {self.sweep_dir}", flush=True)
        try:
            return main(argv)
        except Exception:  # noqa: BLE001 - a broken summary must not hide the sweep's outcome
            _log.exception("the sweep summary failed; run `python -m rlkit.sweeps.summary %s`", self.sweep_dir)
            return 1
        finally:
            import sys

            sys.stdout.flush()

    # ----------------------------------------------------------------- each job (job process)

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus

        if job_return.status != JobStatus.FAILED or not _first_rank():
            return
        exc = job_return._return_value  # the job's exception (return_value would raise it)
        try:
            run_dir = Path(str(config.hydra.runtime.output_dir))
            log = append_traceback(run_dir, exc)
            record_failure(run_dir, f"{type(exc).__name__}: {exc}", log)
        except Exception:  # noqa: BLE001 - never replace the job's own error
            _log.warning("could not record the failure of this job", exc_info=True)


def _first_rank() -> bool:
    """False in the other tasks of a multi-task job (each task runs the whole Hydra job)."""
    for key in ("RANK", "SLURM_PROCID"):
        value = os.environ.get(key)
        if value is not None and value.isdigit():
            return int(value) == 0
    return True


def append_traceback(run_dir: Path, exc: BaseException) -> Path:
    """Write ``exc``'s traceback to the Hydra job's log file (else ``error.log``); its path."""
    record = logging.LogRecord(
        __name__, logging.ERROR, __file__, 0, "the job failed:", None, (type(exc), exc, exc.__traceback__)
    )
    for handler in logging.getLogger().handlers:
        # Hydra's job log: <job dir>/<task name>.log (not some other file the root logs to)
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == run_dir.absolute():
            handler.handle(record)
            handler.flush()
            return Path(handler.baseFilename)
    path = run_dir / "error.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return path


def record_failure(run_dir: Path, error: str, log: Path | str | None) -> None:
    """Mark ``<run_dir>/status.json`` failed (keeping the trainer's step and error if it
    already recorded the failure) and add the log's path. A completed run is left alone."""
    RunOutputs(run_dir).mark_failed(error, None if log is None else str(log), keep_recorded_error=True)
