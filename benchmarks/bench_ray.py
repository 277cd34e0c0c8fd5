"""GRPO throughput on Ray (trainer and generator actors) against the single-process loop.

    python benchmarks/bench_ray.py                          # built-in tiny model, 2 generators
    python benchmarks/bench_ray.py --generators 1 --steps 20 --repeats 3

Real runs (``rlkit.launch.train``) on the arithmetic task with the math verifier: one process;
Ray with split placement (synchronous); Ray with asynchronous rollouts (one step stale,
truncated importance weights). Figures are medians over the steps of each run's
metrics.jsonl (first step left out), then over ``--repeats`` runs taken in turn (A B C A B
C ...), since this machine's speed drifts. Ray runs join one Ray session started here, so
its start-up (seconds) is not counted; the actors' start-up is reported apart.

``time/weight_sync`` is the trainer's cost per step of sending weights: gathering the full
state dict, one ``ray.put`` and, when synchronous, waiting until every generator has
loaded it. On a machine with fewer cores than actors the groups compete for the same
cores, so the Ray figures here show overheads, not the scaling a cluster gives.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench_grpo import add_grpo_arguments, grpo_overrides
from bench_preference import run


def timed_run(overrides: list[str], run_dir: Path) -> tuple[list[dict[str, float]], float]:
    """The per-step records of a run's metrics.jsonl and the run's wall time."""
    start = time.perf_counter()
    steps = run(overrides, run_dir)
    return steps, time.perf_counter() - start


def median_of(runs: list[tuple[list[dict[str, float]], float]], key: str) -> float | None:
    """Median over runs of each run's median over its steps (the first left out); None if not logged."""
    values = [statistics.median(r[key] for r in rows[1:]) for rows, _ in runs if key in rows[-1]]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grpo_arguments(parser, steps=12)
    parser.add_argument("--generators", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the single-process run (each Ray actor has one per CPU it holds)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    common = grpo_overrides(args)
    ray_common = [*common, "cluster=split", f"cluster.generators={args.generators}"]
    variants = {
        "one process": common,
        "ray": ray_common,
        "ray async": [*ray_common, "cluster.async_rollouts=true", "algo.off_policy=tis"],
    }

    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray_temp = tempfile.mkdtemp(prefix="rlkit-bench-")
    ray.init(num_cpus=max(os.cpu_count() or 1, 1 + args.generators), num_gpus=0, include_dashboard=False,
             _temp_dir=ray_temp, log_to_driver=False)
    results: dict[str, list[tuple[list[dict[str, float]], float]]] = {name: [] for name in variants}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for repeat in range(args.repeats):
                for name, overrides in variants.items():
                    results[name].append(timed_run(overrides, Path(tmp) / f"{name}-{repeat}".replace(" ", "_")))
    finally:
        ray.shutdown()
        shutil.rmtree(ray_temp, ignore_errors=True)

    completions = args.prompts * args.group
    print(f"model: hidden {args.hidden}, {args.layers} layers; {args.prompts} prompts x {args.group} completions "
          f"per step, {args.steps} steps; Ray: 1 trainer, {args.generators} generator(s); {os.cpu_count()} CPU cores; "
          f"{args.threads} thread(s) in the single process, 1 per actor")
    print(f"{'':<12} {'step ms':>8} {'compl./s':>9} {'steps/s':>8} {'generate ms':>12} {'sync ms':>8} "
          f"{'staleness':>9} {'run s':>6}")
    for name, runs in results.items():
        step = median_of(runs, "time/step")
        sync = median_of(runs, "time/weight_sync")
        stale = median_of(runs, "async/staleness")
        wall = statistics.median(w for _, w in runs)
        print(f"{name:<12} {step * 1e3:8.1f} {completions / step:9.1f} {1 / step:8.2f} "
              f"{median_of(runs, 'time/generate') * 1e3:12.1f} {'-' if sync is None else f'{sync * 1e3:.1f}':>8} "
              f"{'-' if stale is None else f'{stale:.2f}':>9} {wall:6.1f}")
    print("run s: whole run (Ray: actor start-up, model loading, evaluation and export included)")
    for name, runs in results.items():
        per_run = ", ".join(f"{statistics.median(r['time/step'] for r in rows[1:]) * 1e3:.1f}" for rows, _ in runs)
        print(f"step ms of each {name} run: {per_run}")


if __name__ == "__main__":
    main()
