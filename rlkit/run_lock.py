"""One writer per run directory: an OS file lock on ``<run dir>/.lock``.

Two processes training into the same directory would log every step twice and prune each
other's checkpoints, so a run takes an exclusive ``fcntl`` lock before it writes anything
and holds it until it ends. A second process fails at once with :class:`RunDirBusy`,
naming the holder's PID and host (the lock file records them).

The kernel drops the lock when its process dies, however it dies (SIGKILL, OOM, a node
reboot on a local disk), so the rerun of a killed run simply takes it again: the PID in
the file is then stale and is overwritten. On NFS a crashed client's lock outlives it
until the server's lease expires (about 90 s); a Slurm job that was requeued after its
node failed finds its own job id in the file and waits ``requeue_wait_s`` for that lease
instead of failing.

The ranks a run starts itself (rlkit's launcher, Ray trainer actors) inherit the
``RLKIT_RUN_LOCK_HELD`` environment variable and do not lock again; under torchrun or
srun, where no rlkit process came first, global rank 0 takes the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

from hydra.experimental.callback import Callback

LOCK_FILE = ".lock"
#: Set while a process holds a run directory's lock: the directory, for its child ranks.
HELD_ENV = "RLKIT_RUN_LOCK_HELD"


#: Directories locked by this process. POSIX locks never conflict within one process, and
#: closing any descriptor of the file drops them, so a second acquire is refused here.
_held: set[str] = set()


class RunDirBusy(RuntimeError):
    """Another live process holds the run directory's lock."""


class RunDirLock:
    """``with RunDirLock(run_dir):`` -- exclusive use of ``run_dir`` (created if missing)."""

    def __init__(self, run_dir: Path, requeue_wait_s: float = 120.0):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.requeue_wait_s = requeue_wait_s
        self._fd: int | None = None
        self._previous_env: str | None = None

    def acquire(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        key = str(self.run_dir.resolve())
        if key in _held:
            raise RunDirBusy(f"run directory {self.run_dir} is already in use by this process (PID {os.getpid()})")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._lock(fd)
            record = {"pid": os.getpid(), "host": socket.gethostname(),
                      "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "slurm_job_id": _slurm_job_id()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        _held.add(key)
        self._previous_env = os.environ.get(HELD_ENV)
        os.environ[HELD_ENV] = key

    def _lock(self, fd: int) -> None:
        deadline = None
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError:
                holder = self.holder()
            same_job = holder.get("slurm_job_id") is not None and holder.get("slurm_job_id") == _slurm_job_id()
            if same_job and deadline is None:
                deadline = time.monotonic() + self.requeue_wait_s
            if not same_job or time.monotonic() >= deadline:
                raise RunDirBusy(
                    f"run directory {self.run_dir} is in use by PID {holder.get('pid', '?')} on host "
                    f"{holder.get('host', '?')} (since {holder.get('since', '?')}); one run directory takes "
                    "one run at a time: wait for it to end or choose another hydra.run.dir"
                )
            time.sleep(1.0)

    def holder(self) -> dict:
        """What the lock file says about its holder (empty when unreadable)."""
        try:
            record = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def release(self) -> None:
        if self._fd is None:
            return
        if self._previous_env is None:
            os.environ.pop(HELD_ENV, None)
        else:
            os.environ[HELD_ENV] = self._previous_env
        # The file stays: deleting it would let a waiting process lock an unlinked inode.
        fcntl.lockf(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        _held.discard(str(self.run_dir.resolve()))

    def __enter__(self) -> RunDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def held_by_parent(run_dir: Path) -> bool:
    """True in the process holding ``run_dir``'s lock and in the ranks it started."""
    return os.environ.get(HELD_ENV) == str(Path(run_dir).resolve())


def held_here(run_dir: Path) -> bool:
    """True in the process holding ``run_dir``'s lock (the one that records its status)."""
    return str(Path(run_dir).resolve()) in _held


def _slurm_job_id() -> str | None:
    """This Slurm job (array jobs: the array element), or None outside Slurm."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array:
        return f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    return os.environ.get("SLURM_JOB_ID")


class LockRunDir(Callback):
    """Hydra callback: ``python -m rlkit`` locks its run directory in ``on_run_start``,
    before Hydra writes ``.hydra/`` or its log there, and holds it until the process ends
    (the training code then finds it held, see :func:`held_by_parent`). Ranks other than
    global rank 0 of a torchrun/srun launch leave it to rank 0. Hydra turns a callback's
    exceptions into warnings, so a busy directory ends the process here (exit status 1)."""

    def __init__(self) -> None:
        self.lock: RunDirLock | None = None

    def on_run_start(self, config, **kwargs) -> None:
        if launched_rank() != 0:
            return
        lock = RunDirLock(Path(config.hydra.run.dir))
        try:
            lock.acquire()
        except RunDirBusy as exc:
            raise SystemExit(f"Error: {exc}") from None
        self.lock = lock

    def on_run_end(self, config, **kwargs) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def launched_rank() -> int:
    """This process's global rank under torchrun or srun (0 when not launched)."""
    from rlkit.backends.distributed import read_env

    found = read_env()
    return found.rank if found is not None else 0
