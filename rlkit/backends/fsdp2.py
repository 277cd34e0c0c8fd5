"""Fully sharded data parallelism (torch FSDP2, DTensor), optionally with tensor parallelism.

Each transformer block (the model's ``_no_split_modules`` classes, e.g. ``LlamaDecoderLayer``)
is sharded with ``fully_shard``, then the root (embeddings, final norm, head). Parameters,
gradients and AdamW state are split across the data-parallel ranks; a block's weights are
all-gathered just before it runs and freed after.

``tp_size > 1`` builds a 2-D device mesh ``("dp", "tp")``: inside each block the attention
and MLP projections are split across the ``tp`` ranks with DTensor
(``q/k/v/gate/up`` column-wise, ``o/down`` row-wise; each rank computes ``heads / tp``
attention heads), and FSDP shards over ``dp``. Ranks of one TP group see the same samples.

Gradient reduction sums over ranks (rlkit's losses carry global denominators). Mixed
precision: ``param_dtype`` is the dtype of the gathered weights used in forward/backward,
``reduce_dtype`` that of gradient reduction; the sharded master weights and the optimizer
keep the model's dtype.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Optional

import torch
from torch import nn

from rlkit.backends.config import FSDP2Config
from rlkit.backends.distributed import DistributedBackend

#: Projections split column-wise (output features) and row-wise (input features) under TP.
COLWISE = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")
ROWWISE = ("o_proj", "down_proj")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _dtype(name: Optional[str], key: str) -> Optional[torch.dtype]:
    if name is None:
        return None
    if name not in DTYPES:
        raise ValueError(f"backend.{key}: unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[name]


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks to shard one by one: modules of the classes Hugging Face lists in
    ``_no_split_modules``, else the children of the model's longest ``nn.ModuleList``."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    if blocks:
        return blocks
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    return list(max(lists, key=len)) if lists else []


def tensor_parallel_plan(block: nn.Module) -> dict[str, object]:
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    plan: dict[str, object] = {}
    for name, module in block.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf not in COLWISE + ROWWISE:
            continue
        if type(module) is not nn.Linear:
            raise ValueError(f"backend.tp_size > 1: {name} is a {type(module).__name__}, not nn.Linear "
                             "(tensor parallelism does not support LoRA or quantised layers)")
        plan[name] = ColwiseParallel() if leaf in COLWISE else RowwiseParallel()
    return plan


def check_tensor_parallel(model: nn.Module, tp: int) -> None:
    config = getattr(model, "config", None)
    for key in ("num_attention_heads", "num_key_value_heads", "intermediate_size"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value % tp:
            raise ValueError(f"backend.tp_size={tp} does not divide the model's {key}={value}")


class FSDP2Backend(DistributedBackend):
    Config = FSDP2Config

    def __init__(self, config: FSDP2Config):
        super().__init__(config)
        from torch.distributed.device_mesh import init_device_mesh

        tp = config.tp_size
        if tp < 1 or self.world_size % tp:
            raise ValueError(f"backend.tp_size={tp} must divide the world size {self.world_size}")
        self.mesh = init_device_mesh(self.device.type, (self.world_size // tp, tp), mesh_dim_names=("dp", "tp"))
        self.dp_mesh, self.tp_mesh = self.mesh["dp"], self.mesh["tp"]
        self._dp_group = self.dp_mesh.get_group()
        self._dp_rank, self._dp_size = self.dp_mesh.get_local_rank(), self.dp_mesh.size()
        if tp > 1:  # DTensor's hints about flattening mesh dims for norms and gathers: noise here
            logging.getLogger("torch.distributed.tensor._redistribute").setLevel(logging.ERROR)
        self.param_dtype = _dtype(config.param_dtype, "param_dtype")
        self.reduce_dtype = _dtype(config.reduce_dtype, "reduce_dtype")

    def wrap(self, model: nn.Module, trainable: bool = True) -> nn.Module:
        from torch.distributed.fsdp import (
            CPUOffloadPolicy,
            FSDPModule,
            MixedPrecisionPolicy,
            OffloadPolicy,
            fully_shard,
        )
        from torch.distributed.tensor.parallel import parallelize_module

        config = self.config
        trainable = trainable and any(p.requires_grad for p in model.parameters())
        if trainable:
            self._remember(model)
            if config.activation_checkpointing:
                enable_activation_checkpointing(model)
        else:
            model.requires_grad_(False)
            model.eval()
        if not config.cpu_offload:
            model.to(self.device)
        blocks = transformer_blocks(model)
        if config.tp_size > 1:
            check_tensor_parallel(model, config.tp_size)
            for block in blocks:
                parallelize_module(block, self.tp_mesh, tensor_parallel_plan(block))
        options = {
            "mesh": self.dp_mesh,
            "reshard_after_forward": config.reshard_after_forward,
            "mp_policy": MixedPrecisionPolicy(param_dtype=self.param_dtype, reduce_dtype=self.reduce_dtype),
            "offload_policy": CPUOffloadPolicy(pin_memory=torch.cuda.is_available()) if config.cpu_offload else OffloadPolicy(),
        }
        for block in blocks:
            fully_shard(block, **options)
        fully_shard(model, **options)
        units = [m for m in model.modules() if isinstance(m, FSDPModule)]
        for unit in units:
            # Sum, not average, over data-parallel ranks (losses carry global denominators).
            unit.set_gradient_divide_factor(1.0)
            unit.set_force_sum_reduction_for_comms(True)
        # FSDP allocates each unit's gathered-parameter tensors at its first all-gather;
        # were that inside torch.inference_mode (a generator's first forward), they would
        # be inference tensors that training can never write again. Allocate them now.
        with torch.no_grad():
            for unit in units:
                unit.unshard()
                unit.reshard()
        return model

    @contextmanager
    def generation_model(self, model: nn.Module) -> Iterator[nn.Module]:
        """Gather every FSDP unit's weights once (collective) and keep them gathered, so the
        forward passes inside the block communicate only within a TP group."""
        from torch.distributed.fsdp import FSDPModule

        units = [m for m in model.modules() if isinstance(m, FSDPModule)]
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for unit in units:
                    unit.set_reshard_after_forward(False, recurse=False)
                    unit.unshard()
            yield model
        finally:
            for unit in units:
                unit.reshard()
                unit.set_reshard_after_forward(self.config.reshard_after_forward, recurse=False)
            model.train(was_training)


def enable_activation_checkpointing(model: nn.Module) -> None:
    """Hugging Face's per-layer checkpointing when the model has it, else torch's per block."""
    if getattr(model, "supports_gradient_checkpointing", False) and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "config"):
            model.config.use_cache = False
        return
    from torch.distributed._composable import checkpoint

    for block in transformer_blocks(model):
        checkpoint(block)
