"""The launcher's resource check: a request against what a Slurm partition offers.

The partitions here are built as ``query_partition`` builds them from ``scontrol`` (its
parsing runs against the real cluster in test_slurm_sweeps.py); the messages are the ones
a user reads when a sweep would never start.
"""

from __future__ import annotations

import pytest

from rlkit.sweeps.slurm_resources import (
    Node,
    Partition,
    Request,
    _fields,
    _gpus,
    check_request,
    hopeless_reason,
    parse_slurm_minutes,
)


def partition(*nodes: Node, max_time: int | None = None, max_nodes: int | None = None) -> Partition:
    return Partition("debug", tuple(nodes), max_time, max_nodes, None, None)


SMALL = Node("vm", cpus=2, mem_mb=24105, gpus=0, usable=True)
GPU = Node("g1", cpus=32, mem_mb=512_000, gpus=4, usable=True)


def test_the_default_request_on_a_two_cpu_node_names_the_keys():
    # rlkit's default: 4 CPUs per task, 8 GB per CPU
    request = Request(tasks_per_node=1, cpus_per_task=4, mem_gb=32, timeout_min=240)
    message = check_request(request, partition(SMALL), "job(s) 0,1")
    assert message == (
        "job(s) 0,1 can never start on partition 'debug': 4 CPUs per node (4 per task x 1 tasks) "
        "> 2; 32 GB per node > 23 GB. Set hydra.launcher.cpus_per_task=2 hydra.launcher.mem_gb=23"
    )
    assert "\n" not in message
    # what the message says fits
    assert check_request(Request(cpus_per_task=2, mem_gb=23), partition(SMALL)) is None


@pytest.mark.parametrize(
    ("request_", "fix"),
    [
        (Request(tasks_per_node=2, cpus_per_task=2), "hydra.launcher.cpus_per_task=1"),
        (Request(tasks_per_node=4, cpus_per_task=1), "backend.nproc_per_node=2 (tasks per node)"),
        (Request(gpus_per_node=1), "backend.device=cpu"),
        (Request(nodes=2), "hydra.launcher.nodes=1"),
        (Request(timeout_min=120), "hydra.launcher.timeout_min=60"),
    ],
)
def test_each_limit_names_its_key(request_, fix):
    message = check_request(request_, partition(SMALL, max_time=60))
    assert message is not None and message.endswith(f"Set {fix}")


def test_gpus_and_nodes_are_counted_on_nodes_that_fit():
    part = partition(GPU, GPU, SMALL)
    assert check_request(Request(nodes=2, gpus_per_node=4, cpus_per_task=8, tasks_per_node=4), part) is None
    message = check_request(Request(nodes=3, gpus_per_node=4), part)
    assert message.endswith("3 nodes > the 2 that fit. Set hydra.launcher.nodes=2")
    message = check_request(Request(gpus_per_node=8), part)
    assert message.endswith("8 GPUs per node > 4. Set hydra.launcher.gpus_per_node=4")
    # a drained node may come back: the request can start some day, unless only nodes in
    # service count (a job pending on Resources while they are out)
    drained = Node("g1", cpus=32, mem_mb=512_000, gpus=4, usable=False)
    assert check_request(Request(gpus_per_node=4), partition(drained, SMALL)) is None
    message = check_request(Request(gpus_per_node=4), partition(drained, SMALL), in_service_only=True)
    assert message.endswith("4 GPUs per node > 0. Set backend.device=cpu")
    assert check_request(Request(), partition(drained), "it", in_service_only=True) == (
        "it can never start: partition 'debug' has no node in service"
    )


def test_scontrol_fields_and_times():
    line = (
        "NodeName=vm Arch=x86_64 CoresPerSocket=2  CPUAlloc=0 CPUEfctv=2 CPUTot=2 "
        "Gres=gpu:a100:4(S:0-1),shard:8 RealMemory=24105 State=IDLE+DRAIN Partitions=debug,gpu "
        "OS=Linux 6.18.44-fc-v857 #1 SMP"
    )
    fields = _fields(line)
    assert (fields["CPUTot"], fields["RealMemory"], fields["Partitions"]) == ("2", "24105", "debug,gpu")
    assert _gpus(fields["Gres"]) == 4 and _gpus("(null)") == 0 and _gpus("gpu:2,gpu:v100:1") == 3
    assert [parse_slurm_minutes(t) for t in ("UNLIMITED", "30", "1:30", "2:00:00", "1-00:00:00", "2-12")] == [
        None, 30, 2, 120, 1440, 3600,
    ]


def test_hopeless_pending_reasons():
    for reason in ("PartitionConfig", "PartitionTimeLimit", "ReqNodeNotAvail, UnavailableNodes:n1",
                   "QOSMaxCpuPerJobLimit", "AssocMaxWallDurationPerJobLimit", "BadConstraints"):
        assert hopeless_reason(reason), reason
    for reason in ("Resources", "Priority", "BeginTime", "None", "QOSMaxJobsPerUserLimit", "Dependency"):
        assert not hopeless_reason(reason), reason
