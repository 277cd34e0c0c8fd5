"""Cost of one sandboxed execution (``rlkit.sandbox``), against the same work unsandboxed.

    python benchmarks/bench_sandbox.py [--runs 50]

Prints the median milliseconds (and the 90th percentile) of, interleaved run by run so the
machine's drift hits all alike:

* ``python -c pass`` as a plain subprocess (the interpreter's own start-up, the floor);
* the same in a fresh bubblewrap sandbox with its limits (``Sandbox.run``);
* a HumanEval-style completion checked by its unit tests (``reward=python``'s unit of work:
  the harness, the program and four tests, in one sandbox);

and the throughput of ``reward=python`` scoring a batch with 1 and with 4 sandboxes at once.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

from rlkit.rewards.unit_tests import UnitTestReward
from rlkit.sandbox import Sandbox, SandboxConfig
from rlkit.sandbox.unit_tests import UnitTests, run_tests
from rlkit.types import Completion, PromptSample

PROMPT = "def below_zero(operations):\n"
SOLUTION = ("    balance = 0\n    for op in operations:\n        balance += op\n        if balance < 0:\n"
            "            return True\n    return False\n")
TEST = ("def check(candidate):\n    assert candidate([]) == False\n    assert candidate([1, 2, -3, 1, 2, -3]) == False\n"
        "    assert candidate([1, 2, -4, 5, 6]) == True\n    assert candidate([1, -1, 2, -2, 5, -5, 4, -5]) == True\n")


def percentiles(times: list[float]) -> str:
    times = sorted(times)
    return f"median {statistics.median(times) * 1e3:7.1f} ms   p90 {times[int(0.9 * (len(times) - 1))] * 1e3:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32, help="completions per reward batch")
    args = parser.parse_args()

    sandbox = Sandbox(SandboxConfig())
    tests = UnitTests.from_metadata({"prompt": PROMPT, "test": TEST, "entry_point": "below_zero"})
    program = tests.program(SOLUTION)
    work = {
        "plain subprocess (python -c pass)": lambda: subprocess.run([sandbox.python, "-I", "-c", "pass"], check=True),
        "sandboxed (python -c pass)": lambda: sandbox.run([sandbox.python, "-I", "-c", "pass"]),
        "sandboxed unit tests (4 asserts)": lambda: run_tests(sandbox, program, tests),
    }
    assert run_tests(sandbox, program, tests).all_passed
    times: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(args.runs):
        for name, run in work.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    print(f"per execution, {args.runs} runs each (interleaved):")
    for name, measured in times.items():
        print(f"  {name:36s} {percentiles(measured)}")

    sample = PromptSample(PROMPT, metadata={"prompt": PROMPT, "test": TEST, "entry_point": "below_zero"})
    # Distinct programs (a comment each), so the reward's cache of outcomes does not answer.
    completions = [Completion(0, [], SOLUTION + f"# {i}\n", [], False) for i in range(args.batch)]
    print(f"reward=python on {args.batch} completions:")
    for workers in (1, 4):
        reward = UnitTestReward(UnitTestReward.Config(workers=workers))
        start = time.perf_counter()
        scores = reward([sample] * args.batch, completions).scores
        elapsed = time.perf_counter() - start
        assert scores == [1.0] * args.batch
        print(f"  workers={workers}: {elapsed:5.2f} s, {args.batch / elapsed:5.1f} completions/s")


if __name__ == "__main__":
    main()
