"""Will a Slurm job ever start? Its request against what the partition offers.

``check_request`` compares what hydra-submitit-launcher will ask for (nodes, tasks per node x
CPUs per task, memory and GPUs per node, time) with the partition's limits and its nodes
(``scontrol show partition`` / ``scontrol show node``) and returns one line naming the
``hydra.launcher.<key>=<value>`` to set when no node could ever run the job. Slurm itself
accepts such a job and leaves it pending forever (reason ``PartitionConfig``), or rejects
it with "Requested node configuration is not available".

``hopeless_reason`` tells the reasons a pending job waits for that never clear by
themselves (a partition or account limit), so that the launcher can report them instead of
waiting forever.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Partition",
    "Request",
    "check_request",
    "describe_request",
    "hopeless_reason",
    "parse_slurm_minutes",
    "query_partition",
]


@dataclass(frozen=True)
class Request:
    """What one job of an array asks for (hydra-submitit-launcher's keys)."""

    nodes: int = 1
    tasks_per_node: int = 1
    cpus_per_task: int | None = None
    mem_gb: int | None = None  # per node
    gpus_per_node: int | None = None
    timeout_min: int | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Request:
        def number(key: str) -> int | None:
            value = params.get(key)
            return None if value is None else int(value)

        return cls(
            nodes=number("nodes") or 1,
            tasks_per_node=number("tasks_per_node") or 1,
            cpus_per_task=number("cpus_per_task"),
            mem_gb=number("mem_gb"),
            gpus_per_node=number("gpus_per_node"),
            timeout_min=number("timeout_min"),
        )

    @property
    def cpus_per_node(self) -> int:
        return (self.cpus_per_task or 1) * self.tasks_per_node


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    mem_mb: int  # what jobs may use: RealMemory - MemSpecLimit
    gpus: int
    usable: bool  # not DOWN, DRAINED, FAIL or FUTURE


@dataclass(frozen=True)
class Partition:
    name: str
    nodes: tuple[Node, ...]
    max_time_min: int | None  # None: unlimited
    max_nodes: int | None
    max_cpus_per_node: int | None
    max_mem_per_node_mb: int | None


def _fields(line: str) -> dict[str, str]:
    """``Key=Value`` pairs of one line of ``scontrol show ... -o`` (values without spaces)."""
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))


def _limit(value: str | None) -> int | None:
    if value is None or value.upper() in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    return int(value) if value.isdigit() else None


def parse_slurm_minutes(value: str | None) -> int | None:
    """Slurm's time syntax (``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``) in
    whole minutes; None for UNLIMITED/INFINITE."""
    if value is None or value.upper() in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    days, _, clock = value.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if days:
        hours, minutes, seconds = (parts + [0, 0])[:3]
        return int(days) * 1440 + hours * 60 + minutes + (seconds > 0)
    if len(parts) == 3:
        return parts[0] * 60 + parts[1] + (parts[2] > 0)
    if len(parts) == 2:
        return parts[0] + (parts[1] > 0)
    return parts[0]


def _gpus(gres: str) -> int:
    """GPUs in a node's ``Gres`` (``gpu:4``, ``gpu:a100:4(S:0-1)``, ``gpu:2,shard:8``)."""
    total = 0
    for item in gres.split(","):
        parts = re.sub(r"\(.*?\)", "", item).split(":")
        if parts[0] == "gpu" and len(parts) > 1 and parts[-1].isdigit():
            total += int(parts[-1])
    return total


_UNUSABLE = re.compile(r"DOWN|DRAIN|FAIL|FUTURE|NOT_RESPONDING|INVAL", re.IGNORECASE)


def _scontrol(*args: str) -> str:
    return subprocess.run(
        ["scontrol", *args], capture_output=True, text=True, timeout=30, check=True
    ).stdout


def query_partition(name: str | None) -> Partition | None | list[str]:
    """The partition ``name`` (None: the cluster's default) from ``scontrol``.

    Returns the list of existing partition names when ``name`` is not one of them, and None
    when Slurm cannot be asked here (no ``scontrol``, or it fails).
    """
    if shutil.which("scontrol") is None:
        return None
    try:
        partitions = [_fields(line) for line in _scontrol("show", "partition", "-o").splitlines() if line.strip()]
        node_lines = _scontrol("show", "node", "-o").splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    chosen = next(
        (p for p in partitions if (p.get("PartitionName") == name if name else p.get("Default") == "YES")),
        None,
    )
    if chosen is None:
        return [p["PartitionName"] for p in partitions if "PartitionName" in p]
    nodes = []
    for line in node_lines:
        node = _fields(line)
        if chosen["PartitionName"] not in node.get("Partitions", "").split(","):
            continue
        cpus = int(node.get("CPUEfctv") or node.get("CPUTot") or 0)
        mem = int(node.get("RealMemory") or 0) - int(node.get("MemSpecLimit") or 0)
        nodes.append(
            Node(
                name=node.get("NodeName", "?"),
                cpus=cpus,
                mem_mb=mem,
                gpus=_gpus(node.get("Gres", "")),
                usable=not _UNUSABLE.search(node.get("State", "")),
            )
        )
    return Partition(
        name=chosen["PartitionName"],
        nodes=tuple(nodes),
        max_time_min=parse_slurm_minutes(chosen.get("MaxTime")),
        max_nodes=_limit(chosen.get("MaxNodes")),
        max_cpus_per_node=_limit(chosen.get("MaxCPUsPerNode")),
        max_mem_per_node_mb=_limit(chosen.get("MaxMemPerNode")),
    )


def check_request(
    request: Request, partition: Partition, what: str = "the job", in_service_only: bool = False
) -> str | None:
    """None when ``request`` fits ``partition`` some day, else one line saying what to set.

    Nodes that are down or drained count (they may come back), unless ``in_service_only``.
    """
    fixes: list[str] = []
    facts: list[str] = []
    where = f"partition '{partition.name}'"
    nodes = [n for n in partition.nodes if n.usable or not in_service_only]
    if not nodes:
        state = " in service" if in_service_only else ""
        return f"{what} can never start: {where} has no node{state}"

    if partition.max_time_min is not None and (request.timeout_min or 0) > partition.max_time_min:
        facts.append(f"{request.timeout_min} min > the {partition.max_time_min} min limit")
        fixes.append(f"hydra.launcher.timeout_min={partition.max_time_min}")

    max_cpus = max(n.cpus for n in nodes)
    if partition.max_cpus_per_node is not None:
        max_cpus = min(max_cpus, partition.max_cpus_per_node)
    max_mem_mb = max(n.mem_mb for n in nodes)
    if partition.max_mem_per_node_mb is not None:
        max_mem_mb = min(max_mem_mb, partition.max_mem_per_node_mb)
    max_gpus = max(n.gpus for n in nodes)

    cpus = request.cpus_per_node
    if cpus > max_cpus:
        facts.append(
            f"{cpus} CPUs per node ({request.cpus_per_task or 1} per task x "
            f"{request.tasks_per_node} tasks) > {max_cpus}"
        )
        if request.tasks_per_node <= max_cpus:
            fixes.append(f"hydra.launcher.cpus_per_task={max_cpus // request.tasks_per_node}")
        else:
            fixes.append(f"backend.nproc_per_node={max_cpus} (tasks per node)")
    if request.mem_gb is not None and request.mem_gb * 1024 > max_mem_mb:
        facts.append(f"{request.mem_gb} GB per node > {max_mem_mb // 1024} GB")
        fixes.append(f"hydra.launcher.mem_gb={max_mem_mb // 1024}")
    if request.gpus_per_node and request.gpus_per_node > max_gpus:
        facts.append(f"{request.gpus_per_node} GPUs per node > {max_gpus}")
        fixes.append(
            f"hydra.launcher.gpus_per_node={max_gpus}" if max_gpus else "backend.device=cpu"
        )

    if not facts:
        fitting = [
            n for n in nodes
            if n.cpus >= cpus
            and (request.mem_gb is None or n.mem_mb >= request.mem_gb * 1024)
            and n.gpus >= (request.gpus_per_node or 0)
        ]
        limit = len(fitting) if partition.max_nodes is None else min(len(fitting), partition.max_nodes)
        if request.nodes > limit:
            facts.append(f"{request.nodes} nodes > the {limit} that fit")
            fixes.append(f"hydra.launcher.nodes={max(limit, 1)}")
    if not facts:
        return None
    return (
        f"{what} can never start on {where}: {'; '.join(facts)}. Set {' '.join(fixes)}"
    )


# Pending reasons that wait for a limit to change, not for resources to free up.
_HOPELESS = re.compile(
    r"^(PartitionConfig|PartitionNodeLimit|PartitionTimeLimit|BadConstraints|InvalidAccount"
    r"|InvalidQOS|AccountNotAllowed|QOSNotAllowed|DependencyNeverSatisfied|ReqNodeNotAvail"
    r"|(QOS|Assoc)Max\w*PerJob\w*)"
)


def hopeless_reason(reason: str) -> bool:
    """True for a pending reason that does not clear while the cluster runs other jobs."""
    return bool(_HOPELESS.match(reason.strip()))


def describe_request(request: Request) -> str:
    """``2 task(s) x 4 CPU(s), 32 GB, 1 node(s), 240 min`` (for messages)."""
    parts = [
        f"{request.tasks_per_node} task(s) x {request.cpus_per_task or 1} CPU(s)",
        *([f"{request.mem_gb} GB"] if request.mem_gb is not None else []),
        *([f"{request.gpus_per_node} GPU(s)"] if request.gpus_per_node else []),
        f"{request.nodes} node(s)",
        *([f"{request.timeout_min} min"] if request.timeout_min is not None else []),
    ]
    return ", ".join(parts)
