"""rlkit starts its own ranks: ``backend.nproc_per_node=N`` runs N processes, no torchrun.

:func:`rlkit.launch.train` calls :func:`launch_train` when the backend asks for more
than one process and this process is not already one rank of a launched run (torchrun,
srun, submitit set ``RANK``/``WORLD_SIZE`` or ``SLURM_PROCID``/``SLURM_NTASKS``; see
:mod:`rlkit.backends.distributed`). Each child runs :func:`rlkit.rank.train_rank` with the
resolved config as a plain container; rank 0 logs and writes, its return value comes back.

Why ``torch.multiprocessing`` (spawn) and not the elastic agent (``elastic_launch``):

* a failing rank's Python traceback comes back to the parent with the exception
  (``ProcessRaisedException``), and the other ranks -- typically blocked in a collective
  waiting for the dead one -- are terminated at once, so a failure ends the run with that
  rank's error instead of a hang; the elastic agent needs ``@record`` error files to show
  the child's traceback and polls its workers;
* no rendezvous store or agent thread: one TCP port, and nothing else to configure;
* restarts are rlkit's business (resume from the latest checkpoint), not the agent's
  ``max_restarts``; users who want elastic semantics run the same command under torchrun.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rlkit.backends.distributed import free_port

_log = logging.getLogger(__name__)
HYDRA_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


class RankFailed(RuntimeError):
    """A rank of a launched run raised or died; the message holds its error."""

    def __init__(self, rank: int, world_size: int, detail: str):
        super().__init__(f"rank {rank} of {world_size} failed:\n{detail.rstrip()}")
        self.rank, self.world_size, self.detail = rank, world_size, detail


def _log_file() -> str | None:
    """The Hydra job's log file, so that rank 0 keeps writing to it."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return None


def _setup_rank(local_rank: int, nproc: int, port: int, log_file: str | None, threads: int) -> None:
    os.environ.update(
        RANK=str(local_rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(nproc),
        LOCAL_WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )
    import torch

    torch.set_num_threads(threads)
    root = logging.getLogger()
    root.handlers.clear()
    if local_rank == 0:
        logging.basicConfig(level=logging.INFO, format=HYDRA_FORMAT)
        if log_file:
            file_handler = logging.FileHandler(log_file)
            file_handler.setFormatter(logging.Formatter(HYDRA_FORMAT))
            root.addHandler(file_handler)
    else:
        logging.basicConfig(level=logging.WARNING, format=f"[rank {local_rank}]{HYDRA_FORMAT}")
        warnings.filterwarnings("ignore")  # rank 0 shows them once


def _rank_main(local_rank: int, fn: Callable, args: Sequence[Any], nproc: int, port: int,
               results: Any, log_file: str | None, threads: int) -> None:
    _setup_rank(local_rank, nproc, port, log_file, threads)
    result = fn(*args)
    if local_rank == 0:
        results.put(result)


def run_ranks(fn: Callable, args: Sequence[Any], nproc: int) -> Any:
    """Run ``fn(*args)`` in ``nproc`` new processes on this node; rank 0's return value.

    ``fn`` and ``args`` must be picklable (a module-level function, plain data). Raises
    :class:`RankFailed` with the first failing rank's traceback.
    """
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    # torchrun sets one thread per rank; on CPU the ranks share the cores instead.
    threads = int(os.environ.get("OMP_NUM_THREADS") or 0) or max(1, (os.cpu_count() or 1) // nproc)
    port = free_port()
    procs = mp.start_processes(
        _rank_main, args=(fn, tuple(args), nproc, port, results, _log_file(), threads),
        nprocs=nproc, join=False, start_method="spawn",
    )
    try:
        while not procs.join():
            pass
    except mp.ProcessRaisedException as exc:
        raise RankFailed(exc.error_index, nproc, _child_traceback(str(exc))) from None
    except mp.ProcessExitedException as exc:
        how = f"killed by {exc.signal_name}" if exc.signal_name else f"exited with code {exc.exit_code}"
        raise RankFailed(exc.error_index, nproc, f"the process {how}") from None
    finally:
        for process in procs.processes:
            if process.is_alive():
                process.terminate()
        for process in procs.processes:
            process.join(timeout=30)
    return results.get() if not results.empty() else None


def _child_traceback(message: str) -> str:
    """The traceback part of torch's ``-- Process N terminated with the following error:``."""
    marker = "terminated with the following error:"
    return message.split(marker, 1)[1].strip() if marker in message else message


def _train_spawned_rank(container: dict, run_dir: str) -> Any:
    """One rank of a launched run (module-level so that spawn can pickle it)."""
    from omegaconf import OmegaConf

    from rlkit.rank import train_rank

    return train_rank(OmegaConf.create(container), Path(run_dir))


def launch_train(cfg: Any, run_dir: Path, nproc: int) -> Any:
    """``train_rank(cfg, run_dir)`` on ``nproc`` local ranks; rank 0's result."""
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(cfg, resolve=True)
    _log.info("starting %d ranks (backend=%s)", nproc, container.get("backend", {}).get("name"))
    try:
        return run_ranks(_train_spawned_rank, (container, str(run_dir)), nproc)
    except RankFailed as exc:
        record_failure(run_dir, exc)
        raise


def record_failure(run_dir: Path, exc: RankFailed) -> None:
    """``status.json``: failed at its recorded step, naming the failed rank and the last line
    of its error."""
    from rlkit.outputs import RunOutputs

    last = exc.detail.strip().splitlines()[-1] if exc.detail.strip() else "failed"
    RunOutputs(run_dir).mark_failed(f"rank {exc.rank}: {last}")
