"""Adds the config presets of installed rlkit plugins to Hydra's search path.

Hydra imports every module under the ``hydra_plugins`` namespace package at start-up but
knows nothing of entry points. A plugin distribution lists its config package in the
``rlkit.configs`` entry-point group, e.g. ``my_plugin = "my_plugin.conf"``, and the YAML
files in that package (``reward/my_reward.yaml``) become choices of rlkit's config groups.
"""

from importlib.metadata import entry_points

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

RLKIT_CONFIG_PACKAGE = "rlkit.conf"


class RlkitPluginConfigs(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        packages = sorted({ep.value for ep in entry_points(group="rlkit.configs")})
        for package in packages:
            if package != RLKIT_CONFIG_PACKAGE:
                search_path.append(provider=f"rlkit-plugin:{package}", path=f"pkg://{package}")
