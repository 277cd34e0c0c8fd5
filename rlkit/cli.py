"""What ``python -m rlkit`` does with a composed config: a pipeline of stages, or one run.

``algo=...`` on the command line without ``pipeline=...`` asks for one run of that
algorithm, so the default pipeline (SFT -> GRPO -> evaluation) never swallows it.
"""

from __future__ import annotations

from pathlib import Path

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
