"""An algorithm component: SimPO (Meng et al., 2024), a reference-free preference loss."""

import torch.nn.functional as F
from torch import Tensor

from rlkit.algorithms.preference import PairLogps, PreferenceAlgorithm
from rlkit_example.config import SimPOConfig


def simpo_loss(chosen: Tensor, rejected: Tensor, beta: float, gamma: float) -> tuple[Tensor, Tensor, Tensor]:
    """Per pair ``-log sigmoid(beta * (c - r) - gamma)`` with ``c``, ``r`` the mean token
    log-probabilities of the chosen and rejected completions; ``(losses, beta c, beta r)``."""
    chosen_rewards, rejected_rewards = beta * chosen, beta * rejected
    return -F.logsigmoid(chosen_rewards - rejected_rewards - gamma), chosen_rewards, rejected_rewards


class SimPO(PreferenceAlgorithm):
    Config = SimPOConfig
    uses_reference = False

    def pair_loss(self, logps: PairLogps) -> tuple[Tensor, Tensor, Tensor]:
        return simpo_loss(logps.chosen, logps.rejected, self.config.beta, self.config.gamma)
