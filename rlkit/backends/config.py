"""The built-in backends' ``Config`` dataclasses: the schemas of the ``backend`` group.

Free of torch, so that composing a config never imports it; each entry point in
``rlkit.backends`` names one of these classes, whose ``component`` names the backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

from rlkit.schema import Choice, Dtype, above, at_least, between


class DistBackend(Choice):
    #: nccl on GPUs, gloo on CPUs
    auto = "auto"
    nccl = "nccl"
    gloo = "gloo"


@dataclass
class SingleConfig:
    """One process on one device."""

    component: ClassVar[str] = "rlkit.backends.single:SingleBackend"

    #: auto | cpu | cuda | cuda:N
    device: str = "auto"


@dataclass
class DDPConfig:
    """Data parallelism: a replica per rank, gradients summed across ranks."""

    component: ClassVar[str] = "rlkit.backends.ddp:DDPBackend"

    #: auto | cpu | cuda (each rank takes cuda:LOCAL_RANK)
    device: str = "auto"
    #: Processes rlkit starts on this node (1: this process only, or ranks come from
    #: torchrun/Slurm).
    nproc_per_node: int = field(default=1, metadata=at_least(1))
    #: auto (nccl on GPUs, gloo on CPUs) | nccl | gloo
    dist_backend: DistBackend = DistBackend.auto
    timeout_minutes: float = field(default=30.0, metadata=above(0))
    #: Needed when some trainable parameters get no gradient in a step.
    find_unused_parameters: bool = False
    bucket_cap_mb: float = field(default=25.0, metadata=above(0))


@dataclass
class FSDP2Config:
    """FSDP2 per transformer block, optional tensor parallelism on a ("dp", "tp") mesh."""

    component: ClassVar[str] = "rlkit.backends.fsdp2:FSDP2Backend"

    #: auto | cpu | cuda (each rank takes cuda:LOCAL_RANK)
    device: str = "auto"
    #: Processes rlkit starts on this node (1: this process only, or ranks come from
    #: torchrun/Slurm).
    nproc_per_node: int = field(default=1, metadata=at_least(1))
    #: Tensor-parallel group size; the world size must be a multiple of it.
    tp_size: int = field(default=1, metadata=at_least(1))
    #: Dtype of gathered weights in forward/backward (null: the model's dtype), e.g. bfloat16.
    param_dtype: Optional[Dtype] = None
    #: Dtype of gradient reduce-scatter (null: param_dtype), e.g. float32.
    reduce_dtype: Optional[Dtype] = None
    #: Keep sharded parameters, gradients and optimizer state in CPU memory (GPU runs).
    cpu_offload: bool = False
    #: Recompute each block's activations in backward instead of storing them.
    activation_checkpointing: bool = False
    #: Free gathered weights after each block's forward (False: keep them until backward;
    #: faster, more memory).
    reshard_after_forward: bool = True
    #: auto (nccl on GPUs, gloo on CPUs) | nccl | gloo
    dist_backend: DistBackend = DistBackend.auto
    timeout_minutes: float = field(default=30.0, metadata=above(0))


@dataclass
class AutoConfig:
    """Choose single, ddp or fsdp2 from the parameter count and the devices (logged at start)."""

    component: ClassVar[str] = "rlkit.backends.auto:AutoBackend"

    #: auto | cpu | cuda
    device: str = "auto"
    #: Processes on this node; 0: one per GPU (one on CPU).
    nproc_per_node: int = field(default=0, metadata=at_least(0))
    #: Share of one device's memory that weights, gradients and optimizer state may take.
    memory_fraction: float = field(default=0.5, metadata=between(0, 1))
