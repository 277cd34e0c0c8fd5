"""GRPO on a Ray cluster of several nodes (raylets started with `ray start`, on this machine):
trainer and generators on different nodes, weights synced across them, and a node lost
mid-run -- its generator restarted on another node when one has room, otherwise the run
fails naming the node and the same command resumes it once a node is back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster.conftest import FORMAT_GRPO, step_rows
from tests.cluster.ray_nodes import RayNode, RayNodes

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def nodes():
    """One logical CPU each: the head (the trainer's node, `node_a`), two nodes that offer
    `generator_node` and one that alone offers `generator_host`."""
    cluster = RayNodes()
    try:
        cluster.start(("node_a", 1, {}))
        cluster.start(("node_b", 1, {"generator_node": 1}), ("node_c", 1, {"generator_node": 1}),
                      ("node_d", 1, {"generator_host": 1}))
        yield cluster
    finally:
        cluster.stop()
        assert not cluster.leftovers(), "Ray processes outlived the test cluster"


def command(cluster: RayNodes, run_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "rlkit", "pipeline=none", *FORMAT_GRPO, "cluster=split", "cluster.generators=1",
            f"cluster.address={cluster.address}", "cluster.trainer.resources={node_a: 1}",
            f"hydra.run.dir={run_dir}", *overrides]


def complete_lines(path: Path) -> list[str]:
    """The lines of a file another process appends to, without a last line still being written."""
    text = path.read_text() if path.exists() else ""
    return text[: text.rfind("\n") + 1].splitlines()


def placements(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in complete_lines(run_dir / "placement.jsonl")]


def steps_logged(run_dir: Path) -> int:
    return sum('"reward/mean"' in line for line in complete_lines(run_dir / "metrics.jsonl"))


def wait_for(condition, process: subprocess.Popen, log: Path, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the run ended before {what}:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(0.05)


def node_of(cluster: RayNodes, node_id: str) -> RayNode:
    return next(node for node in cluster.nodes if node.node_id == node_id)


def kill_generator_node(cluster: RayNodes, run_dir: Path, process: subprocess.Popen, log: Path,
                        ready) -> RayNode:
    """Once ``ready()``, kill every process of the node the run's generator runs on."""
    wait_for(lambda: any(p["actor"].endswith("-generator-0") for p in placements(run_dir)), process, log,
             "placement log")
    wait_for(ready, process, log, "kill point")
    generator = next(p for p in placements(run_dir) if p["actor"].endswith("-generator-0"))
    victim = node_of(cluster, generator["node_id"])
    cluster.kill(victim)
    return victim


def test_grpo_across_nodes_survives_losing_a_generator_node(nodes, tmp_path):
    """Trainer on the head, the generator on node_b or node_c; its node is killed after step 2
    and Ray restarts it on the other one, where it gets the current weights."""
    run_dir, log = tmp_path / "run", tmp_path / "run.log"
    steps = 6
    with log.open("w") as out:
        process = subprocess.Popen(
            command(nodes, run_dir, f"trainer.max_steps={steps}", "cluster.generator.resources={generator_node: 1}"),
            env=nodes.env(), stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            victim = kill_generator_node(nodes, run_dir, process, log, lambda: steps_logged(run_dir) >= 2)
            process.wait(timeout=300)
        finally:
            process.kill()
    output = log.read_text()
    assert process.returncode == 0, output[-4000:]
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"

    head, b, c = nodes.nodes[:3]
    started = {p["actor"].split("-", 1)[1]: p for p in placements(run_dir) if p["event"] == "started"}
    restarted = [p for p in placements(run_dir) if p["event"] == "restarted"]
    print("placement:", json.dumps(placements(run_dir), indent=1))
    assert started["trainer-0"]["node_id"] == head.node_id
    assert started["generator-0"]["node_id"] == victim.node_id in (b.node_id, c.node_id)
    survivor = c if victim is b else b
    assert [(p["actor"].split("-", 1)[1], p["node_id"]) for p in restarted] == [("generator-0", survivor.node_id)]
    assert f"restarted on node {survivor.node_id[:8]}" in output

    rows = step_rows(run_dir)
    assert [r["step"] for r in rows] == list(range(1, steps + 1))
    assert rows[-1]["generator/restarts"] == 1
    sync = [r["time/weight_sync"] for r in rows]
    print("weight sync per step (s):", [round(s, 4) for s in sync])
    assert all(s > 0 for s in sync)
    # Steps without a restart move the tiny model's weights between nodes in well under a second.
    assert sorted(sync)[len(sync) // 2] < 1.0
    # The generators on the other nodes sampled with the trainer's weights of every step,
    # the restarted one included: their log-probabilities are the trainer's.
    assert max(r["mismatch/logprob_abs_diff"] for r in rows) < 1e-4


def test_losing_the_only_generator_node_fails_the_run_and_the_rerun_resumes(nodes, tmp_path):
    """The generator pinned to node_d by `cluster.generator.resources={generator_host: 1}`, which
    only node_d offers: killing node_d after the step-2 checkpoint ends the run with an error
    naming node_d; with a replacement node started, the same command resumes at step 3."""
    run_dir, log = tmp_path / "run", tmp_path / "run.log"
    lost = next(node for node in nodes.nodes if node.name == "node_d")
    run = command(nodes, run_dir, "trainer.max_steps=6", "trainer.save_every=2",
                  "cluster.generator.resources={generator_host: 1}")
    with log.open("w") as out:
        process = subprocess.Popen(run, env=nodes.env(), stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            victim = kill_generator_node(nodes, run_dir, process, log,
                                         lambda: (run_dir / "checkpoints" / "step_00000002").exists())
            process.wait(timeout=300)
        finally:
            process.kill()
    output = log.read_text()
    assert victim is lost
    assert process.returncode != 0, output[-4000:]
    message = f"was lost with Ray node {lost.node_id[:8]} ("
    assert message in output, output[-4000:]
    status = json.loads((run_dir / "status.json").read_text())
    print("status.json of the failed run:", status)
    assert status["status"] == "failed" and message in status["error"] and "generator_host=1" in status["error"]
    before = {r["step"]: r for r in step_rows(run_dir)}

    (replacement,) = nodes.start(("node_e", 1, {"generator_host": 1}))
    rerun = subprocess.run(run, env=nodes.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    assert "resumed from" in rerun.stdout and "step 2" in rerun.stdout
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
    rows = step_rows(run_dir)
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert rows[0] == before[1] and rows[1] == before[2]  # not trained again
    attempts = {}
    for p in placements(run_dir):
        attempts.setdefault(p["run_id"], {})[p["actor"].split("-", 1)[1]] = p["node_id"]
    assert list(attempts.values()) == [{"trainer-0": nodes.nodes[0].node_id, "generator-0": lost.node_id},
                                       {"trainer-0": nodes.nodes[0].node_id, "generator-0": replacement.node_id}]


def test_an_actor_that_fits_no_single_node_fails_before_any_starts(nodes, tmp_path):
    """The cluster has the 3 CPUs asked for in all, but no node with `generator_host` has 2."""
    run = subprocess.run(command(nodes, tmp_path / "run", "trainer.max_steps=1", "cluster.generator.cpus=2",
                                 "cluster.generator.resources={generator_host: 1}"),
                         env=nodes.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
                         check=False)
    assert run.returncode != 0
    assert "no node of the Ray cluster can host generator 0, which needs 2 CPU, 1 generator_host on one node" \
        in run.stdout, run.stdout[-3000:]
    assert not (tmp_path / "run" / "placement.jsonl").exists()
