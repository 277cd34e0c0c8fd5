"""rlkit's submitit launchers, where Hydra accepts launcher plugins.

Hydra instantiates a launcher only from a class defined under the ``hydra_plugins``
namespace package; the implementation lives in :mod:`rlkit.sweeps.submitit_launchers`.
``hydra/launcher=submitit_slurm`` and ``submitit_local`` (rlkit's presets) name these classes.
Without hydra-submitit-launcher (the ``slurm`` extra) this module defines nothing.
"""

try:
    from rlkit.sweeps import submitit_launchers as _launchers
except ImportError:  # no hydra-submitit-launcher: rlkit's presets report the missing extra
    _launchers = None

if _launchers is not None:

    class SlurmLauncher(_launchers.SlurmLauncher):
        __doc__ = _launchers.SlurmLauncher.__doc__

    class LocalLauncher(_launchers.LocalLauncher):
        __doc__ = _launchers.LocalLauncher.__doc__
