"""Adds the config presets of installed rlkit plugins to Hydra's search path.

Hydra imports every module under the ``hydra_plugins`` namespace package at start-up but
knows nothing of entry points. A plugin distribution lists its config package in the
``rlkit.configs`` entry-point group, e.g. ``my_plugin = "my_plugin.conf"``, and the YAML
files in that package (``reward/my_reward.yaml``) become choices of rlkit's config groups.
A package that fails to import is left out here (Hydra would drop it silently); its presets
are options that raise the import error instead (rlkit.config_store).
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from rlkit.registry import config_packages

RLKIT_CONFIG_PACKAGE = "rlkit.conf"


class RlkitPluginConfigs(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        packages = sorted({p.package for p in config_packages() if p.import_error is None} - {RLKIT_CONFIG_PACKAGE})
        for package in packages:
            search_path.append(provider=f"rlkit-plugin:{package}", path=f"pkg://{package}")
