"""pytest fixtures for tests that need a real (local) Slurm cluster.

Enable them with ``pytest_plugins = ["tests.slurm_fixtures"]`` in ``tests/conftest.py``.

``slurm_cluster`` (session scope) starts one private cluster for the whole session (~1 s),
exports its environment (``SLURM_CONF``, and ``PATH`` with the cluster's ``sacct``
stand-in first) into ``os.environ`` so that sbatch, squeue, submitit, Hydra's submitit
launcher and any subprocess started with the inherited environment talk to it; restores
the environment and stops every daemon at the end. After each test that uses it, the
jobs it left are cancelled and the node waited for until idle (``slurm_jobs_cleared``).
Missing Slurm binaries are a failure, not a skip: run ``scripts/install_slurm.sh``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

try:
    from tests.slurm_cluster import (
        LocalSlurmCluster,
        SacctWarningFilter,
        SlurmNotInstalledError,
        find_slurm_binaries,
    )
except ModuleNotFoundError:  # tests/ itself on sys.path (pytest's prepend import mode)
    from slurm_cluster import (
        LocalSlurmCluster,
        SacctWarningFilter,
        SlurmNotInstalledError,
        find_slurm_binaries,
    )


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSlurmCluster]:
    try:
        find_slurm_binaries()
    except SlurmNotInstalledError as exc:
        pytest.fail(str(exc), pytrace=False)
    cluster = LocalSlurmCluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    saved = {key: os.environ.get(key) for key in cluster.env}
    os.environ.update(cluster.env)
    # No accounting here; the sacct stand-in on PATH answers submitit's polls. Should a
    # poll still fail, keep submitit's per-poll "Bypassing sacct error" warning quiet.
    sacct_filter = SacctWarningFilter()
    submitit_logger = logging.getLogger("submitit")
    submitit_logger.addFilter(sacct_filter)
    try:
        yield cluster
    finally:
        submitit_logger.removeFilter(sacct_filter)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        cluster.stop()


@pytest.fixture(autouse=True)
def slurm_jobs_cleared(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test on the session cluster, no job of it is left holding the node: one
    test's failure (or a job still exiting) must not make the next test's jobs wait."""
    yield
    if "slurm_cluster" in request.fixturenames:
        request.getfixturevalue("slurm_cluster").clear_jobs()
