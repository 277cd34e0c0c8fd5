"""Multi-turn environments and tools (``env=``): the interface in :mod:`rlkit.environments.base`."""
