"""rlkit: post-training of language models (SFT, reward models, DPO, GRPO, PPO).

Importing the package is cheap on purpose: components import torch when they are built,
and the Python API (``rlkit.compose``, ``rlkit.train``, see :mod:`rlkit.api`) loads on
first use.
"""

__version__ = "0.1.0"
__all__ = ["compose", "train"]


def __getattr__(name: str):
    if name in __all__:
        from rlkit import api

        return getattr(api, name)
    raise AttributeError(f"module 'rlkit' has no attribute {name!r}")
