"""The trainer group: N Ray actors, one per rank, each running the ordinary ``train_rank``.

Each actor gets the torch.distributed environment rlkit's own launcher sets (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` on rank 0's node, a free port there), so every backend
(``single``, ``ddp``, ``fsdp2``) runs unchanged: ``train_rank`` sees a launched rank and joins
the process group. Ray gives each actor its own devices (``CUDA_VISIBLE_DEVICES``), hence
``LOCAL_RANK=0`` in every actor.

Trainer actors are never restarted: a rank that dies takes its part of the model and
optimizer state with it. The run ends instead -- the other ranks are stopped, the run's
``status.json`` says which rank failed and why -- and running the same command again
resumes from the last (atomically written) checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from rlkit.backends.launch import RankFailed


class TrainerWorker:
    """One trainer rank."""

    def __init__(self, threads: int, cwd: str):
        import torch

        if os.path.isdir(cwd):  # relative paths in the config mean what they mean for the driver
            os.chdir(cwd)
        torch.set_num_threads(threads)
        import rlkit.models.loading  # noqa: F401 -- the heavy imports, while the generators start too

    def ready(self) -> bool:
        return True

    def node(self) -> dict[str, Any]:
        from rlkit.cluster.nodes import here

        return here()

    def rendezvous(self) -> tuple[str, int]:
        """This node's address and a free port on it, for the process group's master."""
        from rlkit.backends.distributed import free_port

        return ray.util.get_node_ip_address(), free_port()

    def train(self, container: dict, run_dir: str, env: dict[str, str]) -> dict[str, float]:
        from omegaconf import OmegaConf

        from rlkit.rank import train_rank

        os.environ.update(env)
        return train_rank(OmegaConf.create(container), Path(run_dir))


def rank_env(rank: int, world_size: int, master: tuple[str, int]) -> dict[str, str]:
    return {"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
            "MASTER_ADDR": master[0], "MASTER_PORT": str(master[1])}


def run_trainers(actors: list[Any], container: dict, run_dir: Path) -> Any:
    """``train_rank`` on every rank; rank 0's result. Raises :class:`RankFailed` for the first
    rank that raises or dies, after stopping the others (which would wait for it forever
    in their next collective)."""
    master = ray.get(actors[0].rendezvous.remote())
    world = len(actors)
    futures = [actor.train.remote(container, str(run_dir), rank_env(rank, world, master))
               for rank, actor in enumerate(actors)]
    pending = list(futures)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        try:
            ray.get(done[0])
        except (RayTaskError, RayActorError) as exc:
            rank = futures.index(done[0])
            for actor in actors:
                ray.kill(actor, no_restart=True)
            raise RankFailed(rank, world, failure_detail(exc)) from None
    return ray.get(futures[0])


def failure_detail(exc: Exception) -> str:
    """The rank's traceback when it raised; what Ray knows when its process died."""
    if isinstance(exc, RayTaskError):
        return str(exc)
    return f"the trainer actor died: {exc}"
