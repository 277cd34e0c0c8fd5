"""What the multi-process backends share: rank discovery, the process group, reductions,
global gradient norms, full state dicts and plain copies of wrapped models.

Ranks are read from the environment in this order:

* torch's variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
  ``MASTER_PORT`` -- set by rlkit's own launcher (``backend.nproc_per_node``), by
  ``torchrun`` and by submitit's ``TorchDistributedEnvironment().export()``;
* Slurm's ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID`` inside an ``srun`` step of
  more than one task (the master is the step's first node, the port derived from the job id);
* neither: a process group of one (``nproc_per_node=1``), so that ``fsdp2`` and ``ddp``
  also run, unsharded, in a single process.

NCCL is used on GPUs and gloo on CPUs unless ``backend.dist_backend`` says otherwise.
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from rlkit.backends.base import Backend


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in a multi-process run."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    master_addr: str
    master_port: int
    #: torch | slurm | none
    source: str


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slurm_master_addr() -> str:
    nodes = os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_JOB_NODELIST")
    if nodes:
        try:
            out = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                                 timeout=30, check=True).stdout.split()
            if out:
                return out[0]
        except (OSError, subprocess.SubprocessError):
            pass
    return os.environ.get("SLURM_LAUNCH_NODE_IPADDR", "127.0.0.1")


def read_env() -> DistEnv | None:
    """This process's place in a launched multi-process run, or None when not launched."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        local_world = int(env.get("LOCAL_WORLD_SIZE", world))
        return DistEnv(rank, world, int(env.get("LOCAL_RANK", rank % local_world)), local_world,
                       env.get("MASTER_ADDR", "127.0.0.1"), int(env.get("MASTER_PORT", 29500)), "torch")
    # Only inside an srun step (SLURM_STEP_ID): a batch script's single process also sees
    # SLURM_NTASKS of its allocation, and would otherwise wait for ranks that never come.
    if "SLURM_PROCID" in env and "SLURM_STEP_ID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        world = int(env["SLURM_NTASKS"])
        local_world = int(env.get("SLURM_NTASKS_PER_NODE", "0").split("(")[0] or 0) or world
        port = int(env.get("MASTER_PORT", 10000 + int(env.get("SLURM_JOB_ID", "0")) % 20000))
        return DistEnv(int(env["SLURM_PROCID"]), world, int(env.get("SLURM_LOCALID", 0)), local_world,
                       env.get("MASTER_ADDR") or _slurm_master_addr(), port, "slurm")
    return None


def inside_launch() -> bool:
    """True in a process started by a launcher (rlkit's, torchrun, srun) as one of several ranks."""
    found = read_env()
    return found is not None and found.world_size > 1


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return device


def meta_skeleton(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with parameters on the meta device (no memory) and real buffers.

    Taken before wrapping, it is the recipe for plain copies of the wrapped model (export,
    LoRA merging): parameters are filled from a gathered state dict.
    """
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    return copy.deepcopy(model, memo)


def global_grad_norm(params: Iterable[nn.Parameter]) -> Tensor | None:
    """The 2-norm of all gradients, however they are sharded (plain, FSDP, TP, FSDP x TP).

    Gradients are grouped by their DTensor layout; each group's norm is reduced over the
    mesh dimensions it is sharded on (``full_tensor``), then the groups are combined.
    """
    from torch.distributed.tensor import DTensor

    groups: dict[Any, list[Tensor]] = {}
    for p in params:
        if p.grad is None:
            continue
        g = p.grad
        key = (g.device_mesh, tuple(g.placements)) if isinstance(g, DTensor) else ("plain", g.device)
        groups.setdefault(key, []).append(g)
    if not groups:
        return None
    squares = []
    for grads in groups.values():
        norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
        if isinstance(norm, DTensor):
            norm = norm.full_tensor()
        squares.append(norm.float().cpu() ** 2)
    return torch.stack(squares).sum().sqrt()


def clip_gradients(params: Iterable[nn.Parameter], max_norm: float) -> float:
    """Clip to ``max_norm`` (<= 0: no clipping); returns the global norm before clipping."""
    params = [p for p in params if p.grad is not None]
    total = global_grad_norm(params)
    if total is None:
        return 0.0
    value = float(total)
    if max_norm > 0 and value > max_norm:
        coef = max_norm / (value + 1e-6)
        with torch.no_grad():
            for p in params:
                p.grad.mul_(coef)
    return value


class DistributedBackend(Backend):
    """Process group, device and collectives common to ``ddp`` and ``fsdp2``.

    Reductions (``all_reduce*``, ``all_gather_object``) run over the data-parallel group:
    ranks that hold replicas of the same tensor-parallel shard share their data and are
    counted once.
    """

    def __init__(self, config: Any):
        self.config = config
        env = read_env() or DistEnv(0, 1, 0, 1, "127.0.0.1", free_port(), "none")
        self.env = env
        self._device = pick_device(config.device, env.local_rank)
        if self._device.type == "cuda":
            torch.cuda.set_device(self._device)
        self._owns_group = not dist.is_initialized()
        if self._owns_group:
            name = config.dist_backend
            if name == "auto":
                name = "nccl" if self._device.type == "cuda" else "gloo"
            dist.init_process_group(
                name, init_method=f"tcp://{env.master_addr}:{env.master_port}", rank=env.rank,
                world_size=env.world_size, timeout=timedelta(minutes=config.timeout_minutes),
                device_id=self._device if name == "nccl" else None,
            )
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self._dp_group: Any = None  # None: the default (world) group
        self._dp_rank, self._dp_size = self.rank, self.world_size
        self._skeletons: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()

    # ------------------------------------------------------------ placement

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dp_rank(self) -> int:
        return self._dp_rank

    @property
    def dp_size(self) -> int:
        return self._dp_size

    @property
    def _comm_device(self) -> torch.device:
        return self._device if dist.get_backend() == "nccl" else torch.device("cpu")

    def _remember(self, model: nn.Module) -> None:
        self._skeletons[model] = meta_skeleton(model)

    # ------------------------------------------------------------ collectives

    def all_reduce(self, value, op: str = "sum"):
        ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
        if op not in ops:
            raise ValueError(f"all_reduce: unknown op {op!r}; choose one of {', '.join(ops)}")
        if isinstance(value, Tensor):
            out = value.detach().to(self._comm_device, copy=True)
            dist.all_reduce(out, op=ops[op], group=self._dp_group)
            return out.to(value.device)
        out = torch.tensor([float(value)], dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(out, op=ops[op], group=self._dp_group)
        return float(out.item())

    def all_reduce_sum(self, value):
        return self.all_reduce(value, "sum")

    def all_gather_object(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self._dp_size
        dist.all_gather_object(out, obj, group=self._dp_group)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        dist.barrier()

    def close(self) -> None:
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()

    # ------------------------------------------------------------ gradients and state

    def clip_grad_norm(self, model: nn.Module, max_norm: float) -> float:
        return clip_gradients(model.parameters(), max_norm)

    def full_state_dict(self, model: nn.Module) -> dict[str, Tensor]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def gathered_model(self, model: nn.Module) -> nn.Module | None:
        state = self.full_state_dict(model)
        if not self.is_main:
            return None
        skeleton = self._skeletons.get(model)
        if skeleton is None:  # not wrapped by this backend (e.g. a frozen model): already plain
            return model
        plain = copy.deepcopy(skeleton)
        plain.load_state_dict(state, strict=True, assign=True)
        if hasattr(plain, "tie_weights"):  # assign=True gives tied weights separate tensors
            plain.tie_weights()
        return plain.eval()
