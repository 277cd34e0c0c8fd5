"""Per-sample cost of ``reward=math``: the arithmetic task's completions and MATH-style answers.

    python benchmarks/bench_math_verifier.py

Arithmetic completions (demonstrations of the built-in task, a share of them corrupted as a
tiny model's samples are) are decided by the numeric and string paths in-process; LaTeX
answers that are not plain numbers go to math-verify in the worker process. Prints the median
microseconds per sample of each, and how many arithmetic samples reached math-verify (0 keeps
the default pipeline, which scores thousands of completions per step, as fast as before).
"""

from __future__ import annotations

import random
import statistics
import time

from rlkit.data.arithmetic import ArithmeticConfig, ArithmeticTask
from rlkit.rewards import math as verifier_module
from rlkit.rewards.math import MathVerifier
from rlkit.types import Completion, PromptSample, SampleKind

LATEX = [("x=3", "3"), (r"\pi/2", r"\frac{\pi}{2}"), ("10^{3}", "1000"), (r"\{1,2\}", r"\{2,1\}"),
         (r"2\sqrt{3}", r"\sqrt{12}"), ("(x+1)^2", "x^2+2x+1"), ("[1,3]", "[1,3)"), ("3+2i", "3-2i")]


def completion(text: str) -> Completion:
    return Completion(prompt_index=0, token_ids=[0], text=text, logprobs=[0.0], truncated=False)


def per_sample_us(verifier: MathVerifier, samples, completions, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        verifier(samples, completions)
        times.append((time.perf_counter() - start) / len(completions) * 1e6)
    return statistics.median(times)


def main() -> None:
    rng = random.Random(0)
    task = ArithmeticTask(ArithmeticConfig(worked_fraction=0.5))
    demos = task.load("train", SampleKind.SFT)[:4096]
    prompts = task.load("train", SampleKind.PROMPT)[:4096]

    def sampled(text: str) -> str:  # right, a wrong digit, cut short, or noise
        r = rng.random()
        if r < 0.3:
            return text
        if r < 0.6:
            return text[:-1] + str(rng.randint(0, 9))
        if r < 0.8:
            return text[: rng.randint(0, len(text))]
        return "".join(rng.choice("0123456789+= so") for _ in range(rng.randint(1, 30)))

    completions = [completion(sampled(d.completion)) for d in demos]
    verifier = MathVerifier(MathVerifier.Config())
    symbolic_calls = 0
    original = verifier_module.symbolically_equal

    def counted(*args, **kwargs):
        nonlocal symbolic_calls
        symbolic_calls += 1
        return original(*args, **kwargs)

    verifier_module.symbolically_equal = counted
    arithmetic = per_sample_us(verifier, prompts, completions, repeats=5)
    print(f"arithmetic: {arithmetic:.1f} us/sample over {len(completions)} completions; "
          f"{symbolic_calls} reached math-verify")
    latex_samples = [PromptSample(prompt="q", answer=ref) for _, ref in LATEX]
    latex_completions = [completion(rf"so $\boxed{{{pred}}}$") for pred, _ in LATEX]
    verifier(latex_samples[:1], latex_completions[:1])  # start the worker (sympy import) untimed
    latex = per_sample_us(verifier, latex_samples, latex_completions, repeats=5)
    print(f"LaTeX answers (math-verify): {latex / 1000:.1f} ms/sample over {len(LATEX)} pairs")


if __name__ == "__main__":
    main()
