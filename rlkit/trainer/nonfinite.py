"""The non-finite guard: a NaN or infinite loss or gradient norm never reaches the weights.

After the backward passes of an update and before its optimizer step, the trainer checks
the update's loss and every gradient norm (``trainer.on_nonfinite``):

* ``stop`` (default): the run fails at that step with :class:`NonFiniteError`, naming the
  step and the metric. The update is not applied, no checkpoint is written from that
  state and the earlier checkpoints are kept, so the run can be resumed with other
  settings (a lower ``trainer.lr``) from the last good one.
* ``skip``: the update's gradients are dropped and training goes on; the step's
  ``nonfinite/skipped`` metric counts the dropped updates.

The decision is the same on every rank: the flag is reduced over the data-parallel ranks
before anyone steps, so a NaN on one rank stops or skips all of them together.
"""

from __future__ import annotations

import math
from typing import Mapping

ON_NONFINITE = ("stop", "skip")


class NonFiniteError(FloatingPointError):
    """A non-finite loss or gradient norm; the update was not applied."""

    def __init__(self, step: int, metric: str, value: float):
        self.step, self.metric, self.value = step, metric, value
        super().__init__(
            f"non-finite {metric} ({value}) at step {step}: the update was not applied and no checkpoint "
            "was written from it (lower trainer.lr, or trainer.on_nonfinite=skip to drop such batches)"
        )


def first_nonfinite(values: Mapping[str, float]) -> tuple[str, float] | None:
    """The first ``(name, value)`` that is NaN or infinite, or None."""
    for name, value in values.items():
        if not math.isfinite(value):
            return name, value
    return None
