"""rlkit's presets of hydra-submitit-launcher's ``submitit_slurm`` and ``submitit_local``.

``conf/hydra/launcher/submitit_slurm.yaml`` (and ``submitit_local.yaml``) shadow the
plugin's configs of the same name -- a YAML file on rlkit's search path comes before
Hydra's ConfigStore -- and extend them: their defaults list starts with rlkit's schema
(``submitit_slurm_schema``, ``submitit_local_schema``): the plugin's own, with rlkit's
launcher classes (:mod:`rlkit.sweeps.submitit_launchers`) as ``_target_`` and, for Slurm,
rlkit's keys ``check_resources`` and ``give_up_pending_s``. Every key keeps the plugin's type
checking and ``hydra.launcher.<key>=...`` works as documented by the plugin.
``hydra/launcher=submitit_slurm_base`` (and ``submitit_local_base``) is the plugin's config
and launcher untouched.

Resources follow the run's config through the resolvers registered here:

* ``rlkit.slurm_tasks``: Slurm tasks per node = the backend's processes per node
  (``backend.nproc_per_node``; ``single`` has none: 1; ``auto``'s 0, "one per GPU": 1 task
  that starts its own ranks);
* ``rlkit.slurm_gpus``: GPUs per node = one per task when the run asks for CUDA
  (``backend.device=cuda``), none otherwise;
* ``rlkit.slurm_mem_gb``: memory per node = ``GB_PER_CPU`` x CPUs per task x tasks.

This module is imported by ``rlkit.config.register_with_hydra`` (before Hydra composes the
config) and must stay light: no torch, no submitit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

try:  # the plugin's schemas (plain dataclasses; the plugin's launcher is not imported)
    from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf
except ImportError:  # rlkit without the `slurm` extra
    LocalQueueConf = SlurmQueueConf = None

__all__ = ["GB_PER_CPU", "register_launchers", "slurm_gpus", "slurm_mem_gb", "slurm_tasks"]

#: Memory per node asked for by default, per CPU of each task.
GB_PER_CPU = 8

MISSING_PLUGIN = (
    "hydra/launcher=submitit_slurm and submitit_local need hydra-submitit-launcher: "
    "pip install 'rlkit[slurm]'"
)


def _int_or_none(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.lower() in ("", "null", "none")):
        return None
    return int(value)


def slurm_tasks(nproc_per_node: Any) -> int:
    """Slurm tasks per node for a backend with ``nproc_per_node`` processes per node."""
    nproc = _int_or_none(nproc_per_node)
    return max(1, nproc or 1)


def slurm_gpus(device: Any, tasks_per_node: Any) -> int | None:
    """GPUs per node: one per task for ``cuda`` (or ``cuda:N``) devices, else none."""
    if str(device).lower().startswith("cuda"):
        return max(1, _int_or_none(tasks_per_node) or 1)
    return None


def slurm_mem_gb(cpus_per_task: Any, tasks_per_node: Any, gb_per_cpu: Any = GB_PER_CPU) -> int:
    """Memory per node in GB: ``gb_per_cpu`` for every CPU of every task (at least 1 CPU)."""
    cpus = _int_or_none(cpus_per_task) or 1
    tasks = _int_or_none(tasks_per_node) or 1
    return int(gb_per_cpu) * cpus * tasks


_RESOLVERS = {
    "rlkit.slurm_tasks": slurm_tasks,
    "rlkit.slurm_gpus": slurm_gpus,
    "rlkit.slurm_mem_gb": slurm_mem_gb,
}


if SlurmQueueConf is not None:

    @dataclass
    class SlurmSchema(SlurmQueueConf):
        """``hydra/launcher=submitit_slurm``: the plugin's keys and rlkit's."""

        _target_: str = "hydra_plugins.rlkit_submitit.rlkit_submitit.SlurmLauncher"
        #: Compare each job's request with the partition before submitting anything; a
        #: request no node can ever run stops the sweep with the key to change.
        check_resources: bool = True
        #: Seconds a job may stay pending for a reason that does not clear by itself
        #: (PartitionConfig, ReqNodeNotAvail...) before the sweep is cancelled; null: forever.
        give_up_pending_s: Optional[float] = 300.0  # noqa: UP007 - OmegaConf needs Optional

    @dataclass
    class LocalSchema(LocalQueueConf):
        """``hydra/launcher=submitit_local``: the plugin's keys, rlkit's launcher."""

        _target_: str = "hydra_plugins.rlkit_submitit.rlkit_submitit.LocalLauncher"

    _SCHEMAS: dict[str, Any] = {"slurm": SlurmSchema, "local": LocalSchema}
else:
    _SCHEMAS = {}


def register_launchers() -> None:
    """Register the resolvers and rlkit's schemas ``submitit_{slurm,local}_schema``; move the
    plugin's configs to ``submitit_{slurm,local}_base``.

    rlkit's YAML files take the plugin's names. Were the plugin's structured configs left
    under the same names, Hydra would also match them to the files as schemas ("automatic
    schema matching", deprecated, with a warning on every run); the files name their base
    explicitly instead. Idempotent. Without hydra-submitit-launcher the bases are stand-ins
    (and the schemas) whose ``_target_`` is no launcher: choosing
    ``hydra/launcher=submitit_slurm`` then fails with :data:`MISSING_PLUGIN` in Hydra's message.
    """
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins
    from omegaconf import OmegaConf

    for name, fn in _RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)

    # The plugin registers its configs when Hydra's plugin scan imports it: scan first (once
    # per process), so that the scan cannot register them again after they have moved.
    Plugins.instance()
    store = ConfigStore.instance()
    group = store.repo.get("hydra", {}).get("launcher", {})
    for kind in ("slurm", "local"):
        base = f"submitit_{kind}_base"
        plugin_node = group.pop(f"submitit_{kind}.yaml", None)
        if plugin_node is not None:
            store.store(group="hydra/launcher", name=base, node=plugin_node.node, provider=plugin_node.provider)
        elif f"{base}.yaml" not in group:
            store.store(group="hydra/launcher", name=base, provider="rlkit",
                        node={"_target_": f"hydra_plugins.MISSING: {MISSING_PLUGIN}"})
        schema = _SCHEMAS.get(kind, {"_target_": f"hydra_plugins.MISSING: {MISSING_PLUGIN}"})
        store.store(group="hydra/launcher", name=f"submitit_{kind}_schema", node=schema, provider="rlkit")
    if _SCHEMAS:
        # Hydra's plugin scan misses modules of editable installs (import hooks); register
        # rlkit's launcher classes by hand (under their hydra_plugins names) as well.
        from hydra.plugins.launcher import Launcher

        from hydra_plugins.rlkit_submitit import rlkit_submitit

        known = {cls.__name__ for cls in Plugins.instance().discover(Launcher)
                 if cls.__module__ == rlkit_submitit.__name__}
        for cls in (rlkit_submitit.SlurmLauncher, rlkit_submitit.LocalLauncher):
            if cls.__name__ not in known:
                Plugins.instance().register(cls)
