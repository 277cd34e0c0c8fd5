"""A private single-node Slurm cluster on localhost, for tests.

    with LocalSlurmCluster(tmp_path / "slurm") as cluster:
        os.environ.update(cluster.env)          # SLURM_CONF for sbatch/squeue/submitit
        ... submit jobs to cluster.partition ...

What it does:

* writes a fresh munge key and a ``slurm.conf`` (node CPUs/sockets/memory from
  ``slurmd -C``, SlurmctldPort/SlurmdPort chosen free at each start) into ``workdir``;
* starts ``munged`` as the ``munge`` user with a private key and socket in a short
  ``/tmp/rlkit-munge-*`` directory (munge must be able to traverse the path, which pytest's
  0700 tmp dirs forbid; the system munged is neither used nor touched), then ``slurmctld``
  and ``slurmd`` in the foreground as child processes (pid files in ``workdir/run``, logs
  in ``workdir/log``). Each daemon gets SIGTERM if the test process dies without stop()
  (``setpriv --pdeathsig``), so a crashed or killed pytest leaves no daemons behind;
* waits until ``sinfo`` reports the node ``idle`` (a timeout raises with the tails of the
  daemons' logs);
* ``stop()`` cancels the cluster's jobs, then terminates slurmd, slurmctld and munged
  (by the pids in their pid files, cross-checked with the child handles), waits for each
  to exit (SIGKILL after a grace period) and kills any leftover job-step processes.

Memory requests are scheduled but not enforced (no cgroup plugin). Needs root (slurmd
runs jobs as the submitting user) and the Debian packages installed by
``scripts/install_slurm.sh``. Slurm clients (sbatch, squeue, sinfo, srun, scancel, and
submitit which calls them) need ``SLURM_CONF`` from :attr:`LocalSlurmCluster.env`.
There is no accounting (no slurmdbd), so the real ``sacct`` fails. submitit polls
``sacct -o JobID,State,NodeList --parsable2 -j ID...`` for job states: when it fails,
submitit warns on every poll and, worse, never learns that a job died without writing
its result (SIGKILL, time limit, scancel), so ``job.result()`` -- and Hydra's submitit
launcher -- would wait forever. ``env`` therefore puts a small ``sacct`` stand-in first on
PATH (``workdir/bin/sacct``, ``sacct_shim=True``): it answers exactly that query from
``squeue -t all`` (finished jobs stay listed for MinJobAge=3600 s here) and hands any other
invocation to the real sacct.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = [
    "LocalSlurmCluster",
    "SacctWarningFilter",
    "SlurmNotInstalledError",
    "SlurmStartError",
    "find_slurm_binaries",
    "wait_for_submitit_job",
]

INSTALL_HINT = "run `scripts/install_slurm.sh` (as root) to install Slurm and munge"

_DAEMONS = ("munged", "slurmctld", "slurmd")
_CLIENTS = ("sinfo", "squeue", "sbatch", "scancel", "srun", "scontrol")
_SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")


class SlurmNotInstalledError(RuntimeError):
    """The Slurm or munge binaries are missing."""


class SlurmStartError(RuntimeError):
    """The local cluster did not come up; the message holds the daemons' log tails."""


def find_slurm_binaries() -> dict[str, str]:
    """Absolute paths of the daemons and clients; raises SlurmNotInstalledError if absent."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    found: dict[str, str] = {}
    missing = []
    for name in (*_DAEMONS, *_CLIENTS):
        path = shutil.which(name, path=search)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    if missing:
        raise SlurmNotInstalledError(
            f"Slurm/munge binaries not found: {', '.join(missing)}; {INSTALL_HINT}"
        )
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"    <{path}: {exc.strerror}>"
    return "\n".join("    " + line for line in text[-lines:]) or "    <empty>"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def _descendants(pid: int) -> list[int]:
    children = _children_map()
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _node_hardware() -> dict[str, int]:
    """CPUs/sockets/cores/threads/memory of this machine (as slurmd will see them)."""
    hw: dict[str, int] = {}
    slurmd = shutil.which("slurmd", path=os.pathsep.join([os.environ.get("PATH", ""), *_SBIN]))
    if slurmd:
        try:
            out = subprocess.run(
                [slurmd, "-C"], capture_output=True, text=True, timeout=30, check=True
            ).stdout
            for field in out.split():
                key, _, value = field.partition("=")
                if (
                    key
                    in {
                        "CPUs",
                        "Boards",
                        "SocketsPerBoard",
                        "CoresPerSocket",
                        "ThreadsPerCore",
                        "RealMemory",
                    }
                    and value.isdigit()
                ):
                    hw[key] = int(value)
        except (subprocess.SubprocessError, OSError):
            hw = {}
    if "CPUs" not in hw or "RealMemory" not in hw:
        hw = {"CPUs": len(os.sched_getaffinity(0))}
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    hw["RealMemory"] = int(line.split()[1]) // 1024
                    break
    return hw


class LocalSlurmCluster:
    """A single-node Slurm cluster (munged + slurmctld + slurmd) private to ``workdir``."""

    def __init__(
        self,
        workdir: Path | str,
        *,
        partition: str = "debug",
        cluster_name: str = "rlkit-test",
        start_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        sacct_shim: bool = True,
        requeue_delay_s: int = 10,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.partition = partition
        self.cluster_name = cluster_name
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.sacct_shim = sacct_shim
        self.requeue_delay_s = requeue_delay_s
        self.bin_dir = self.workdir / "bin"
        self.nodename = socket.gethostname().split(".")[0]
        self.conf_path = self.workdir / "slurm.conf"
        self.log_dir = self.workdir / "log"
        self.run_dir = self.workdir / "run"
        self.ctld_port: int | None = None
        self.slurmd_port: int | None = None
        self.hardware: dict[str, int] = {}
        self.munge_dir: Path | None = None
        self._bins: dict[str, str] = {}
        self._procs: dict[str, subprocess.Popen] = {}
        self._started = False
        self._last_node_state = "not queried"
        self.start_seconds: float | None = None  # wall time of the last start()/stop()
        self.stop_seconds: float | None = None

    # ------------------------------------------------------------------ public API
    @property
    def env(self) -> dict[str, str]:
        """Variables every Slurm client (and submitit, Hydra's launcher) needs."""
        env = {"SLURM_CONF": str(self.conf_path)}
        path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
        front = [str(self.bin_dir)] if self.sacct_shim else []
        if self._bins:
            client_dir = str(Path(self._bins["sbatch"]).parent)
            if client_dir not in path:
                front.append(client_dir)
        if front:
            env["PATH"] = os.pathsep.join(front + [p for p in path if p not in front])
        return env

    @property
    def munge_socket(self) -> Path:
        assert self.munge_dir is not None
        return self.munge_dir / "munge.socket"

    @property
    def log_files(self) -> dict[str, Path]:
        files = {
            "slurmctld": self.log_dir / "slurmctld.log",
            "slurmd": self.log_dir / "slurmd.log",
        }
        if self.munge_dir is not None:
            files["munged"] = self.munge_dir / "munged.log"
        return files

    def start(self) -> LocalSlurmCluster:
        if self._started:
            return self
        self._bins = find_slurm_binaries()
        if os.geteuid() != 0:
            raise SlurmStartError(
                "LocalSlurmCluster must run as root: slurmd starts job steps as the "
                "submitting user and munged must run as the munge user"
            )
        self._started = True
        atexit.register(self.stop)
        t0 = time.perf_counter()
        try:
            for attempt in range(3):
                try:
                    self._start_once()
                    self.start_seconds = time.perf_counter() - t0
                    return self
                except SlurmStartError as exc:
                    # Another process may have taken a port between choosing and binding it.
                    if "Address already in use" not in str(exc) or attempt == 2:
                        raise
                    self._stop_daemons()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Cancel jobs and stop every daemon this object started; safe to call twice."""
        if not self._started:
            return
        self._started = False
        t0 = time.perf_counter()
        try:
            self.cancel_jobs()
        finally:
            self._stop_daemons()
            self.stop_seconds = time.perf_counter() - t0
            atexit.unregister(self.stop)
            if self.munge_dir is not None:
                shutil.rmtree(self.munge_dir, ignore_errors=True)
                self.munge_dir = None

    def __enter__(self) -> LocalSlurmCluster:  # noqa: PYI034 - typing.Self needs 3.11
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def run_client(self, *args: str, timeout: float = 30.0, check: bool = True) -> str:
        """Run a Slurm client (``sinfo``, ``squeue``...) against this cluster; return stdout."""
        name, *rest = args
        cmd = [self._bins.get(name, name), *rest]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **self.env},
            check=False,
        )
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc.stdout

    def describe_logs(self, lines: int = 25) -> str:
        parts = []
        for name, path in self.log_files.items():
            parts.append(f"--- {name} ({path}) ---\n{_tail(path, lines)}")
            out = self.log_dir / f"{name}.stdout"
            logged = path.exists() and path.stat().st_size > 0
            # The daemons echo their log to stdout; show it when the log file says nothing
            # (an error before the log was opened, e.g. a bad slurm.conf).
            if not logged and out.exists() and out.stat().st_size:
                parts.append(f"--- {name} stdout/stderr ({out}) ---\n{_tail(out, lines)}")
        return "\n".join(parts)

    # ------------------------------------------------------------------ internals
    def _start_once(self) -> None:
        for d in (
            self.workdir,
            self.log_dir,
            self.run_dir,
            self.workdir / "state",
            self.workdir / "spool",
        ):
            d.mkdir(parents=True, exist_ok=True)
        if not self.hardware:
            self.hardware = _node_hardware()
        self.ctld_port = _free_port()
        self.slurmd_port = _free_port()
        while self.slurmd_port == self.ctld_port:
            self.slurmd_port = _free_port()
        if self.munge_dir is None:
            self._setup_munge()
        self._write_conf()
        if self.sacct_shim:
            self._write_sacct_shim()

        env = {**os.environ, **self.env}
        env.pop("SLURM_JOB_ID", None)
        if "munged" not in self._procs:
            self._spawn(
                "munged",
                [
                    self._bins["munged"],
                    "--foreground",
                    f"--key-file={self.munge_dir / 'munge.key'}",
                    f"--socket={self.munge_socket}",
                    f"--pid-file={self.munge_dir / 'munged.pid'}",
                    f"--log-file={self.munge_dir / 'munged.log'}",
                    f"--seed-file={self.munge_dir / 'munged.seed'}",
                ],
                env,
                user="munge",
            )
            self._wait_for(lambda: self.munge_socket.exists(), "munged socket", ["munged"])
        self._spawn(
            "slurmctld", [self._bins["slurmctld"], "-D", "-c", "-f", str(self.conf_path)], env
        )
        self._spawn("slurmd", [self._bins["slurmd"], "-D", "-c", "-f", str(self.conf_path)], env)
        self._last_node_state = "not queried"
        self._wait_for(
            self._node_idle,
            f"node {self.nodename} idle in `sinfo`",
            ["munged", "slurmctld", "slurmd"],
        )

    def _setup_munge(self) -> None:
        # munged (running as the munge user) must traverse every directory up to its key and
        # socket, and refuses group/other-writable ones; pytest's tmp dirs are root-only 0700
        # and can be long (unix socket paths are limited to 107 bytes), so munge gets its own
        # short directory under /tmp, removed by stop().
        munge = pwd.getpwnam("munge")
        self.munge_dir = Path(tempfile.mkdtemp(prefix="rlkit-munge-", dir="/tmp"))
        key = self.munge_dir / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        os.chown(key, munge.pw_uid, munge.pw_gid)
        os.chown(self.munge_dir, munge.pw_uid, munge.pw_gid)
        self.munge_dir.chmod(0o711)
        # A copy next to slurm.conf, for people debugging a kept workdir.
        shutil.copyfile(key, self.workdir / "munge.key")
        (self.workdir / "munge.key").chmod(0o400)

    def _write_conf(self) -> None:
        hw = self.hardware
        cpus, mem = hw["CPUs"], hw["RealMemory"]
        topo = "".join(
            f" {k}={hw[k]}"
            for k in ("Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
            if k in hw
        )
        user = pwd.getpwuid(os.geteuid()).pw_name
        w = self.workdir
        conf = f"""\
# Written by tests/slurm_cluster.py: a private single-node cluster on localhost.
ClusterName={self.cluster_name}
SlurmctldHost={self.nodename}(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
# cred_expire: also how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket={self.munge_socket},cred_expire={self.requeue_delay_s}
StateSaveLocation={w / "state"}
SlurmdSpoolDir={w / "spool"}
SlurmctldPidFile={self.run_dir / "slurmctld.pid"}
SlurmdPidFile={self.run_dir / "slurmd.pid"}
SlurmctldLogFile={self.log_dir / "slurmctld.log"}
SlurmdLogFile={self.log_dir / "slurmd.log"}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# Schedule a new batch job at the next pass (~1 s), not up to 3 s later (the default); the
# backfill pass, which starts a requeued job once its delay is over, every 5 s (not 30).
SchedulerParameters=batch_sched_delay=0,bf_interval=5
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
MailProg=/bin/true
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=3600
DefMemPerCPU={max(256, min(2048, mem // max(cpus, 1)))}
NodeName={self.nodename} NodeAddr=127.0.0.1 CPUs={cpus}{topo} RealMemory={mem} State=UNKNOWN
PartitionName={self.partition} Nodes={self.nodename} Default=YES MaxTime=INFINITE State=UP
"""
        self.conf_path.write_text(conf)

    def _write_sacct_shim(self) -> None:
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        search = [
            p
            for p in os.environ.get("PATH", "").split(os.pathsep)
            if p and Path(p).resolve() != self.bin_dir.resolve()
        ]
        real = shlex.quote(shutil.which("sacct", path=os.pathsep.join(search)) or "/usr/bin/sacct")
        squeue = shlex.quote(self._bins["squeue"])
        shim = self.bin_dir / "sacct"
        shim.write_text(f"""#!/bin/sh
# Written by tests/slurm_cluster.py. This test cluster has no accounting database, so the
# real sacct fails. submitit only asks `sacct -o JobID,State,NodeList --parsable2 -j ID...`
# to learn job states: answer that from squeue (finished jobs stay listed for MinJobAge);
# pass anything else to the real sacct.
if [ "$1" != "-o" ] || [ "$2" != "JobID,State,NodeList" ] || [ "$3" != "--parsable2" ]; then
    exec {real} "$@"
fi
shift 3
ids=""
while [ $# -gt 0 ]; do
    case "$1" in
        -j|--jobs) ids="$ids,$2"; shift 2 ;;
        *) exec {real} -o JobID,State,NodeList --parsable2 "$@" ;;
    esac
done
echo "JobID|State|NodeList"
[ -z "$ids" ] && exit 0
{squeue} -h -t all -j "${{ids#,}}" -o "%i|%T|%N" 2>/dev/null
exit 0
""")
        shim.chmod(0o755)

    def _spawn(
        self, name: str, cmd: list[str], env: dict[str, str], user: str | None = None
    ) -> None:
        # setpriv --pdeathsig: the daemon gets SIGTERM if this (test) process dies without
        # calling stop() -- a crashed or SIGKILLed pytest leaves no daemons behind.
        setpriv = shutil.which("setpriv", path=os.pathsep.join(["/usr/bin", "/bin", *_SBIN]))
        popen_user = user
        if setpriv:
            prefix = [setpriv, "--pdeathsig=TERM"]
            if user is not None:
                prefix += [f"--reuid={user}", f"--regid={user}", "--init-groups"]
                popen_user = None
            cmd = [*prefix, "--", *cmd]
        with open(self.log_dir / f"{name}.stdout", "ab") as out:
            self._procs[name] = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                start_new_session=True,
                user=popen_user,
                group=popen_user,
            )

    def wait_until_idle(self, timeout: float = 60.0) -> None:
        """Wait until the node is idle again: a job whose result submitit has already read
        can still hold the node for a moment while its process exits."""
        self._wait_for(
            self._node_idle, f"node {self.nodename} idle in `sinfo`", list(self._procs), timeout
        )

    def _wait_for(
        self, predicate, what: str, daemons: list[str], timeout: float | None = None
    ) -> None:
        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            for name in daemons:
                proc = self._procs.get(name)
                if proc is not None and proc.poll() is not None:
                    raise SlurmStartError(
                        f"{name} exited with code {proc.returncode} while waiting for {what}\n"
                        + self.describe_logs()
                    )
            if predicate():
                return
            if time.monotonic() > deadline:
                state = f" (node state: {self._last_node_state})" if "sinfo" in what else ""
                raise SlurmStartError(
                    f"timed out after {timeout:.0f}s waiting for {what}{state}\n"
                    + self.describe_logs()
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _node_idle(self) -> bool:
        try:
            out = self.run_client(
                "sinfo", "-h", "-N", "-p", self.partition, "-o", "%T", timeout=10, check=False
            )
        except subprocess.TimeoutExpired:
            return False
        self._last_node_state = out.strip() or "not listed"
        return self._last_node_state == "idle"

    def clear_jobs(self, timeout: float = 120.0) -> None:
        """Cancel every job still queued or running and wait until the node is idle: what
        one test left behind (a job still exiting, or one a failed test never waited for)
        does not hold the node for the next."""
        self.cancel_jobs()
        self.wait_until_idle(timeout)

    def cancel_jobs(self) -> None:
        if "slurmctld" not in self._procs or self._procs["slurmctld"].poll() is not None:
            return
        try:
            jobs = self.run_client("squeue", "-h", "-o", "%A", timeout=10, check=False).split()
            if not jobs:
                return
            self.run_client("scancel", *jobs, timeout=10, check=False)
            deadline = time.monotonic() + self.stop_timeout
            while time.monotonic() < deadline:
                out = self.run_client(
                    "squeue", "-h", "-t", "all", "-o", "%T", timeout=10, check=False
                )
                if not any(s in out for s in ("RUNNING", "COMPLETING", "PENDING", "CONFIGURING")):
                    return
                time.sleep(0.2)
        except (subprocess.SubprocessError, OSError):
            pass

    def daemon_pids(self) -> dict[str, set[int]]:
        """Pids of the running daemons (from their pid files and child handles)."""
        return {name: self._daemon_pids(name) for name in _DAEMONS}

    def _daemon_pids(self, name: str) -> set[int]:
        pids: set[int] = set()
        proc = self._procs.get(name)
        if proc is not None and proc.poll() is None:
            pids.add(proc.pid)
        pid_file = {
            "munged": self.munge_dir / "munged.pid" if self.munge_dir else None,
            "slurmctld": self.run_dir / "slurmctld.pid",
            "slurmd": self.run_dir / "slurmd.pid",
        }[name]
        with contextlib.suppress(OSError, ValueError):
            if pid_file is not None and pid_file.exists():
                pid = int(pid_file.read_text().split()[0])
                # Only trust a pid file whose process is really this daemon with our config.
                cmd = _cmdline(pid)
                if name in cmd and (str(self.conf_path) in cmd or str(self.munge_dir) in cmd):
                    pids.add(pid)
        return pids

    def _stop_daemons(self) -> None:
        leftovers: set[int] = set()
        for name in ("slurmd", "slurmctld", "munged"):
            pids = self._daemon_pids(name)
            # slurmctld's slurmscriptd; slurmd's job processes (scancel normally ended them)
            for pid in pids:
                leftovers.update(_descendants(pid))
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout
            while any(_alive(p) for p in pids) and time.monotonic() < deadline:
                self._reap()
                time.sleep(0.05)
            for pid in pids:
                if _alive(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            proc = self._procs.pop(name, None)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=self.stop_timeout)
        for pid in leftovers:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _reap(self) -> None:
        for proc in self._procs.values():
            proc.poll()


class SacctWarningFilter(logging.Filter):
    """Drops submitit's "Bypassing sacct error" warning (this cluster has no accounting).

    Install on the ``submitit`` logger: ``logging.getLogger("submitit").addFilter(...)``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "Bypassing sacct error" not in record.getMessage()


_TERMINAL = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "REVOKED",
}


def wait_for_submitit_job(job, timeout: float = 120.0, poll: float = 0.25, grace: float = 3.0):
    """Wait for a submitit job and return ``job.results()`` (one entry per task).

    Raises with the job's stderr when the job ended without writing its result (killed,
    cancelled, time limit), as seen by ``squeue -t all``, or after ``timeout`` seconds --
    so a test fails with the reason instead of waiting forever even without the sacct
    stand-in (``job.result()`` never gives up).
    """
    deadline = time.monotonic() + timeout
    ended_at: float | None = None
    while not job.done():
        now = time.monotonic()
        states = set(
            subprocess.run(
                ["squeue", "-h", "-t", "all", "-j", str(job.job_id), "-o", "%T"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ).stdout.split()
        )
        if states and states <= _TERMINAL:
            ended_at = ended_at or now
            if now - ended_at > grace:
                raise RuntimeError(
                    f"Slurm job {job.job_id} ended ({', '.join(sorted(states))}) without a "
                    f"submitit result\n--- stderr ---\n{_job_text(job.stderr)}"
                )
        if now > deadline:
            raise TimeoutError(
                f"Slurm job {job.job_id} not done after {timeout:.0f}s "
                f"(squeue: {', '.join(sorted(states)) or 'not listed'})\n"
                f"--- stderr ---\n{_job_text(job.stderr)}"
            )
        time.sleep(poll)
    return job.results()


def _job_text(getter) -> str:
    try:
        return (getter() or "<empty>")[-4000:]
    except Exception as exc:  # noqa: BLE001 - best effort diagnostics
        return f"<unavailable: {exc}>"
