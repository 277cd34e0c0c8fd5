"""``python -m rlkit ...`` in real processes that start in a fraction of a second.

The fault-injection tests start and kill dozens of runs. Each one is a separate process
running rlkit's command-line entry point with its own argv, killed with real signals, but
forked from a server process (multiprocessing's ``forkserver``) that has already imported
torch, transformers and rlkit -- the imports are most of a run's start-up time. The server
runs no torch code itself, so its children fork from a clean, single-threaded state.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import rlkit

#: Modules the server imports once for every child.
PRELOAD = ["torch", "transformers", "rlkit.__main__", "rlkit.models.loading", "rlkit.trainer.loop",
           "rlkit.backends.single", "rlkit.algorithms.sft", "matplotlib.pyplot"]
MAIN = str(Path(rlkit.__file__).parent / "__main__.py")

_context = None


def context():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def _cli(argv: list[str], log: str) -> None:
    """The child: output to ``log``, then rlkit's entry point as ``python -m rlkit argv``."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    import torch

    torch.set_num_threads(1)  # the suite runs many of these side by side on few cores
    sys.argv = [MAIN, *argv]
    from rlkit.__main__ import main

    main()


def start(argv: list[str], log: Path):
    """A started ``python -m rlkit argv`` process (``.pid``, ``.kill()``, ``.join()``, ``.exitcode``)."""
    process = context().Process(target=_cli, args=(list(argv), str(log)), daemon=False)
    process.start()
    return process


def run(argv: list[str], log: Path, timeout: float = 300) -> int:
    """Run to the end; the exit code."""
    process = start(argv, log)
    process.join(timeout)
    if process.exitcode is None:
        process.kill()
        process.join()
        raise TimeoutError(f"rlkit {' '.join(argv)} did not finish in {timeout} s; log: {log}")
    return process.exitcode


def run_subprocess(argv: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """``python -m rlkit argv`` as a fresh interpreter (for what a user's shell does exactly)."""
    return subprocess.run([sys.executable, "-m", "rlkit", *argv], capture_output=True, text=True,
                          timeout=timeout, **kwargs)
