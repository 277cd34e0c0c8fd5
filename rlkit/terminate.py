"""SIGTERM as an exception, so a run stopped by Slurm (or ``kill``) records why it ended.

Slurm stops a job -- at its time limit, on ``scancel``, before a requeue -- with SIGTERM
and, ``KillWait`` seconds later, SIGKILL. Python's default is to die at once, leaving
``status.json`` at ``running``. Inside :func:`sigterm_raises` the signal raises
:class:`Terminated` (a ``SystemExit``) in the main thread instead: the run's ``finally``
blocks and its failure handler run and ``status.json`` says ``failed`` with the signal's
name; the process exits with status 128 + 15, as a killed one would. A handler installed
before (submitit's) still runs first.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


class Terminated(SystemExit):
    """The process received a termination signal."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"received {signal.Signals(self.signum).name} (stopped from outside: scancel, a time limit, kill)"


_received: Terminated | None = None


def received() -> Terminated | None:
    """The termination received inside the current :func:`sigterm_raises` block, if any
    (library code may have wrapped or replaced the exception it raised)."""
    return _received


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only; elsewhere
    signal handlers cannot be installed and the block runs unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    global _received
    _received = None

    def handler(signum, frame):
        global _received
        if callable(previous):
            previous(signum, frame)
        _received = Terminated(signum)
        raise _received

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
