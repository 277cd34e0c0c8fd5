"""The test runner that runs *inside* a sandbox (standard library only): executes a program,
then each unit test against it, and reports every test's outcome on the report channel.

Input: ``task.json`` in the working directory -- ``program``, ``setup``, ``tests`` (code
strings), ``test_time_s`` and ``nonce`` -- deleted before the program runs, so the program
cannot read its tests. Output: one JSON line per event on the file descriptor named by
``RLKIT_REPORT_FD``, ``[nonce, "test", index, error]`` (error "" when it passed), written
as each test finishes, so tests run before a hang or crash still count. The program's own
output goes to stdout/stderr and is never parsed: printing "passed" earns nothing, and a
line without the nonce (which only this runner's memory holds) is ignored.

The program runs with ``__name__ == "solution"`` (its ``if __name__ == "__main__":`` demo
code does not run); setup and tests run in its namespace, in order. Each test may take
``test_time_s`` seconds of wall time (SIGALRM) before it fails and the next one starts.
"""

import json
import os
import signal
import sys


class TestTimeout(BaseException):
    """Raised in a test that ran past its time (a BaseException: ``except Exception`` in the
    program does not swallow it)."""


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:500]


def _on_alarm(signum, frame):
    raise TestTimeout("test took too long")


def main() -> None:
    report = os.fdopen(int(os.environ.pop("RLKIT_REPORT_FD")), "w", buffering=1)
    with open("task.json") as f:
        task = json.load(f)
    os.remove("task.json")
    nonce = task.pop("nonce")

    def emit(*event) -> None:
        report.write(json.dumps([nonce, *event]) + "\n")

    namespace = {"__name__": "solution", "__builtins__": __builtins__}
    signal.signal(signal.SIGALRM, _on_alarm)
    try:
        exec(compile(task["program"], "solution.py", "exec"), namespace)
        exec(compile(task["setup"], "setup.py", "exec"), namespace)
    except BaseException as exc:  # SystemExit too: the program may not end the run early
        emit("program", _describe(exc))
        return
    for index, test in enumerate(task["tests"]):
        signal.setitimer(signal.ITIMER_REAL, task["test_time_s"])
        try:
            exec(compile(test, f"test_{index}.py", "exec"), namespace)
            error = ""
        except BaseException as exc:
            error = _describe(exc)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        emit("test", index, error)


if __name__ == "__main__":
    sys.exit(main())
