"""Run untrusted (model-written) programs, each in a fresh bubblewrap sandbox.

One execution = one ``bwrap`` process: new user, PID, network, IPC, UTS and cgroup
namespaces; a read-only view of ``/usr`` (plus the interpreter's prefix and any
``ro_binds``) and nothing else of the host (no ``/home``, ``/root``, ``/work``, ``/etc``,
``/tmp``); a private ``/tmp`` (a size-limited tmpfs, the working directory) holding the
program's files; no network at all (only a loopback device of its own). Resource limits
are set with ``prlimit`` inside the sandbox, right before the program starts:

* CPU time (``RLIMIT_CPU``: SIGXCPU at the limit), address space (``RLIMIT_AS``), file
  size (``RLIMIT_FSIZE``), open files (``RLIMIT_NOFILE``), no core dumps;
* processes (``RLIMIT_NPROC``). Since Linux 5.14 the kernel counts it per user namespace,
  and every sandbox has its own, so the limit holds per execution, not per host user.
  It never applies to host uid 0, so a root caller runs bwrap as ``uid`` (nobody): the
  sandbox's processes are then an unprivileged user's on the host as well.

The caller enforces wall time and output size: past either the whole sandbox is killed
(SIGKILL to bwrap; ``--die-with-parent`` takes its PID namespace, and with it every
process the program started, down with it).

Whatever the program does (crash, time out, fork-bomb, exhaust memory, flood output) is
an :class:`Execution` with a :class:`Status`; only a sandbox that cannot be set up raises
(:class:`SandboxUnavailable` at construction, :class:`SandboxError` later).
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

from rlkit.schema import above, at_least

INSTALL_HINT = "install it with `apt-get install -y bubblewrap` (Debian/Ubuntu; scripts/install_sandbox.sh)"

#: Top-level directories that are symlinks into /usr on merged-/usr systems (bound otherwise).
_SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: Interpreters tried, in order, when ``sandbox.python`` is null.
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")
#: Where the program's files and working directory are, inside the sandbox.
WORKDIR = "/tmp"
#: Bytes the report channel may carry (a harness's results); past them the sandbox is killed.
MAX_REPORT_BYTES = 4 * 2**20


@dataclass
class SandboxConfig:
    """Limits of one sandboxed execution, and what the sandbox sees."""

    #: Seconds from start to kill, whatever the program does (sleeping, blocked, spinning).
    wall_time_s: float = field(default=10.0, metadata=above(0))
    #: CPU seconds of each process (RLIMIT_CPU): SIGXCPU at the limit.
    cpu_time_s: int = field(default=5, metadata=at_least(1))
    #: Address space of each process, MiB (RLIMIT_AS); beyond it allocations fail (MemoryError).
    memory_mb: int = field(default=512, metadata=at_least(16))
    #: Processes and threads the program may run at once (RLIMIT_NPROC, per sandbox).
    max_processes: int = field(default=32, metadata=at_least(1))
    #: Bytes of stdout + stderr kept; the program is killed when it writes more.
    max_output_bytes: int = field(default=64 * 1024, metadata=at_least(1))
    #: Largest file the program may write, MiB (RLIMIT_FSIZE).
    max_file_mb: int = field(default=16, metadata=at_least(1))
    #: Size of the private writable /tmp (a tmpfs), MiB.
    tmp_size_mb: int = field(default=64, metadata=at_least(1))
    #: Open files per process (RLIMIT_NOFILE).
    max_open_files: int = field(default=256, metadata=at_least(16))
    #: The interpreter that runs Python programs; null: the first of ``SYSTEM_PYTHONS`` that
    #: exists, else this interpreter. It must be readable by the sandbox's user: a system
    #: Python, not one under a private home (e.g. ~/.pyenv when rlkit runs as root).
    python: Optional[str] = None
    #: More host paths visible read-only inside, at the same place (e.g. a venv's site-packages).
    ro_binds: list[str] = field(default_factory=list)
    #: The host user (uid = gid) the sandbox runs as when rlkit runs as root.
    uid: int = field(default=65534, metadata=at_least(1))
    #: The bubblewrap executable.
    bwrap: str = "bwrap"


class Status(str, Enum):
    """How an execution ended."""

    ok = "ok"  # exit status 0
    error = "error"  # non-zero exit status (an exception, a failed assert, sys.exit(n))
    timeout = "timeout"  # killed at wall_time_s
    cpu_time = "cpu_time"  # killed by SIGXCPU at cpu_time_s
    output_limit = "output_limit"  # killed after writing more than max_output_bytes
    signal = "signal"  # killed by another signal (e.g. SIGKILL, SIGSEGV)

    def __str__(self) -> str:
        return self.value


@dataclass
class Execution:
    """What one sandboxed run did."""

    status: Status
    #: The program's exit status, or None when it was killed by a signal or by the caller.
    exit_code: Optional[int]
    stdout: str
    stderr: str
    #: Seconds from start to the sandbox's end.
    duration_s: float
    #: The output was cut at max_output_bytes.
    truncated: bool = False
    #: What the program wrote to the report channel (``report=True``), e.g. a test harness's results.
    report: str = ""

    @property
    def ok(self) -> bool:
        return self.status is Status.ok

    def summary(self) -> str:
        """One line: the status and its cause."""
        if self.status is Status.error:
            last = self.stderr.strip().splitlines()[-1:] or [""]
            return f"error: exit status {self.exit_code}{': ' + last[0] if last[0] else ''}"
        return {
            Status.ok: "ok",
            Status.timeout: f"timeout: killed after {self.duration_s:.1f} s of wall time",
            Status.cpu_time: "cpu_time: killed at the CPU time limit",
            Status.output_limit: "output_limit: killed after writing too much output",
            Status.signal: "signal: killed by a signal",
        }[self.status]


class SandboxUnavailable(RuntimeError):
    """This machine cannot run sandboxes (a binary is missing, namespaces are disallowed)."""


class SandboxError(RuntimeError):
    """A sandbox could not be set up for one execution (not the program's fault)."""


FileContents = Union[str, bytes]


class Sandbox:
    """Runs commands in fresh sandboxes with ``config``'s limits; safe to use from threads.

    Construction checks that sandboxes work here (``bwrap`` and ``prlimit`` found, a trivial
    program runs in one) and raises :class:`SandboxUnavailable` naming what is missing.
    """

    def __init__(self, config: SandboxConfig | None = None):
        self.config = config = config or SandboxConfig()
        self._bwrap = shutil.which(config.bwrap)
        if self._bwrap is None:
            raise SandboxUnavailable(f"sandbox: bubblewrap ({config.bwrap!r}) not found on PATH; {INSTALL_HINT}")
        if shutil.which("prlimit") is None:
            raise SandboxUnavailable(
                "sandbox: `prlimit` not found on PATH; install it with `apt-get install -y util-linux`"
            )
        python = config.python or next((p for p in SYSTEM_PYTHONS if os.path.isfile(p)), sys.executable)
        if not os.path.isfile(python):
            raise SandboxUnavailable(f"sandbox.python: {python!r} is not a file; name an installed Python")
        #: The interpreter by its real path: a symlink's own location (a venv) is not inside.
        self.python = os.path.realpath(python)
        self._base_args = self._sandbox_args()
        self._check_works()

    # -- running --------------------------------------------------------------------------

    def run_python(
        self, source: str, files: Mapping[str, FileContents] | None = None, report: bool = False
    ) -> Execution:
        """Run ``source`` as ``/tmp/main.py`` with the sandbox's Python (isolated mode, ``-I``)."""
        return self.run([self.python, "-I", "main.py"], {**(files or {}), "main.py": source}, report)

    def run(
        self, argv: Sequence[str], files: Mapping[str, FileContents] | None = None, report: bool = False
    ) -> Execution:
        """Run ``argv`` in a fresh sandbox whose /tmp (the working directory) holds ``files``
        (name -> contents). With ``report``, the program may write to the file descriptor
        named by the environment variable ``RLKIT_REPORT_FD``; that text is
        ``Execution.report``, kept apart from its output (and killed past ``MAX_REPORT_BYTES``)."""
        c = self.config
        limits = [
            f"--cpu={c.cpu_time_s}:{c.cpu_time_s + 1}",  # soft: SIGXCPU; hard (1 s later): SIGKILL
            f"--as={c.memory_mb * 2**20}",
            f"--nproc={c.max_processes}",
            f"--fsize={c.max_file_mb * 2**20}",
            f"--nofile={c.max_open_files}",
            "--core=0",
        ]
        with _Pipes(report) as pipes, _OpenFiles(files or {}) as opened:
            args = [self._bwrap, *self._base_args, "--json-status-fd", str(pipes.status_write)]
            if report:
                args += ["--setenv", "RLKIT_REPORT_FD", str(pipes.report_write)]
            for name, fd in opened.items():
                args += ["--file", str(fd), f"{WORKDIR}/{name}"]
            args += ["--", "prlimit", *limits, "--", *argv]
            started = time.monotonic()
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(*pipes.passed(), *opened.values()),
                start_new_session=True,
                **self._run_as(),
            )
            pipes.close_child_ends()
            outcome = _collect(process, pipes.report_read, started + c.wall_time_s, c.max_output_bytes)
            duration = time.monotonic() - started
            statuses = _read_statuses(pipes.status_read)
        stdout, stderr, report_text, why_killed = outcome
        if why_killed is None and not any("exit-code" in s for s in statuses):  # bwrap's own failure
            raise SandboxError(f"sandbox: bwrap could not start the program: {stderr.decode(errors='replace').strip()}")
        exit_code = next((s["exit-code"] for s in statuses if "exit-code" in s), process.returncode)
        status, exit_code = _status(why_killed, exit_code)
        return Execution(
            status=status,
            exit_code=exit_code,
            stdout=stdout.decode(errors="replace"),
            stderr=stderr.decode(errors="replace"),
            duration_s=duration,
            truncated=why_killed is Status.output_limit,
            report=report_text.decode(errors="replace"),
        )

    # -- setting up -----------------------------------------------------------------------

    def _sandbox_args(self) -> list[str]:
        """bwrap's arguments before the per-execution ones: namespaces, the file system."""
        c = self.config
        args = [
            "--unshare-all",  # user (below), PID, network, IPC, UTS, cgroup namespaces
            "--unshare-user",  # required, not just tried: RLIMIT_NPROC is counted per user namespace
            "--disable-userns",  # and the program cannot create more (kernel attack surface)
            "--die-with-parent",
            "--new-session",  # no controlling terminal to inject keystrokes into
            "--cap-drop", "ALL",
            "--hostname", "sandbox",
            "--clearenv",
            "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
            "--setenv", "HOME", WORKDIR,
            "--setenv", "LANG", "C.UTF-8",
            "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
            "--ro-bind", "/usr", "/usr",
        ]
        for path in _SYSTEM_DIRS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        prefix = _python_prefix(self.python)
        for path in ([prefix] if prefix else []) + list(c.ro_binds):
            if not os.path.exists(path):
                raise SandboxUnavailable(f"sandbox.ro_binds: {path!r} does not exist")
            args += ["--ro-bind", path, path]
        args += [
            "--proc", "/proc",
            "--dev", "/dev",
            "--size", str(c.tmp_size_mb * 2**20), "--tmpfs", WORKDIR,
            "--remount-ro", "/",  # the sandbox's own root (a tmpfs holding the mount points)
            "--remount-ro", "/dev",  # a tmpfs too, of unbounded size; its device nodes stay usable
            "--chdir", WORKDIR,
        ]
        return args

    def _run_as(self) -> dict:
        """Popen's arguments that drop root to ``config.uid`` (RLIMIT_NPROC exempts uid 0)."""
        if os.geteuid() != 0:
            return {}
        return {"user": self.config.uid, "group": self.config.uid, "extra_groups": []}

    def _check_works(self) -> None:
        user = f"uid {self.config.uid} (sandbox.uid: rlkit runs as root)" if os.geteuid() == 0 else "this user"
        try:
            probe = self.run([self.python, "-I", "-c", "print('sandbox-ok')"])
        except SandboxError as exc:
            raise SandboxUnavailable(
                f"{exc}. Either a path the sandbox shows (sandbox.python's installation, sandbox.ro_binds) "
                f"is not readable by {user}, or unprivileged user namespaces are off (sysctl "
                "user.max_user_namespaces must be > 0; kernel.unprivileged_userns_clone=1 and "
                "kernel.apparmor_restrict_unprivileged_userns=0 where they exist)"
            ) from None
        if probe.stdout.strip() != "sandbox-ok":
            raise SandboxUnavailable(
                f"sandbox: {self.python} does not run in the sandbox ({probe.summary()}; stderr: "
                f"{probe.stderr.strip()[-300:]!r}); sandbox.python must be an interpreter readable by {user}, "
                "e.g. /usr/bin/python3"
            )


def _python_prefix(python: str) -> Optional[str]:
    """The installation directory of ``python`` (``<prefix>/bin/python3``) when it is outside
    /usr, which the sandbox shows anyway."""
    real = Path(os.path.realpath(python))
    if real.is_relative_to("/usr"):
        return None
    return str(real.parent.parent)


def _status(why_killed: Optional[Status], exit_code: int) -> tuple[Status, Optional[int]]:
    if why_killed is not None:
        return why_killed, None
    if exit_code == 0:
        return Status.ok, 0
    if exit_code > 128:  # bwrap reports a child killed by signal N as 128 + N
        return (Status.cpu_time if exit_code - 128 == signal.SIGXCPU else Status.signal), None
    return Status.error, exit_code


def _collect(
    process: subprocess.Popen, report_fd: Optional[int], deadline: float, max_output: int
) -> tuple[bytes, bytes, bytes, Optional[Status]]:
    """Read stdout, stderr and the report channel until they close; kill the sandbox at the
    deadline or when stdout + stderr exceed ``max_output`` bytes."""
    selector = selectors.DefaultSelector()
    buffers = {"stdout": bytearray(), "stderr": bytearray(), "report": bytearray()}
    selector.register(process.stdout, selectors.EVENT_READ, "stdout")
    selector.register(process.stderr, selectors.EVENT_READ, "stderr")
    if report_fd is not None:
        selector.register(report_fd, selectors.EVENT_READ, "report")
    why_killed: Optional[Status] = None
    try:
        while selector.get_map() and why_killed is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                why_killed = Status.timeout
                break
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffers[key.data] += chunk
                if (len(buffers["stdout"]) + len(buffers["stderr"]) > max_output
                        or len(buffers["report"]) > MAX_REPORT_BYTES):
                    why_killed = Status.output_limit
        if why_killed is not None:
            _kill(process)
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:  # every pipe closed, yet the sandbox lingers
            why_killed = Status.timeout
            _kill(process)
    finally:
        selector.close()
        process.stdout.close()
        process.stderr.close()
    stdout, stderr = bytes(buffers["stdout"]), bytes(buffers["stderr"])
    if why_killed is Status.output_limit:
        stdout = stdout[:max_output]
        stderr = stderr[: max_output - len(stdout)]
    return stdout, stderr, bytes(buffers["report"]), why_killed


def _read_statuses(fd: int) -> list[dict]:
    """bwrap's JSON status documents written so far (never blocks: a sandbox killed before
    it reported, or whose last process is still dying, has written what it has)."""
    os.set_blocking(fd, False)
    data = b""
    try:
        while chunk := os.read(fd, 65536):
            data += chunk
    except BlockingIOError:
        pass
    statuses = []
    for line in data.decode(errors="replace").splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict):
            statuses.append(document)
    return statuses


def _kill(process: subprocess.Popen) -> None:
    """SIGKILL bwrap; its PID namespace (every process the program started) dies with it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


class _Pipes:
    """The status pipe (bwrap's JSON status) and the optional report pipe of one execution."""

    def __init__(self, report: bool):
        self.status_read, self.status_write = os.pipe()
        self.report_read, self.report_write = os.pipe() if report else (None, None)

    def passed(self) -> tuple[int, ...]:
        return tuple(fd for fd in (self.status_write, self.report_write) if fd is not None)

    def close_child_ends(self) -> None:
        for fd in self.passed():
            os.close(fd)
        self.status_write = self.report_write = None

    def __enter__(self) -> "_Pipes":
        return self

    def __exit__(self, *exc) -> None:
        for fd in (self.status_read, self.status_write, self.report_read, self.report_write):
            if fd is not None:
                os.close(fd)


class _OpenFiles:
    """Each file's contents in an unlinked temporary file, open for bwrap's ``--file FD``
    (a descriptor, so the sandbox's user needs no access to any host path)."""

    def __init__(self, files: Mapping[str, FileContents]):
        self._handles = {}
        for name, contents in files.items():
            if not name or "/" in name or name in (".", ".."):
                raise ValueError(f"sandbox file name {name!r}: must be a plain file name")
            handle = tempfile.TemporaryFile()
            handle.write(contents.encode() if isinstance(contents, str) else contents)
            handle.seek(0)
            self._handles[name] = handle

    def items(self):
        return ((name, handle.fileno()) for name, handle in self._handles.items())

    def values(self):
        return tuple(handle.fileno() for handle in self._handles.values())

    def __enter__(self) -> "_OpenFiles":
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles.values():
            handle.close()
