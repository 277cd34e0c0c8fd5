"""Cost of one sandboxed execution (``rlkit.sandbox``), against the same work unsandboxed.

    python benchmarks/bench_sandbox.py [--runs 50]

Prints the median milliseconds (and the 90th percentile) of, interleaved run by run so the
machine's drift hits all alike:

* ``python -c pass`` as a plain subprocess (the interpreter's own start-up, the floor);
* the same in a fresh bubblewrap sandbox with its limits (``Sandbox.run``);
* a HumanEval-style completion checked by its unit tests (``reward=python``'s unit of work:
  the harness, the program and four tests, in one sandbox);

and, per execution, a batch of ``--batch`` programs run sequentially against ``--workers``
sandboxes at once (``--rounds`` rounds, interleaved): ``reward=python`` scoring a batch
(``reward.workers``) and a round of ``env=python`` episodes (``env.workers``, one turn each).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

from rlkit.environments.python import PythonEnvConfig, PythonEnvironment
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
    parser.add_argument("--batch", type=int, default=32, help="programs per reward batch / episodes per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8], help="sandboxes at once")
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
    texts = [SOLUTION + f"# {i}\n" for i in range(args.batch)]
    completions = [Completion(0, [], text, [], False) for text in texts]

    def scoring(workers: int):
        reward = UnitTestReward(UnitTestReward.Config(workers=workers))  # a fresh cache of outcomes
        return lambda: reward([sample] * args.batch, completions).scores == [1.0] * args.batch

    def stepping(workers: int):
        environment = PythonEnvironment(PythonEnvConfig(workers=workers))
        states = environment.start_all([sample] * args.batch)
        return lambda: all(t.done and t.reward == 1.0 for t in environment.step_all(states, texts))

    rounds: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for name, prepare in (("reward=python (reward.workers)", scoring), ("env=python round (env.workers)", stepping)):
            for workers in args.workers:
                run = prepare(workers)  # the sandbox's start-up check is not part of an execution
                start = time.perf_counter()
                assert run()
                rounds.setdefault((name, workers), []).append((time.perf_counter() - start) / args.batch)
    print(f"per execution in a batch of {args.batch}, {args.rounds} rounds each (interleaved; median):")
    for (name, workers), measured in rounds.items():
        sequential = statistics.median(rounds[(name, 1)]) if (name, 1) in rounds else None
        speedup = f"   x{sequential / statistics.median(measured):4.1f}" if sequential else ""
        print(f"  {name:32s} workers={workers}: {statistics.median(measured) * 1e3:6.1f} ms{speedup}")


if __name__ == "__main__":
    main()
