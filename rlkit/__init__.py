"""rlkit: post-training of language models (SFT, reward models, DPO, GRPO, PPO).

Importing the package is cheap on purpose: components import torch when they are built.
"""

__version__ = "0.1.0"
