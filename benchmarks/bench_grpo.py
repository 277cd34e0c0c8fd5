"""GRPO completions/s on CPU and the split of a step between generation, reward and training.

    python benchmarks/bench_grpo.py                      # built-in tiny model, 20 steps
    python benchmarks/bench_grpo.py --hidden 256 --layers 4 --prompts 32 --group 8
    python benchmarks/bench_grpo.py --prompts 64 --max-new-tokens 32 --steps 4 --profile   # the default pipeline's step

A real run (``rlkit.launch.train``: generator, math-verifier reward, GRPO loss, optimizer) on
the arithmetic task; the figures are medians over the steps of its metrics.jsonl, the
first step (warm-up) left out. ``--profile`` also runs the steps under torch.profiler and
prints the operators that took the most CPU time, to find where a step's time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from bench_preference import run


def add_grpo_arguments(parser: argparse.ArgumentParser, steps: int) -> None:
    """The model and step-size options shared with bench_ray.py."""
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=16, help="prompts per step")
    parser.add_argument("--group", type=int, default=8, help="completions per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--profile", action="store_true", help="print the operators that take the most CPU time")


def grpo_overrides(args: argparse.Namespace) -> list[str]:
    """A GRPO run with the math verifier on the tiny model that ``args`` sizes."""
    return [
        "pipeline=none", "algo=grpo", "reward=math", "logger=[jsonl]", f"trainer.max_steps={args.steps}",
        "trainer.eval_every=0", "trainer.save_every=0", "trainer.eval_samples=8",
        f"trainer.batch_size={args.prompts}", f"trainer.micro_batch_size={args.prompts * args.group}",
        f"algo.group_size={args.group}", f"algo.sampling.max_new_tokens={args.max_new_tokens}",
        f"model.tiny.hidden_size={args.hidden}", f"model.tiny.intermediate_size={2 * args.hidden}",
        f"model.tiny.num_layers={args.layers}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grpo_arguments(parser, steps=20)
    args = parser.parse_args()
    overrides = grpo_overrides(args)
    with tempfile.TemporaryDirectory() as tmp, profiled(args.profile) as profile:
        steps = run(overrides, Path(tmp))[1:]

    def median(key: str) -> float:
        return statistics.median(r[key] for r in steps)

    step, generate, reward = median("time/step"), median("time/generate"), median("time/reward")
    train = median("time/train")
    completions = args.prompts * args.group
    print(f"model: hidden {args.hidden}, {args.layers} layers; {args.prompts} prompts x {args.group} completions per step")
    print(f"step             {step * 1000:8.1f} ms   {completions / step:7.1f} completions/s")
    print(f"completion       {median('completion/length'):8.2f} tokens (median of step means)")
    for name, seconds in (("generation", generate), ("reward", reward), ("training", train),
                          ("other", step - generate - reward - train)):
        print(f"  {name:<14} {seconds * 1000:8.1f} ms   {100 * seconds / step:5.1f}%")
    if profile is not None:
        # Whole run, evaluation and model loading included; the steps dominate it.
        print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


@contextlib.contextmanager
def profiled(enabled: bool) -> Iterator[torch.profiler.profile | None]:
    if not enabled:
        yield None
        return
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        yield profile


if __name__ == "__main__":
    main()
