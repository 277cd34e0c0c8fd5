"""Connecting to the Ray cluster a run uses: an existing one, or a local one rlkit starts.

Three cases:

* this process is already connected (a notebook, a test, a script that called
  ``ray.init``): the run uses that connection and leaves it open;
* ``cluster.address`` (or else Ray's own ``RAY_ADDRESS``, as under ``ray job submit``)
  is set: connect to that cluster, disconnect at the end;
* otherwise start a local Ray sized for the run, and stop it (and remove its session
  files) at the end.

Actors get the environment that makes a run behave like the driver's: rlkit's, Hugging
Face's and the loggers' variables are forwarded explicitly, because the workers of an
existing cluster inherit the environment of ``ray start``, not of this process.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from rlkit.cluster.config import ClusterConfig

#: Environment variables of the driver that actors receive.
FORWARDED_PREFIXES = ("RLKIT_", "HF_", "TRANSFORMERS_", "TOKENIZERS_", "WANDB_")
#: One namespace for rlkit's named actors; names carry a per-run id.
NAMESPACE = "rlkit"


def forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIXES)}


def actor_env(cpus: float) -> dict[str, str]:
    """An actor's environment: the forwarded variables, and one thread per CPU it holds
    (torch's default of one thread per core oversubscribes a node shared by actors)."""
    return {**forwarded_env(), "OMP_NUM_THREADS": str(threads_for(cpus))}


def threads_for(cpus: float) -> int:
    return max(1, int(cpus))


@contextmanager
def ray_session(config: ClusterConfig, cpus_needed: float, gpus_needed: float) -> Iterator[None]:
    """Connected to Ray for the duration of the block (see the module docstring)."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError("cluster=... runs on Ray, which is not installed: pip install 'rlkit[ray]'") from exc

    if ray.is_initialized():
        yield
        return
    address = config.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=True)
        try:
            yield
        finally:
            ray.shutdown()
        return

    # A private local cluster: no token file in the user's home (RAY_AUTH_MODE), session
    # files in a short temporary path (Ray's socket paths have a length limit).
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    temp_dir = config.temp_dir or tempfile.mkdtemp(prefix="rlkit-ray-")
    num_cpus = config.num_cpus if config.num_cpus is not None else max(os.cpu_count() or 1, int(-(-cpus_needed // 1)))
    num_gpus = config.num_gpus
    if num_gpus is None and gpus_needed == 0:
        num_gpus = 0  # do not let Ray probe for GPUs a CPU run will not use
    ray.init(num_cpus=num_cpus, num_gpus=num_gpus, namespace=NAMESPACE, include_dashboard=False,
             _temp_dir=temp_dir, log_to_driver=True)
    try:
        yield
    finally:
        ray.shutdown()
        if config.temp_dir is None:
            shutil.rmtree(temp_dir, ignore_errors=True)
