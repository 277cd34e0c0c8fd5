"""DPO pairs/s (reference log-probs precomputed or on the fly) and SFT tokens/s on CPU.

    python benchmarks/bench_preference.py                       # 4M-parameter model, 3 rounds
    python benchmarks/bench_preference.py --hidden 512 --rounds 5 --threads 1

Every variant is a real run (``rlkit.launch.train`` on a composed config: the trainer loop,
the algorithm, the optimizer) of the built-in tiny model widened to ``--hidden`` with
``--layers`` layers, on the arithmetic task. Step times are the ``time/step`` records of
its metrics.jsonl (evaluation and saving are not in them). The train split holds
``--epoch-steps`` batches, so with precomputed reference log-probs the first epoch
computes them (``cold``) and later epochs only read them (``warm``); on-the-fly runs
recompute them every step. The machine's speed drifts over minutes, so the variants run
interleaved (A B C A B C ...) and the summary compares medians of each variant's per-round
medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path


def composed(overrides: list[str]):
    """The config ``python -m rlkit <overrides>`` would run with."""
    from hydra import compose, initialize_config_module

    from rlkit.config import register_with_hydra

    register_with_hydra()
    with initialize_config_module(config_module="rlkit.conf", version_base="1.3"):
        return compose("config", overrides=overrides)


def run(overrides: list[str], run_dir: Path) -> list[dict[str, float]]:
    """Train with ``overrides``; the per-step records of its metrics.jsonl."""
    from rlkit.loggers.jsonl import read_metrics
    from rlkit.launch import train

    train(composed(overrides), run_dir)
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if "time/step" in r]


def model_and_data_size(overrides: list[str], samples: int = 512) -> tuple[int, float]:
    """Parameters of the benchmark's model, and mean tokens per SFT sample of its data."""
    from rlkit.config import typed_run_config
    from rlkit.data.collate import tokenize
    from rlkit.models.loading import load_causal_lm, load_tokenizer
    from rlkit.build import resolve_components
    from rlkit.types import SampleKind

    config = typed_run_config(composed(overrides))
    tokenizer = load_tokenizer(config.model)
    train = resolve_components(config)["data"].build().load("train", SampleKind.SFT)[:samples]
    length = statistics.fmean(len(tokenize(tokenizer, s.prompt, s.completion, 256)) for s in train)
    return sum(p.numel() for p in load_causal_lm(config.model).parameters()), length


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32, help="pairs (DPO) or samples (SFT) per step")
    parser.add_argument("--epoch-steps", type=int, default=3, help="steps per pass over the train split")
    parser.add_argument("--steps", type=int, default=12, help="steps per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    common = [
        f"model.tiny.hidden_size={args.hidden}", f"model.tiny.intermediate_size={4 * args.hidden}",
        f"model.tiny.num_layers={args.layers}", f"trainer.max_steps={args.steps}",
        f"trainer.batch_size={args.batch}", f"trainer.micro_batch_size={args.batch}",
        f"trainer.eval_every={args.steps}", "trainer.save_every=0", "trainer.eval_samples=8",
        "trainer.lr=1e-4", "trainer.warmup_steps=0", "trainer.resume=false", "logger=[jsonl]",
        f"data.train_size={args.batch * args.epoch_steps}", "data.eval_size=8",
    ]
    variants = {
        "dpo precomputed": ["algo=dpo", "algo.precompute_ref=true"],
        "dpo on the fly": ["algo=dpo", "algo.precompute_ref=false"],
        "sft": ["algo=sft"],
    }
    # Per variant and round: median seconds per step in the first epoch and in later ones.
    cold: dict[str, list[float]] = {name: [] for name in variants}
    warm: dict[str, list[float]] = {name: [] for name in variants}
    target_tokens: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name, overrides in variants.items():
                records = run(common + overrides, Path(tmp) / f"{name.replace(' ', '_')}-{round_}")
                # Step 1 also pays for one-time allocations; leave it out of the first epoch.
                cold[name].append(statistics.median(r["time/step"] for r in records[1 : args.epoch_steps]))
                warm[name].append(statistics.median(r["time/step"] for r in records[args.epoch_steps :]))
                if name == "sft":
                    target_tokens += [r["tokens"] for r in records]
                print(f"round {round_ + 1}/{args.rounds} {name:16s} cold {cold[name][-1]:.3f} s/step, "
                      f"warm {warm[name][-1]:.3f} s/step", flush=True)

    parameters, sft_length = model_and_data_size(common + variants["sft"])
    median = {name: statistics.median(values) for name, values in warm.items()}
    summary = {
        "parameters": parameters,
        "threads": torch.get_num_threads(),
        "dpo_pairs_per_s_precomputed_warm": args.batch / median["dpo precomputed"],
        "dpo_pairs_per_s_precomputed_cold": args.batch / statistics.median(cold["dpo precomputed"]),
        "dpo_pairs_per_s_on_the_fly": args.batch / median["dpo on the fly"],
        "precomputed_warm_speedup": median["dpo on the fly"] / median["dpo precomputed"],
        "per_round_speedups": [f / p for f, p in zip(warm["dpo on the fly"], warm["dpo precomputed"])],
        "sft_samples_per_s": args.batch / median["sft"],
        "sft_tokens_per_s": args.batch * sft_length / median["sft"],
        "sft_completion_tokens_per_s": statistics.fmean(target_tokens) / median["sft"],
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
