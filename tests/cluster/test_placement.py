"""Bundles of a run's placement group, custom node resources included, and a reservation that
cannot be met failing at once with what is missing."""

from __future__ import annotations

import pytest

from rlkit.cluster.config import ClusterConfig, WorkerResources
from rlkit.cluster.placement import bundles, reserve, totals


def test_custom_resources_go_into_every_bundle_of_their_actors():
    split = ClusterConfig(generators=2, trainer=WorkerResources(cpus=2, resources={"node_a": 1}),
                          generator=WorkerResources(gpus=1, resources={"node_b": 0.5}))
    assert bundles(split, trainer_ranks=1) == [{"CPU": 2, "node_a": 1},
                                               {"CPU": 1, "GPU": 1, "node_b": 0.5}, {"CPU": 1, "GPU": 1, "node_b": 0.5}]
    assert totals(split, 1) == (4, 2)
    # Colocated: one bundle per rank holds the rank and its generator.
    colocated = ClusterConfig(placement="colocated", trainer=WorkerResources(gpus=1, resources={"node_a": 1}),
                              generator=WorkerResources(resources={"node_a": 1, "x": 2}))
    assert bundles(colocated, trainer_ranks=2) == [{"CPU": 2, "GPU": 1, "node_a": 2, "x": 2}] * 2


@pytest.mark.ray
def test_a_resource_no_node_offers_fails_naming_it(ray_cluster):
    config = ClusterConfig(generators=1, generator=WorkerResources(resources={"gpu_node": 1}))
    with pytest.raises(RuntimeError, match="the Ray cluster has 0 gpu_node"):
        reserve(config, trainer_ranks=1)
