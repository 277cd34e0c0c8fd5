"""A reward function for the hung-reward fault: every fifth call never returns."""

from __future__ import annotations

import itertools
import threading

_calls = itertools.count(1)
_never = threading.Event()


def hangs_on_every_fifth_call(sample, completion) -> float:
    if next(_calls) % 5 == 0:
        _never.wait()  # hangs without using CPU; the thread dies with the process
    return float(len(completion.text))
