"""Multi-process backends on CPU (gloo, 2 ranks started by rlkit itself).

Every run uses the same seed and global batch; ranks split each step's samples, and the
losses are global sums, so the per-step losses must equal the single-process run's up to
float reduction order. Tolerance: relative 1e-5 on the loss (observed: ~1e-7) and 1e-4 on
the gradient norm.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

LOSS_RTOL = 1e-5
GRAD_NORM_RTOL = 1e-4
STEPS = 10
FAST = [
    "algo=sft", "model.tiny.hidden_size=64", "model.tiny.num_layers=2", "data.train_size=400", "data.eval_size=0",
    "trainer.batch_size=8", "trainer.micro_batch_size=2", f"trainer.max_steps={STEPS}", "trainer.save_every=5",
    "trainer.keep_checkpoints=3", "trainer.warmup_steps=0", "trainer.eval_every=0", "logger=[jsonl]",
]
TWO_RANKS = ["backend.nproc_per_node=2"]


@pytest.fixture(autouse=True)
def one_thread_per_rank(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def compose(overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from rlkit.config import register_with_hydra

    register_with_hydra()
    with initialize_config_module(config_module="rlkit.conf", version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def with_defaults(overrides) -> list[str]:
    """FAST, minus the keys that ``overrides`` set again (Hydra refuses duplicates)."""
    keys = {o.split("=", 1)[0] for o in overrides}
    return [o for o in FAST if o.split("=", 1)[0] not in keys] + list(overrides)


def train(run_dir: Path, *overrides: str) -> dict:
    from rlkit.launch import train as rlkit_train

    return rlkit_train(compose(with_defaults(overrides)), run_dir)


def losses(run_dir: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows if "loss" in r}


def assert_same_curve(actual: dict[int, dict], expected: dict[int, dict], steps) -> None:
    for step in steps:
        assert actual[step]["loss"] == pytest.approx(expected[step]["loss"], rel=LOSS_RTOL), step
        assert actual[step]["grad_norm"] == pytest.approx(expected[step]["grad_norm"], rel=GRAD_NORM_RTOL), step


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, isolated_env):
    run_dir = tmp_path_factory.mktemp("single")
    train(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def fsdp2_run(tmp_path_factory, isolated_env):
    run_dir = tmp_path_factory.mktemp("fsdp2")
    train(run_dir, "backend=fsdp2", *TWO_RANKS)
    return run_dir


def test_fsdp2_matches_single(single_run, fsdp2_run):
    assert_same_curve(losses(fsdp2_run), losses(single_run), range(1, STEPS + 1))
    assert json.loads((fsdp2_run / "status.json").read_text())["status"] == "completed"
    # The final model is a plain Hugging Face checkpoint gathered from the shards.
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(single_run / "final")
    b = AutoModelForCausalLM.from_pretrained(fsdp2_run / "final")
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)
    checkpoint = fsdp2_run / "checkpoints" / "step_00000005"
    assert (checkpoint / "model.safetensors").exists() and (checkpoint / "dcp" / ".metadata").exists()
    assert len(list((checkpoint / "dcp").glob("*.distcp"))) == 2  # one shard file per rank
    assert not list((fsdp2_run / "checkpoints").glob(".tmp-*"))


def test_ddp_matches_single(single_run, tmp_path):
    # micro_batch_size=2: two micro-batches per rank, the first under no_sync.
    train(tmp_path, "backend=ddp", *TWO_RANKS)
    assert_same_curve(losses(tmp_path), losses(single_run), range(1, STEPS + 1))


def test_tensor_parallel_matches_single(single_run, tmp_path):
    train(tmp_path, "backend=fsdp2", "backend.tp_size=2", *TWO_RANKS)
    assert_same_curve(losses(tmp_path), losses(single_run), range(1, STEPS + 1))


@pytest.mark.parametrize("ranks", [1, 2])
def test_two_rank_checkpoint_resumes_on_one_or_two_ranks(fsdp2_run, tmp_path, ranks):
    """The step-5 checkpoint of the 2-rank run, resumed on a different world size (and, for
    one rank, a different backend), continues the same loss curve."""
    (tmp_path / "checkpoints").mkdir()
    shutil.copytree(fsdp2_run / "checkpoints" / "step_00000005", tmp_path / "checkpoints" / "step_00000005")
    shutil.copy(fsdp2_run / "metrics.jsonl", tmp_path / "metrics.jsonl")  # truncated to step 5 on resume
    train(tmp_path, *(["backend=single"] if ranks == 1 else ["backend=fsdp2", *TWO_RANKS]))
    resumed = losses(tmp_path)
    assert sorted(resumed) == list(range(1, STEPS + 1))
    assert_same_curve(resumed, losses(fsdp2_run), range(6, STEPS + 1))


def test_fsdp2_halves_per_rank_parameter_and_optimizer_memory():
    from benchmarks.bench_backends import measure, run_variant

    kwargs = {"model_args": {"hidden": 128, "layers": 2, "heads": 4, "vocab": 512}, "batch": 4, "seq": 16, "steps": 1,
              "warmup": 0}
    [single] = measure("single", {"device": "cpu"}, **kwargs)
    ranks = run_variant("fsdp2", 2, "cpu", **kwargs)
    assert len(ranks) == 2

    def state(r):
        return r["params_mib"] + r["optimizer_mib"]

    for r in ranks:
        ratio = state(r) / state(single)
        assert 0.45 <= ratio <= 0.55, f"per-rank params+optimizer = {ratio:.3f} of single"
        assert r["grads_mib"] / single["grads_mib"] == pytest.approx(0.5, abs=0.05)


POISON_TEMPLATE = (
    "{% for message in messages %}{% if 'POISON' in message['content'] %}"
    "{{ raise_exception('poisoned row: ' + message['content']) }}{% endif %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def test_a_failing_rank_ends_the_run_with_its_error(tmp_path, tiny_model_dir):
    """One row of the data file breaks the chat template; only rank 1 reads it (at step 3).
    The run must end promptly, naming rank 1 and its error, instead of hanging rank 0."""
    from rlkit.data.sampler import EpochSampler

    tokenizer_dir = tmp_path / "tokenizer"
    shutil.copytree(tiny_model_dir, tokenizer_dir)
    (tokenizer_dir / "chat_template.jinja").write_text(POISON_TEMPLATE)
    sampler = EpochSampler(64, 4, seed=0)
    for _ in range(2):
        sampler.next_batch()
    poisoned = sampler.next_batch()[2]  # step 3, rank 1's first sample of [r0, r0, r1, r1]
    rows = [{"prompt": [{"role": "user", "content": "POISON" if i == poisoned else f"What is {i} + 1?"}],
             "completion": str(i + 1)} for i in range(64)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))

    run_dir = tmp_path / "run"
    overrides = with_defaults(["data=files", f"data.train={data}", f"model.tokenizer={tokenizer_dir}",
                               "trainer.batch_size=4", "backend=fsdp2", *TWO_RANKS])
    command = [sys.executable, "-m", "rlkit", f"hydra.run.dir={run_dir}",
               *[o for o in overrides if not o.startswith(("data.train_size", "data.eval_size"))]]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, env={**os.environ})
    assert result.returncode != 0
    assert "rank 1 of 2 failed" in result.stderr and "poisoned row: POISON" in result.stderr, result.stderr[-3000:]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and "rank 1" in status["error"]


# DPO and GRPO are written by others; these check only that they run on sharded ranks.
ALGO_RUN = [*TWO_RANKS, "backend=fsdp2", "trainer.max_steps=3", "trainer.save_every=2", "trainer.batch_size=4",
            "trainer.micro_batch_size=2"]


def test_dpo_runs_on_fsdp2(tmp_path):
    train(tmp_path, *ALGO_RUN, "algo=dpo")
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "completed"
    assert sorted(losses(tmp_path)) == [1, 2, 3]
    assert (tmp_path / "final" / "model.safetensors").exists()


def test_grpo_runs_on_fsdp2(tmp_path):
    train(tmp_path, *ALGO_RUN, "algo=grpo", "reward=math", "algo.group_size=2", "algo.sampling.max_new_tokens=6",
          "data.eval_size=4", "trainer.eval_samples=4", "trainer.eval_max_new_tokens=4")
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "completed"
    assert sorted(losses(tmp_path)) == [1, 2, 3]
    assert (tmp_path / "final" / "model.safetensors").exists()


def test_ppo_value_model_is_sharded_checkpointed_and_resumed_with_the_policy(tmp_path):
    """PPO's value model is one of the trainer's modules: sharded like the policy, saved in
    the same sharded checkpoint, and a run resumed from it continues exactly."""
    overrides = [*ALGO_RUN, "algo=ppo", "reward=math", "algo.samples_per_prompt=2", "algo.sampling.max_new_tokens=6",
                 "data.eval_size=4", "trainer.eval_samples=4", "trainer.eval_max_new_tokens=4"]
    train(tmp_path / "full", *overrides)
    checkpoint = Path("checkpoints") / "step_00000002"
    shutil.copytree(tmp_path / "full" / checkpoint, tmp_path / "resumed" / checkpoint)  # as if killed after step 2
    train(tmp_path / "resumed", *overrides)
    full, resumed = losses(tmp_path / "full"), losses(tmp_path / "resumed")
    assert sorted(resumed) == [3]
    for key in ("loss", "value_loss", "grad_norm", "grad_norm/value"):
        assert resumed[3][key] == pytest.approx(full[3][key], rel=LOSS_RTOL), key
