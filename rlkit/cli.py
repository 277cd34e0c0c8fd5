"""What ``python -m rlkit`` does with a composed config: a pipeline of stages, or one run.

``algo=...`` on the command line without ``pipeline=...`` asks for one run of that
algorithm, so the default pipeline (SFT -> GRPO -> evaluation) never swallows it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig

from rlkit.config import typed_run_config


def dispatch(cfg: DictConfig) -> dict[str, float]:
    """Run the Hydra job ``cfg`` in its output directory; the final metrics."""
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig

    from rlkit.launch import train
    from rlkit.pipeline import plot_pipeline, run_pipeline, summary

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    chosen = {o.split("=", 1)[0].lstrip("+~") for o in hydra_cfg.overrides.task}
    stages = typed_run_config(cfg).stages
    if not stages or ("algo" in chosen and "pipeline" not in chosen):
        return train(cfg, run_dir)
    command_line = [o for o in hydra_cfg.overrides.task if not o.startswith(("pipeline=", "hydra."))]
    # Each stage is one plain run: compose it without the pipeline.
    results = run_pipeline(stages, run_dir, command_line,
                           lambda overrides: compose("config", overrides=["pipeline=none", *overrides]))
    print(summary(results))
    print(f"plot: {plot_pipeline(results, run_dir / 'pipeline.png')}", flush=True)
    return results[-1].metrics


def demo_inputs_error(args: Sequence[str]) -> str | None:
    """The default pipeline is a demo of the built-in model on the built-in task (its stages
    set arithmetic-only keys such as ``data.worked_fraction``): a command line that names
    another model or data but no algorithm, pipeline or recipe gets this one-line error."""
    keys = {re.sub(r"^[+~]*", "", a).split("=", 1)[0]: a.split("=", 1)[-1] for a in args if "=" in a}
    if {"algo", "pipeline", "recipe"} & keys.keys() or {"--help", "-h", "--hydra-help"} & set(args):
        return None
    named = [f"{k}={v}" for k, v in keys.items()
             if k in ("model", "model.name_or_path", "model.tokenizer") or (k == "data" and v != "arithmetic")]
    if not named:
        return None
    return (f"{' '.join(named)} without an algorithm: the default pipeline is a demo of the built-in tiny model on "
            "the arithmetic task; add algo=sft|dpo|rm|grpo|ppo to train on them (or pipeline=<name> to run a pipeline)")


def single_run(args: Sequence[str]) -> list[str]:
    """``args`` plus ``pipeline=none`` when they choose an ``algo`` but no pipeline, so that
    the composed config (``--cfg job``, ``.hydra/config.yaml``, trackers' params) is the one
    run's, without the default pipeline's stages."""
    args = list(args)
    algo = next((i for i, a in enumerate(args) if a.startswith("algo=")), None)
    if algo is not None and not any(re.match(r"[+~]*pipeline=", a) for a in args):
        args.insert(algo + 1, "pipeline=none")  # next to an override: argparse wants them together
    return args
