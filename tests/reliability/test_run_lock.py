"""The run-directory lock: one writer, a clear error for the second, stale locks recovered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from rlkit.run_lock import HELD_ENV, RunDirBusy, RunDirLock, held_by_parent

HOLD = textwrap.dedent("""
    import sys, time
    from rlkit.run_lock import RunDirLock
    lock = RunDirLock(sys.argv[1]); lock.acquire()
    print("locked", flush=True)
    time.sleep(600)
""")


@pytest.fixture
def holder(tmp_path):
    """Another process holding ``tmp_path / "run"``'s lock (killed with SIGKILL at teardown)."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    yield process
    process.kill()
    process.wait()


def test_second_process_fails_at_once_naming_the_holder(tmp_path, holder):
    import socket

    with pytest.raises(RunDirBusy, match=rf"in use by PID {holder.pid} on host {socket.gethostname()}"):
        RunDirLock(tmp_path / "run").acquire()


def test_lock_of_a_killed_process_is_taken_over(tmp_path, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert json.loads((tmp_path / "run" / ".lock").read_text())["pid"] == holder.pid  # stale record
    with RunDirLock(tmp_path / "run") as lock:
        assert lock.holder()["pid"] == os.getpid()


def test_same_process_cannot_lock_twice_and_release_lets_the_next_in(tmp_path):
    with RunDirLock(tmp_path):
        with pytest.raises(RunDirBusy, match="already in use by this process"):
            RunDirLock(tmp_path).acquire()
        assert held_by_parent(tmp_path) and os.environ[HELD_ENV] == str(tmp_path.resolve())
    assert not held_by_parent(tmp_path)
    with RunDirLock(tmp_path):
        pass


def test_requeued_slurm_job_waits_for_its_previous_attempt(tmp_path, holder, monkeypatch):
    """The holder's record says it is this Slurm job (a requeue whose old node's NFS lease
    has not expired): wait for it to go instead of failing."""
    lock_file = tmp_path / "run" / ".lock"
    record = json.loads(lock_file.read_text())
    lock_file.write_text(json.dumps({**record, "slurm_job_id": "4242"}))
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    import threading

    threading.Timer(1.5, holder.kill).start()
    with RunDirLock(tmp_path / "run", requeue_wait_s=30) as lock:
        assert lock.holder()["slurm_job_id"] == "4242" and lock.holder()["pid"] == os.getpid()
