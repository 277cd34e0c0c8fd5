"""Where a training run's ranks run: this process, spawned local ranks, or Ray actors.

    train(cfg, run_dir)
      completed here before      -> its final metrics, nothing trained (unless trainer.max_steps
                                    was raised: then it continues from its last checkpoint)
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
from rlkit.config import RunConfig, typed_run_config
from rlkit.models.warm_start import warm_started
from rlkit.outputs import RunOutputs
from rlkit.run_lock import RunDirLock, held_by_parent, held_here, launched_rank
from rlkit.terminate import received, sigterm_raises


def train(cfg: DictConfig, run_dir: Path, reward=None) -> dict[str, float]:
    """Train the run configured by ``cfg`` in ``run_dir``; rank 0's final held-out metrics.
    ``reward``: a built reward used instead of the configured one (in this process only)."""
    from rlkit.hub import check_push

    run = typed_run_config(cfg)
    parts = resolve_components(run)  # every component config checked before anything starts
    check_push(run.hub)  # an upload that cannot happen fails now, not after training
    for logger in parts["loggers"].values():
        logger.cls.check(logger.config)  # e.g. an MLflow server that does not answer
    # The untrained built-in model -> its cached SFT, for algorithms that need a policy that
    # answers the task (built once, here, before any rank or actor exists).
    cfg = warm_started(cfg, run, parts["algo"].config)
    run = typed_run_config(cfg)
    cfg, backend = select_backend(cfg, parts["backend"], run)
    # One writer per run directory: the run's first process locks it before writing there
    # (``python -m rlkit`` already did, in a Hydra callback); ranks it starts inherit it.
    lock = None if held_by_parent(run_dir) or launched_rank() != 0 else RunDirLock(run_dir)
    if lock is not None:
        lock.acquire()
    try:
        if not held_here(run_dir):
            return _train(cfg, run_dir, run, backend, reward)
        outputs = RunOutputs(run_dir)
        try:
            with sigterm_raises():
                return _train(cfg, run_dir, run, backend, reward, outputs)
        except BaseException as exc:
            # Whatever ended the run -- an exception before or after the trainer started, a
            # launched rank's failure, SIGTERM -- status.json says so (the trainer's own,
            # more precise record of the first cause is kept).
            signal = received()  # a SIGTERM in library code may surface as another error
            cause = signal or exc
            outputs.mark_failed(f"{type(cause).__name__}: {cause}", keep_recorded_error=signal is None)
            raise
    finally:
        if lock is not None:
            lock.release()


def _train(cfg: DictConfig, run_dir: Path, run, backend, reward, outputs: RunOutputs | None = None) -> dict[str, float]:
    """:func:`train` once the run directory is this process's (``outputs``) or its parent's."""
    completed = RunOutputs(run_dir).completed()
    if completed is not None and completed.step >= run.trainer.max_steps:
        # Finished here before (a re-run sweep or pipeline): keep it, train nothing.
        print(f"{run_dir} already completed; not training again", flush=True)
        return completed.metrics
    if completed is not None:
        print(continuation(RunOutputs(run_dir), completed.step, run), flush=True)
    if outputs is not None:
        from rlkit.trainer.checkpoint import remove_partial

        # A fresh record (a stale failure's error must not survive into this attempt), and
        # no staging directories of a killed save.
        previous = outputs.status()
        outputs.write_status("running", previous.step if previous else 0)
        remove_partial(outputs.checkpoints)
        remove_partial(run_dir)
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


def continuation(outputs: RunOutputs, completed_steps: int, run: RunConfig) -> str:
    """The line saying where a completed run given more steps continues from."""
    from rlkit.trainer.checkpoint import CheckpointManager

    latest = CheckpointManager(outputs.checkpoints, run.trainer.keep_checkpoints).latest()
    start = f"its checkpoint {latest}" if latest is not None and run.trainer.resume else "step 0 (no checkpoint to resume)"
    return (f"{outputs.run_dir} completed {completed_steps} steps; trainer.max_steps={run.trainer.max_steps}: "
            f"continuing from {start}")
