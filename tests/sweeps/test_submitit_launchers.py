"""rlkit's submitit launchers without a cluster: when an attempt may return a result."""

from __future__ import annotations

import pytest

pytest.importorskip("submitit")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

from submitit.core.utils import UncompletedJobError  # noqa: E402

from rlkit.sweeps.submitit_launchers import SlurmLauncher  # noqa: E402


def _raised_from(inner: BaseException) -> BaseException:
    """``inner`` wrapped as a library does it (transformers' lazy imports, for one)."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise ModuleNotFoundError("Could not import module 'LlamaForCausalLM'") from exc
    except ModuleNotFoundError as outer:
        return outer


@pytest.mark.parametrize(
    ("requeueing", "exc", "requeued"),
    [
        (True, SystemExit(-1), True),  # submitit's exit after `scontrol requeue`
        (True, _raised_from(SystemExit(-1)), True),  # the same, turned into an error on the way
        (True, UncompletedJobError("timed-out too many times"), False),  # max_num_timeout spent
        (True, _raised_from(UncompletedJobError("timed-out too many times")), False),
        (False, SystemExit(-1), False),  # no signal: an exit is the job's own
    ],
)
def test_an_attempt_ended_by_a_requeue_returns_no_result(requeueing, exc, requeued):
    """A result file would tell the launcher the job is over while Slurm runs it again: the
    launcher exits such an attempt without one, and records every other end."""
    launcher = SlurmLauncher.__new__(SlurmLauncher)
    launcher._requeueing = requeueing
    assert launcher._requeued_by(exc) is requeued
