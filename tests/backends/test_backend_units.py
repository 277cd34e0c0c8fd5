"""Backend pieces that need no second process: configs, rank discovery, the auto choice,
block detection, tensor-parallel plans, gradient norms, sharded state on one process."""

from __future__ import annotations

import copy

import pytest
import torch

from rlkit.backends.auto import GiB, decide
from rlkit.backends.distributed import DistEnv, clip_gradients, meta_skeleton, read_env
from rlkit.backends.fsdp2 import check_tensor_parallel, tensor_parallel_plan, transformer_blocks
from rlkit.config import typed_run_config
from rlkit.build import resolve_components


@pytest.mark.parametrize("choice", ["single", "ddp", "fsdp2", "auto"])
def test_backend_configs_compose_and_validate(compose, choice):
    parts = resolve_components(typed_run_config(compose([f"backend={choice}"])))
    assert parts["backend"].cls.__name__.lower().startswith(choice.replace("2", ""))


def test_backend_options_are_typed(compose):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as err:  # while composing: backend=fsdp2's schema
        compose(["backend=fsdp2", "backend.tp_size=two"])
    assert "backend.tp_size" in str(err.value.__cause__)


ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID",
            "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_STEP_ID", "SLURM_JOB_ID", "SLURM_NTASKS_PER_NODE",
            "SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_LAUNCH_NODE_IPADDR")


@pytest.fixture
def clean_env(monkeypatch):
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_ranks_come_from_torchrun_variables(clean_env):
    assert read_env() is None
    clean_env.setenv("RANK", "3")
    clean_env.setenv("WORLD_SIZE", "4")
    clean_env.setenv("LOCAL_RANK", "1")
    clean_env.setenv("LOCAL_WORLD_SIZE", "2")
    clean_env.setenv("MASTER_ADDR", "node7")
    clean_env.setenv("MASTER_PORT", "1234")
    assert read_env() == DistEnv(3, 4, 1, 2, "node7", 1234, "torch")


def test_ranks_come_from_slurm_inside_an_srun_step(clean_env):
    clean_env.setenv("SLURM_PROCID", "1")
    clean_env.setenv("SLURM_NTASKS", "2")
    clean_env.setenv("SLURM_LOCALID", "1")
    clean_env.setenv("SLURM_JOB_ID", "4242")
    clean_env.setenv("SLURM_LAUNCH_NODE_IPADDR", "10.0.0.5")
    assert read_env() is None, "a batch script (no step) is one process, not rank 1 of 2"
    clean_env.setenv("SLURM_STEP_ID", "0")
    env = read_env()
    assert (env.rank, env.world_size, env.local_rank, env.source) == (1, 2, 1, "slurm")
    assert env.master_addr == "10.0.0.5" and env.master_port == 10000 + 4242


def test_torch_variables_win_over_slurm(clean_env):
    # submitit's TorchDistributedEnvironment exports torch's variables inside Slurm tasks.
    for key, value in {"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_STEP_ID": "0", "RANK": "1",
                       "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "5"}.items():
        clean_env.setenv(key, value)
    assert read_env().source == "torch" and read_env().rank == 1


@pytest.mark.parametrize(
    "params, devices, memory, world, nproc, expected",
    [
        (10e6, 1, 24 * GiB, None, 0, ("single", False)),  # CPU, small
        (1e9, 8, 80 * GiB, None, 0, ("ddp", False)),  # 16 GB of state fits one 80 GB GPU
        (7e9, 8, 80 * GiB, None, 0, ("fsdp2", False)),  # 112 GB: shard over 8
        (70e9, 8, 80 * GiB, None, 0, ("fsdp2", True)),  # 1.1 TB / 8 > 40 GB: offload
        (7e9, 1, 80 * GiB, None, 0, ("fsdp2", True)),  # one GPU, too big
        (1e9, 1, 80 * GiB, 4, 0, ("ddp", False)),  # under torchrun: world size given
        (7e9, 1, 80 * GiB, 4, 0, ("fsdp2", False)),
    ],
)
def test_auto_choice(params, devices, memory, world, nproc, expected):
    kind = "cuda" if memory == 80 * GiB else "cpu"
    choice = decide(int(params), 16, kind, devices, memory, 0.5, world, nproc)
    assert (choice.name, choice.config.get("cpu_offload", False)) == expected
    assert "parameters" in choice.reason and "GiB" in choice.reason
    if world is None and choice.name != "single":
        assert choice.config["nproc_per_node"] == (devices if kind == "cuda" else 1)


def test_auto_resolves_to_a_concrete_backend_and_logs_why(compose, caplog):
    from rlkit.build import select_backend

    cfg = compose(["backend=auto"])
    run = typed_run_config(cfg)
    with caplog.at_level("INFO", logger="rlkit.backends.auto"):
        cfg2, resolved = select_backend(cfg, resolve_components(run)["backend"], run)
    assert resolved.cls.__name__ == "SingleBackend" and cfg2.backend.name == "single"
    assert "backend=auto chose single" in caplog.text and "parameters" in caplog.text


def test_blocks_and_tensor_parallel_plan(tiny):
    model = tiny[0]
    blocks = transformer_blocks(model)
    assert [type(b).__name__ for b in blocks] == ["LlamaDecoderLayer"] * model.config.num_hidden_layers
    plan = tensor_parallel_plan(blocks[0])
    assert {k: type(v).__name__ for k, v in plan.items()} == {
        "self_attn.q_proj": "ColwiseParallel", "self_attn.k_proj": "ColwiseParallel",
        "self_attn.v_proj": "ColwiseParallel", "self_attn.o_proj": "RowwiseParallel",
        "mlp.gate_proj": "ColwiseParallel", "mlp.up_proj": "ColwiseParallel", "mlp.down_proj": "RowwiseParallel",
    }
    check_tensor_parallel(model, 2)
    with pytest.raises(ValueError, match="num_attention_heads"):
        check_tensor_parallel(model, 3)


def test_meta_skeleton_costs_no_parameter_memory_and_keeps_buffers(tiny):
    skeleton = meta_skeleton(tiny[0])
    assert all(p.is_meta for p in skeleton.parameters())
    assert skeleton.lm_head.weight is skeleton.model.embed_tokens.weight  # tying survives
    assert not any(b.is_meta for b in skeleton.buffers())
    assert not any(p.is_meta for p in tiny[0].parameters())


def test_clip_gradients_matches_torch():
    a = [torch.nn.Parameter(torch.randn(5)) for _ in range(3)]
    b = copy.deepcopy(a)
    for p, q in zip(a, b):
        p.grad = torch.randn(5)
        q.grad = p.grad.clone()
    expected = float(torch.nn.utils.clip_grad_norm_(b, 0.5))
    assert clip_gradients(a, 0.5) == pytest.approx(expected, rel=1e-6)
    for p, q in zip(a, b):
        torch.testing.assert_close(p.grad, q.grad)


def test_sharded_state_round_trips_on_one_process(tmp_path, tiny):
    """DCP without a process group: what single-process runs write into checkpoints."""
    from rlkit.backends.single import SingleBackend

    backend = SingleBackend(SingleBackend.Config(device="cpu"))
    model = copy.deepcopy(tiny[0])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.randint(0, 100, (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    backend.save_sharded(tmp_path / "dcp", model, optimizer)

    other = copy.deepcopy(tiny[0])
    other_optimizer = torch.optim.AdamW(other.parameters(), lr=1e-2)
    backend.load_sharded(tmp_path / "dcp", other, other_optimizer)
    for p, q in zip(model.parameters(), other.parameters()):
        assert torch.equal(p, q)
        assert torch.equal(optimizer.state[p]["exp_avg_sq"], other_optimizer.state[q]["exp_avg_sq"])
