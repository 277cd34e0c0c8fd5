"""Which Ray node each actor runs on, recorded in the run directory, and what to say when one is lost.

Every actor of a run reports where it runs (:func:`here`); the driver appends one line per
actor to the run's placement log (``RunOutputs.placement``) when the run starts, and a trainer rank appends one
when a generator actor comes back after dying (possibly on another node). Each line:
``{"run_id", "event": "started"|"restarted", "actor", "node_id", "ip", "resources", "host", "pid",
"time"}``;
``run_id`` tells the attempts of a resumed run apart.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

def here() -> dict[str, Any]:
    """Where the calling actor runs: Ray node id, node IP address, the node's custom
    resources (what ``cluster.*.resources`` steer by), host name and process id."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    entry = next((n for n in ray.nodes() if n["NodeID"] == node_id), {})
    return {"node_id": node_id, "ip": ray.util.get_node_ip_address(), "resources": custom(entry.get("Resources", {})),
            "host": socket.gethostname(), "pid": os.getpid()}


def custom(resources: dict[str, float]) -> dict[str, float]:
    """A node's resources other than Ray's own (CPUs, GPUs, memory, the per-node markers)."""
    return {k: v for k, v in sorted(resources.items())
            if k not in ("CPU", "GPU", "memory", "object_store_memory") and not k.startswith("node:")}


def record(log: Path, run_id: str, event: str, actor: str, where: dict[str, Any]) -> None:
    """Append one placement line (a single small write: lines from several ranks do not interleave)."""
    line = json.dumps({"run_id": run_id, "event": event, "actor": actor, **where, "time": time.time()})
    with open(log, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def read(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]


def describe(place: dict[str, Any]) -> str:
    """``node 3b9e9df3 (10.0.0.2, node_b=1)``: a :func:`here` record's node, short id first."""
    details = [place["ip"], *(f"{k}={v:g}" for k, v in place.get("resources", {}).items())]
    return f"node {place['node_id'][:8]} ({', '.join(details)})"


def death(node_id: str) -> str | None:
    """Why the node left the cluster (``None`` while it is alive or unknown)."""
    import ray

    entry = next((n for n in ray.nodes() if n["NodeID"] == node_id), None)
    if entry is None or entry["Alive"]:
        return None
    return entry.get("DeathReasonMessage") or "it left the Ray cluster"


def infeasible(group_id: str) -> bool:
    """Whether Ray finds no live node for some bundle of placement group ``group_id`` (hex),
    e.g. the one whose node died, when no other node has its resources."""
    import ray
    from ray.util.placement_group import PlacementGroup, placement_group_table

    info = placement_group_table(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(group_id))))
    return bool(info) and info["state"] == "RESCHEDULING" and info["stats"]["scheduling_state"] == "INFEASIBLE"
