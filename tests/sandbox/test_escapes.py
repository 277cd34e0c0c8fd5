"""Model-written code trying to get out of its sandbox: each attempt must be contained and
come back as an Execution (a failed sample), never as an exception, and leave the host as
it was. These are real attempts against a real bubblewrap sandbox (scripts/install_sandbox.sh)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from rlkit.sandbox import Sandbox, SandboxConfig, SandboxUnavailable, Status

WALL_TIME_S = 3.0


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(SandboxConfig(wall_time_s=WALL_TIME_S, cpu_time_s=1, memory_mb=256, max_processes=16,
                                 max_output_bytes=10_000, max_file_mb=1, tmp_size_mb=4))


def attempts(sandbox: Sandbox, source: str) -> dict[str, str]:
    """Run ``source``, which prints ``name: outcome`` lines, and return them as a dict."""
    result = sandbox.run_python(textwrap.dedent(source))
    assert result.status is Status.ok, result.stderr
    return dict(line.split(": ", 1) for line in result.stdout.splitlines())


def test_no_network_neither_the_host_loopback_nor_outside(sandbox):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        outcomes = attempts(sandbox, f"""
            import socket
            def attempt(name, fn):
                try:
                    fn(); print(f"{{name}}: connected")
                except OSError as exc:
                    print(f"{{name}}: {{type(exc).__name__}} {{exc.errno}}")
            attempt("host loopback", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=1))
            attempt("internet", lambda: socket.create_connection(("1.1.1.1", 443), timeout=1))
            attempt("dns", lambda: socket.getaddrinfo("pypi.org", 443))
            attempt("ipv6", lambda: socket.create_connection(("::1", {port}), timeout=1))
        """)
        listener.settimeout(0.2)
        with pytest.raises(socket.timeout):
            listener.accept()  # nothing reached the host's listener
    assert outcomes["host loopback"].startswith("ConnectionRefusedError")  # its own, empty loopback
    assert all(outcome != "connected" for outcome in outcomes.values()), outcomes
    assert outcomes["internet"].endswith(" 101")  # ENETUNREACH: no route, no interface


def test_cannot_write_outside_its_private_tmp(sandbox, tmp_path):
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    targets = {"usr": "/usr/lib/pwned", "root fs": "/pwned", "etc": "/etc/pwned", "host dir": f"{host_dir}/pwned",
               "proc sysctl": "/proc/sys/kernel/hostname", "dev": "/dev/pwned",
               "interpreter": os.path.join(os.path.dirname(sandbox.python), "pwned")}
    outcomes = attempts(sandbox, f"""
        import errno
        targets = {targets!r}
        for name, path in targets.items():
            try:
                with open(path, "w") as f:
                    f.write("x")
                print(f"{{name}}: written")
            except OSError as exc:
                print(f"{{name}}: {{errno.errorcode[exc.errno]}}")
        open("/tmp/mine", "w").write("scratch")
        print("tmp: " + open("/tmp/mine").read())
    """)
    assert outcomes.pop("tmp") == "scratch"  # its own /tmp is writable
    assert outcomes == {"usr": "EROFS", "root fs": "EROFS", "etc": "ENOENT", "host dir": "ENOENT",
                        "proc sysctl": "EACCES", "dev": "EROFS", "interpreter": "EROFS"}
    assert not any(os.path.exists(path) for path in targets.values() if "proc" not in path)
    assert list(host_dir.iterdir()) == []
    # A fresh sandbox per execution: the next one does not see the last one's /tmp.
    assert attempts(sandbox, "import os; print('tmp: ' + repr(os.listdir('/tmp')))")["tmp"] == "['main.py']"


def test_cannot_read_the_users_home_or_the_repository(sandbox):
    secret_dir = Path(tempfile.mkdtemp(dir=Path.home(), prefix=".rlkit-sandbox-test-"))
    try:
        secret = secret_dir / "credentials"
        secret.write_text("token=s3cr3t")
        outcomes = attempts(sandbox, f"""
            import os
            for name, path in {{"secret": {str(secret)!r}, "this test": {__file__!r}, "passwd": "/etc/passwd"}}.items():
                try:
                    print(f"{{name}}: read " + open(path).read()[:20])
                except OSError as exc:
                    print(f"{{name}}: {{type(exc).__name__}}")
            found = [os.path.join(d, f) for d, _, fs in os.walk({str(Path.home())!r}) for f in fs]
            print("home files: " + repr([p for p in found if not p.startswith({sandbox.python!r}.rsplit("/bin/", 1)[0])]))
        """)
    finally:
        shutil.rmtree(secret_dir)
    assert outcomes == {"secret": "FileNotFoundError", "this test": "FileNotFoundError",
                        "passwd": "FileNotFoundError", "home files": "[]"}


def _sandbox_processes(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in process.info["cmdline"] or ()):
            found.append(process)
    return found


def test_a_fork_bomb_is_capped_and_killed_with_all_its_processes(sandbox):
    marker = f"bomb_{uuid.uuid4().hex}.py"
    source = textwrap.dedent("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """)
    started = time.monotonic()
    result = sandbox.run([sandbox.python, "-I", marker], {marker: source})
    # Killed at the wall time, or sooner when the first process used up its CPU time (many cores).
    assert result.status in (Status.timeout, Status.cpu_time) and time.monotonic() - started < WALL_TIME_S + 2
    deadline = time.monotonic() + 5  # the kernel takes a moment to reap a PID namespace of 16
    while _sandbox_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _sandbox_processes(marker) == []  # the PID namespace died with the sandbox


def test_a_fork_bomb_cannot_exceed_the_process_limit(sandbox):
    outcome = attempts(sandbox, """
        import os, time
        children = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                children += 1
        except OSError as exc:
            print(f"forks: {children} then {type(exc).__name__}")
        os.kill(-1, 9)  # its own processes only: it is the PID namespace's
    """)
    assert outcome["forks"] in (f"{n} then BlockingIOError" for n in range(10, 16)), outcome


def test_the_process_limit_holds_per_sandbox_not_per_host_user(sandbox):
    """Sandboxes run at once (reward.workers) each get the whole limit: RLIMIT_NPROC is
    counted per user namespace, and each sandbox has its own, though all run as one host uid."""
    hold = textwrap.dedent("""
        import os, time
        children = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(2)
                    os._exit(0)
                children += 1
        except OSError:
            print(f"forks: {children}", flush=True)
        time.sleep(1)  # all sandboxes hold their processes at the same time
        os.kill(-1, 9)
    """)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: sandbox.run_python(hold), range(3)))
    counts = [int(r.stdout.split()[-1]) for r in results]
    assert all(10 <= count < 16 for count in counts) and sum(counts) > 16, counts


def test_an_infinite_loop_is_stopped_by_the_cpu_limit_and_a_sleeper_by_the_wall_time(sandbox):
    patient = Sandbox(replace(sandbox.config, wall_time_s=60.0))  # on a busy machine 1 CPU second takes longer
    spin = patient.run_python("while True:\n    pass\n")
    assert spin.status is Status.cpu_time and spin.exit_code is None
    quick = Sandbox(replace(sandbox.config, wall_time_s=1.0))
    sleep = quick.run_python("import time\ntime.sleep(3600)\n")
    assert sleep.status is Status.timeout and 1.0 <= sleep.duration_s < 3.0


def test_a_memory_hog_gets_memory_error_at_the_limit(sandbox):
    patient = Sandbox(replace(sandbox.config, wall_time_s=60.0))  # filling 256 MiB is slow on a busy machine
    hog = patient.run_python(textwrap.dedent("""
        chunks = []
        while True:
            chunks.append(bytearray(16 * 2**20))
            print(len(chunks) * 16, flush=True)
    """))
    assert hog.status is Status.error and hog.stderr.strip().endswith("MemoryError")
    assert int(hog.stdout.split()[-1]) < 256  # MiB allocated before the limit (memory_mb=256)
    big_file = sandbox.run_python("open('/tmp/big', 'wb').write(b'x' * 2 * 2**20)")  # max_file_mb=1
    assert big_file.status is Status.error and "[Errno 27] File too large" in big_file.stderr
    many_files = sandbox.run_python(
        "for i in range(8):\n    open(f'/tmp/f{i}', 'wb').write(b'x' * (2**20 - 4096))")  # tmp_size_mb=4
    assert many_files.status is Status.error and "[Errno 28] No space left on device" in many_files.stderr


def test_huge_output_is_truncated_and_the_program_killed(sandbox):
    result = sandbox.run_python("while True:\n    print('x' * 1000)\n")
    assert result.status is Status.output_limit and result.truncated
    assert len(result.stdout) + len(result.stderr) == sandbox.config.max_output_bytes
    assert result.duration_s < WALL_TIME_S


def test_killing_the_parent_or_the_host_processes_kills_only_the_sandbox(sandbox):
    victim = subprocess.Popen(["sleep", "60"])
    try:
        result = sandbox.run_python(textwrap.dedent(f"""
            import os, signal
            targets = {{"parent": os.getppid(), "init": 1, "pytest": {os.getpid()}, "host process": {victim.pid}, "all": -1}}
            for name, pid in targets.items():
                try:
                    os.kill(pid, signal.SIGKILL)
                    print(f"{{name}}: sent", flush=True)
                except OSError as exc:
                    print(f"{{name}}: {{type(exc).__name__}}", flush=True)
            print("still running: yes")
        """))
        assert victim.poll() is None  # the host's processes live on (this one too)
    finally:
        victim.kill()
        victim.wait()
    # It sees only its own PID namespace: the host's PIDs do not exist there; its parent is
    # the namespace's init (PID 1), which ignores signals from inside; -1 reaches no one else.
    assert result.status is Status.ok and dict(line.split(": ") for line in result.stdout.splitlines()) == {
        "parent": "sent", "init": "sent", "pytest": "ProcessLookupError", "host process": "ProcessLookupError",
        "all": "ProcessLookupError", "still running": "yes"}
    assert sandbox.run_python("print('still fine')").stdout == "still fine\n"


def test_unavailable_sandbox_names_the_missing_binary_and_the_install_command():
    with pytest.raises(SandboxUnavailable, match=r"bubblewrap \('no-such-bwrap'\) not found on PATH.*apt-get install -y bubblewrap"):
        Sandbox(SandboxConfig(bwrap="no-such-bwrap"))
    with pytest.raises(SandboxUnavailable, match="sandbox.python: '/nonexistent/python3' is not a file"):
        Sandbox(SandboxConfig(python="/nonexistent/python3"))


@pytest.mark.skipif(os.geteuid() != 0, reason="root's private home is what the check is about")
def test_an_interpreter_the_sandbox_user_cannot_read_is_refused_at_start(tmp_path):
    private = tmp_path / "private"
    (private / "bin").mkdir(parents=True)
    shutil.copy(os.path.realpath("/usr/bin/python3"), private / "bin" / "python3")  # as ~/.pyenv's under /root
    private.chmod(0o700)
    with pytest.raises(SandboxUnavailable, match=r"Can't find source path .*Permission denied.*readable by uid 65534"):
        Sandbox(SandboxConfig(python=str(private / "bin" / "python3")))
