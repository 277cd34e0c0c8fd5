"""Every component's ``Config`` as the schema of its option in Hydra's ConfigStore.

For each name registered in an entry-point group (rlkit's built-ins and plugins alike) the
option ``<group>/<name>`` -- ``algo/grpo``, ``reward/brevity``, ``logger/jsonl`` -- is the
component's Config dataclass (plus ``name: <name>``; loggers are keyed by name instead).
Hydra therefore checks every key, type and Enum choice while it composes, before a run
directory or a sweep job exists, and every field is overridable without ``+``.

The options are *lazy*: listing them (``--help``) reads entry-point names only, and a
schema is imported the first time Hydra loads its option, so composing never imports an
unused plugin, and a broken or duplicated plugin fails -- with its package and cause --
only in the runs that choose it. A YAML preset extends an option through its defaults
list (``defaults: [grpo, _self_]``) and states only what it changes.

A config package (``rlkit.configs``) that cannot be imported would silently vanish from
Hydra's search path; each of its presets is registered here instead as an option that
raises the import error when chosen.
"""

from __future__ import annotations

from collections.abc import Callable

from hydra.core.config_store import ConfigNode, ConfigStore
from omegaconf import DictConfig, OmegaConf, open_dict

from rlkit.registry import CONFIG_GROUPS, Registry, RegistryError, config_packages

PROVIDER = "rlkit.config_store"


class LazyConfigNode(ConfigNode):
    """A ConfigStore entry whose node is made when Hydra first loads it.

    ``ConfigStore.load`` copies the entry and deep-copies ``node``, so the node is a
    property that builds (and keeps) it on first access.
    """

    def __init__(self, name: str, group: str, package: str | None, make: Callable[[], DictConfig]):
        self.name, self.group, self.package, self.provider = name, group, package, PROVIDER
        self._make = make
        self._node: DictConfig | None = None

    @property
    def node(self) -> DictConfig:  # type: ignore[override]
        if self._node is None:
            self._node = self._make()
        return self._node

    @node.setter
    def node(self, value: DictConfig) -> None:
        self._node = value


def _store(group: str, name: str, make: Callable[[], DictConfig], package: str | None = None) -> None:
    """``ConfigStore.store`` without building the node now (it builds it at once)."""
    repo = ConfigStore.instance().repo
    for part in group.split("/"):
        repo = repo.setdefault(part, {})
    repo[f"{name}.yaml"] = LazyConfigNode(f"{name}.yaml", group, package, make)


def schema_node(kind: str, name: str) -> DictConfig:
    """The option's node: the component's Config with its defaults, plus ``name``."""
    node = OmegaConf.structured(Registry(kind).schema(name))
    if kind != "loggers":  # loggers are keyed by name: logger.<name>
        with open_dict(node):
            node.name = name
    return node


def _raise(error: RegistryError) -> Callable[[], DictConfig]:
    def make() -> DictConfig:
        raise error

    return make


#: Options whose config package failed to import -> that failure.
_BROKEN_PRESETS: dict[tuple[str, str], RegistryError] = {}
KIND_OF_GROUP = {group: kind for kind, group in CONFIG_GROUPS.items()}


def register_component_schemas() -> None:
    for kind, group in CONFIG_GROUPS.items():
        for name in Registry(kind).names():
            package = f"logger.{name}" if kind == "loggers" else None
            _store(group, name, lambda kind=kind, name=name: schema_node(kind, name), package)
    for package in config_packages():
        failure = package.failure()
        if failure is None:
            continue
        for preset in package.presets:
            group, _, name = preset.rpartition("/")
            kind = KIND_OF_GROUP.get(group)
            if group and not (kind and name in Registry(kind).candidates):
                _store(group, name, _raise(failure))
                _BROKEN_PRESETS[group, name] = failure


def preset_failure(group: str, name: str) -> RegistryError | None:
    """Why ``group=name``, a preset of a config package that fails to import, cannot be used."""
    return _BROKEN_PRESETS.get((group, name))
