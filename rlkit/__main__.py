"""``python -m rlkit``: compose the config with Hydra, then build and run.

This is the only module that imports Hydra's entry point; everything below it receives
typed configs. torch is imported only once a run starts, so ``--help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Mapping

import hydra
from omegaconf import DictConfig, OmegaConf

from rlkit.config import register_with_hydra

register_with_hydra()


@hydra.main(config_path="pkg://rlkit.conf", config_name="config", version_base="1.3")
def run_job(cfg: DictConfig) -> float | None:
    from rlkit.cli import dispatch

    return objective(dispatch(cfg), cfg)


def main() -> None:
    """``python -m rlkit`` and the ``rlkit`` command: Hydra's command line, where ``algo=...``
    without ``pipeline=...`` asks for one run of that algorithm (see :func:`single_run`)."""
    from rlkit.cli import demo_inputs_error, single_run

    error = demo_inputs_error(sys.argv[1:])
    if error:
        sys.exit(f"error: {error}")
    sys.argv[1:] = single_run(sys.argv[1:])
    run_job()


def objective(metrics: Mapping[str, float], cfg: DictConfig) -> float | None:
    """What the job returns to Hydra's sweeper (Optuna optimises it): the final value of
    ``sweep_summary.metric``, else of the first ``eval/*`` metric; None when there is none."""
    metric = OmegaConf.select(cfg, "sweep_summary.metric")
    if metric is None:
        metric = next((key for key in metrics if key.startswith("eval/")), None)
        return None if metric is None else float(metrics[metric])
    if metric not in metrics:
        raise KeyError(f"sweep_summary.metric={metric} is not a final metric of this run; "
                       f"it has: {', '.join(sorted(metrics)) or 'none'}")
    return float(metrics[metric])


if __name__ == "__main__":
    main()
