"""SFT step time with samples grouped by length (``trainer.micro_batch_tokens``) or not.

    python benchmarks/bench_length_grouping.py                      # the default pipeline's SFT data, 3 rounds
    python benchmarks/bench_length_grouping.py --budgets 0 1024 --rounds 5

Each variant is a real run (``rlkit.launch.train``) of the default pipeline's SFT stage
settings (the built-in tiny model from scratch, 2-digit arithmetic with half the answers
worked out: samples of 13-38 tokens, 128 per step in one micro-batch) with
``trainer.micro_batch_tokens`` set to each budget (0: one right-padded micro-batch).
Step times are the ``time/step`` records of its metrics.jsonl; the variants run
interleaved (A B C A B C ...) since the machine's speed drifts over minutes, and the summary
gives the median of each variant's per-round medians and its speed-up over budget 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from bench_preference import run  # noqa: E402  (a sibling script: benchmarks/ is sys.path[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", type=int, nargs="+", default=[0, 1024, 1536, 2048])
    parser.add_argument("--steps", type=int, default=30, help="steps per run (the first is left out)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    common = [
        "algo=sft", "model.warm_start=false", "data.worked_fraction=0.5", f"trainer.max_steps={args.steps}",
        "trainer.batch_size=128", "trainer.micro_batch_size=128", f"trainer.eval_every={args.steps}",
        "trainer.save_every=0", "trainer.eval_samples=8", "trainer.eval_max_new_tokens=4",
        "trainer.resume=false", "logger=[jsonl]",
    ]
    per_round: dict[int, list[float]] = {budget: [] for budget in args.budgets}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for budget in args.budgets:
                records = run(common + [f"trainer.micro_batch_tokens={budget}"], Path(tmp) / f"{budget}-{round_}")
                per_round[budget].append(statistics.median(r["time/step"] for r in records[1:]))
                print(f"round {round_ + 1}/{args.rounds} micro_batch_tokens={budget:5d}: "
                      f"{per_round[budget][-1] * 1000:.1f} ms/step", flush=True)
    median = {budget: statistics.median(times) for budget, times in per_round.items()}
    baseline = median.get(0)
    print(json.dumps({
        f"micro_batch_tokens={budget}": {
            "ms_per_step": round(seconds * 1000, 1),
            **({"speedup_over_0": round(baseline / seconds, 3)} if baseline else {}),
        }
        for budget, seconds in median.items()
    }, indent=2))


if __name__ == "__main__":
    main()
