"""The cluster config: composed and typed, and every bad combination named before Ray starts."""

from __future__ import annotations

import pytest

from rlkit.cluster.config import ClusterConfig, WorkerResources
from rlkit.cluster.driver import check_async
from rlkit.config import typed_run_config


def test_presets_compose_to_typed_configs(compose):
    split = typed_run_config(compose(["algo=grpo", "reward=math", "cluster=split", "cluster.generators=3"])).cluster
    assert split == ClusterConfig(placement="split", generators=3)
    colocated = typed_run_config(compose(["cluster=colocated", "cluster.trainer.gpus=1"])).cluster
    assert colocated.placement == "colocated" and colocated.num_generators(4) == 4
    assert colocated.trainer == WorkerResources(cpus=1, gpus=1)
    assert typed_run_config(compose([])).cluster is None


def test_node_resources_from_the_command_line(compose):
    cluster = typed_run_config(compose(["algo=grpo", "reward=math", "cluster=split", "cluster.trainer.resources={node_a: 1}",
                                        "cluster.generator.resources={node_b: 0.5}"])).cluster
    assert cluster.trainer.ray_resources() == {"CPU": 1, "node_a": 1}
    assert cluster.generator.ray_resources() == {"CPU": 1, "node_b": 0.5}


def test_misspelled_key_fails_while_composing(compose):
    with pytest.raises(Exception, match="generatorz"):
        compose(["cluster=split", "cluster.generatorz=2"])


@pytest.mark.parametrize("config, ranks, message", [
    (ClusterConfig(placement="spread"), 1, "cluster.placement: unknown 'spread'"),
    (ClusterConfig(generators=0), 1, "cluster.generators must be >= 1"),
    (ClusterConfig(placement="colocated", generators=3), 2, "one per rank"),
    (ClusterConfig(placement="colocated", generator=WorkerResources(gpus=1)), 1, "cluster.generator.gpus"),
    (ClusterConfig(placement="colocated", async_rollouts=True), 1, "needs cluster.placement=split"),
    (ClusterConfig(async_rollouts=True, max_staleness=0), 1, "cluster.max_staleness"),
    (ClusterConfig(max_restarts=-2), 1, "cluster.max_restarts"),
    (ClusterConfig(trainer=WorkerResources(cpus=-1)), 1, "cluster.trainer"),
    (ClusterConfig(generator=WorkerResources(resources={"node_b": -1})), 1, "cluster.generator.resources.node_b"),
    (ClusterConfig(generator=WorkerResources(resources={"node_b": "x"})), 1, "cluster.generator.resources.node_b"),
    (ClusterConfig(trainer=WorkerResources(resources={"GPU": 1})), 1, "set cluster.trainer.gpus instead"),
    (ClusterConfig(trainer=WorkerResources(resources=3)), 1, "cluster.trainer.resources must map"),
])
def test_bad_combinations_name_the_key(config, ranks, message):
    with pytest.raises(ValueError, match=message):
        config.validate(ranks)


def test_async_rollouts_need_an_off_policy_correction():
    from rlkit.algorithms.grpo import GRPO
    from rlkit.algorithms.sft import SFT

    asynchronous = ClusterConfig(async_rollouts=True)
    with pytest.raises(ValueError, match="algo.off_policy=ratio or algo.off_policy=tis"):
        check_async(asynchronous, "grpo", GRPO, GRPO.Config())
    with pytest.raises(ValueError, match="algo=sft cannot correct for: it has no off-policy correction"):
        check_async(asynchronous, "sft", SFT, SFT.Config())
    check_async(asynchronous, "grpo", GRPO, GRPO.Config(off_policy="tis"))
    check_async(ClusterConfig(), "sft", SFT, SFT.Config())


def test_ray_generator_is_not_a_command_line_choice(compose, tmp_path):
    from rlkit.cluster.ray_generator import RayGenerator
    from rlkit.launch import train

    with pytest.raises(ValueError, match="set up by cluster=split"):
        RayGenerator(RayGenerator.Config(), None, None)
    with pytest.raises(ValueError, match="choose the generator the actors host"):
        train(compose(["algo=grpo", "reward=math", "generator=ray", "cluster=split"]), tmp_path)
