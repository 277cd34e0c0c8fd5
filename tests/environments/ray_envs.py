"""A test environment that fails inside its Ray actor (tests/environments/test_ray_episodes.py);
a module of its own so that the actors import it by name."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from rlkit.environments.base import Environment, EnvironmentConfig, Turn


@dataclass
class CrashingConfig(EnvironmentConfig):
    #: raise: every episode's first step raises; exit: the first step of whichever actor
    #: creates ``marker`` first kills that actor's process.
    how: str = "raise"
    marker: str = ""


class Crashing(Environment):
    """Fails at an episode's first step, then answers ``turn <n>`` (n from the episode's state)."""

    Config = CrashingConfig

    def stop_strings(self) -> tuple[str, ...]:
        return ("</calc>",)

    def start(self, sample: Any) -> dict:
        return {"turn": 0}

    def step(self, state: dict, assistant_text: str) -> Turn:
        state["turn"] += 1
        if state["turn"] == 1 and self.config.how == "raise":
            raise RuntimeError("crashed on turn 1")
        if state["turn"] == 1 and self.config.how == "exit":
            try:
                open(self.config.marker, "x").close()
            except FileExistsError:
                pass
            else:
                os._exit(1)
        return Turn(observation=f"turn {state['turn']}")
