"""A multi-node Ray cluster on one machine, as `ray start` builds one on many.

Each node is a `ray start` (the head with `--head`, the others with `--address`) with its
own logical CPUs, its own custom resources (so that actors can be steered onto it), its own
`--temp-dir` and its own process group: every process of a node (raylet, agents, its
workers) is in that group, so a node can be killed as a whole -- a crash, as when a machine
goes away -- and the teardown leaves nothing behind even when a test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rlkit.backends.distributed import free_port

#: A dead node is noticed after period x threshold (Ray's defaults: 3 s x 5).
HEALTH_CHECK = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4"}
#: Object store of each node: small, the runs move a few MB.
OBJECT_STORE_BYTES = 200 * 1024**2


@dataclass
class RayNode:
    name: str
    resources: dict[str, float]
    temp_dir: Path
    #: The `ray start` process's id, which is also its process group's.
    group: int = 0
    node_id: str = ""


@dataclass
class RayNodes:
    """A head and any number of worker nodes, all on this machine."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rlkit-mn-")))
    nodes: list[RayNode] = field(default_factory=list)
    address: str = ""
    #: Every process group started (a retried `ray start` leaves one behind).
    groups: list[int] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """What a process joining the cluster needs: no token auth, no other RAY_ADDRESS."""
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update(RAY_AUTH_MODE="disabled", OMP_NUM_THREADS="1", **HEALTH_CHECK)
        return env

    def start(self, *specs: tuple[str, float, dict[str, float]]) -> list[RayNode]:
        """Start nodes ``(name, logical CPUs, custom resources)``: the head first if there is
        none yet, the others side by side; return them once the cluster lists them all.

        Each node also offers one unit of a resource named ``name``, by which it is told apart.
        """
        started = []
        if not self.address:
            head_port = free_port()
            started.append(self._run_start(*specs[0], ["--head", f"--port={head_port}", "--include-dashboard=false",
                                                       f"--dashboard-port={free_port()}",
                                                       f"--ray-client-server-port={free_port()}"]))
            self.address = f"{self._head_ip()}:{head_port}"
            specs = specs[1:]
        launched = [self._launch(*spec, [f"--address={self.address}"]) for spec in specs]
        started += [self._finish(*item) for item in launched]
        alive = self._wait_for(started)
        for node in started:
            node.node_id = alive[node.name]
        return started

    def _run_start(self, name: str, num_cpus: float, resources: dict[str, float], extra: list[str]) -> RayNode:
        return self._finish(*self._launch(name, num_cpus, resources, extra))

    def _launch(self, name: str, num_cpus: float, resources: dict[str, float], extra: list[str]):
        resources = {name: 1, **resources}
        command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--disable-usage-stats", "--log-color=false",
                   f"--num-cpus={num_cpus}", "--num-gpus=0", f"--resources={json.dumps(resources)}",
                   f"--temp-dir={self.root / name}",  # short: Ray's socket paths have a length limit
                   f"--object-store-memory={OBJECT_STORE_BYTES}", f"--dashboard-agent-listen-port={free_port()}",
                   f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}", *extra]
        node = RayNode(name, resources, self.root / name)
        self.nodes.append(node)
        return node, command, self._spawn(node, command)

    def _spawn(self, node: RayNode, command: list[str]) -> subprocess.Popen:
        with (self.root / f"{node.name}.log").open("a") as out:
            # A session of its own: the node's processes share one process group.
            process = subprocess.Popen(command, env=self.env(), stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        node.group = process.pid
        self.groups.append(process.pid)
        return process

    def _finish(self, node: RayNode, command: list[str], process: subprocess.Popen) -> RayNode:
        """Wait for `ray start`; run again once if it gave up (it waits 30 s for its raylet to
        register, which a busy machine can exceed)."""
        for attempt in range(2):
            if process.wait(timeout=180) == 0:
                return node
            self.kill(node)
            if attempt == 0:
                process = self._spawn(node, command)
        raise RuntimeError(f"ray start for node {node.name} failed:\n"
                           f"{(self.root / f'{node.name}.log').read_text()[-3000:]}")

    def _head_ip(self) -> str:
        """The address the head bound to, as `ray start` printed it."""
        text = (self.root / f"{self.nodes[0].name}.log").read_text()
        return text.split("Local node IP: ", 1)[1].split()[0]

    def _wait_for(self, started: list[RayNode]) -> dict[str, str]:
        """Node name -> node id, once the cluster lists every one of ``started`` alive."""
        deadline = time.monotonic() + 120
        while True:
            alive = [entry for entry in self.list_nodes() if entry["Alive"]]
            found = {node.name: next((e["NodeID"] for e in alive if e["Resources"].get(node.name)), "")
                     for node in started}
            if all(found.values()):
                return found
            if time.monotonic() > deadline:
                raise RuntimeError(f"nodes {[n for n, i in found.items() if not i]} did not join {self.address}")
            time.sleep(0.5)

    def list_nodes(self) -> list[dict]:
        """`ray.nodes()`, asked from a short-lived process (the test process stays off Ray)."""
        script = ("import json, sys, ray; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False); "
                  "print('NODES=' + json.dumps(ray.nodes()))")
        out = subprocess.run([sys.executable, "-c", script, self.address], env=self.env(), capture_output=True,
                             text=True, timeout=120, check=False).stdout
        line = next((x for x in out.splitlines() if x.startswith("NODES=")), None)
        return json.loads(line[len("NODES="):]) if line else []

    def kill(self, node: RayNode) -> None:
        """Kill every process of the node at once (SIGKILL: a crash, nothing shuts down cleanly)."""
        try:
            os.killpg(node.group, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        """Kill every node (workers first), then remove their session files."""
        for group in reversed(self.groups):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(self.root, ignore_errors=True)

    def leftovers(self) -> list[int]:
        """Processes still running in any node's process group."""
        groups = set(self.groups)
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) in groups:
                        found.append(int(entry.name))
                except ProcessLookupError:
                    continue
        return found
