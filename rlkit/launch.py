"""Where a training run's ranks run: this process, spawned local ranks, or Ray actors.

    train(cfg, run_dir)
      completed here before      -> its final metrics, nothing trained
      cfg.cluster set            -> rlkit.cluster.driver: ranks and generators as Ray actors
      backend.nproc_per_node > 1 -> rlkit.backends.launch: N local processes
      otherwise (or already one rank of torchrun / srun / submitit)
                                 -> rlkit.rank.train_rank in this process

Every path ends in :func:`rlkit.rank.train_rank`, once per rank; none of them calls back
into this module.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from rlkit.build import resolve_components, select_backend
from rlkit.config import typed_run_config
from rlkit.outputs import RunOutputs


def train(cfg: DictConfig, run_dir: Path, reward=None) -> dict[str, float]:
    """Train the run configured by ``cfg`` in ``run_dir``; rank 0's final held-out metrics.
    ``reward``: a built reward used instead of the configured one (in this process only)."""
    from rlkit.hub import check_push

    run = typed_run_config(cfg)
    parts = resolve_components(run)  # every component config checked before anything starts
    check_push(run.hub)  # an upload that cannot happen fails now, not after training
    for logger in parts["loggers"].values():
        logger.cls.check(logger.config)  # e.g. an MLflow server that does not answer
    cfg, backend = select_backend(cfg, parts["backend"], run)
    completed = RunOutputs(run_dir).completed()
    if completed is not None:
        # Finished here before (a re-run sweep or pipeline): keep it, train nothing.
        print(f"{run_dir} already completed; not training again", flush=True)
        return completed.metrics
    nproc = getattr(backend.config, "nproc_per_node", 1)
    if reward is not None and (run.cluster is not None or nproc > 1):
        raise ValueError("a reward function object runs in this process only: use backend.nproc_per_node=1 and no "
                         "cluster, or name an importable function with reward=callable reward.function=module:name")
    if run.cluster is not None:
        from rlkit.cluster.driver import train_on_cluster

        # Trainer ranks and generators become Ray actors; each rank runs train_rank with
        # no cluster and the generator actors behind generator=ray.
        return train_on_cluster(cfg, run_dir)
    from rlkit.backends.distributed import inside_launch

    if nproc > 1 and not inside_launch():
        from rlkit.backends.launch import launch_train

        return launch_train(cfg, run_dir, nproc)  # rank 0's result comes back
    from rlkit.rank import train_rank

    return train_rank(cfg, run_dir, reward=reward)
