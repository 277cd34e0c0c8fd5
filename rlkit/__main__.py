"""``python -m rlkit``: compose the config with Hydra, then build and run.

This is the only module that imports Hydra's entry point; everything below it receives
typed configs. torch is imported only once a run starts, so ``--help`` stays fast.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from rlkit.config import register_with_hydra

register_with_hydra()


@hydra.main(config_path="pkg://rlkit.conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from rlkit.cli import dispatch

    return dispatch(cfg)


if __name__ == "__main__":
    main()
