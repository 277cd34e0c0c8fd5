"""Data parallelism: a full replica per rank, gradients summed across ranks.

Uses torch's DDP engine (bucketed all-reduce overlapped with backward) through its
composable form, ``torch.distributed._composable.replicate``, which keeps the module's own
class: the wrapped policy is still a ``LlamaForCausalLM`` (or ``PeftModel``), so
``model.config``, ``model.device``, ``generate`` and ``isinstance`` work as on one process.

A comm hook sums gradients instead of averaging them: rlkit's losses are already scaled by
global denominators, so the sum over ranks is the full-batch gradient.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager

import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from rlkit.backends.config import DDPConfig
from rlkit.backends.distributed import DistributedBackend


# torch >= 2.13 renamed DDP's broadcast_buffers to forward_sync_buffers.
_NO_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else {"broadcast_buffers": False}
)


def _sum_gradients(process_group, bucket):
    """DDP comm hook: all-reduce SUM (DDP's default averages)."""
    return (
        dist.all_reduce(bucket.buffer(), group=process_group, async_op=True)
        .get_future()
        .then(lambda fut: fut.value()[0])
    )


class DDPBackend(DistributedBackend):
    Config = DDPConfig

    def wrap(self, model: nn.Module, trainable: bool = True) -> nn.Module:
        model.to(self.device)
        if not trainable or not any(p.requires_grad for p in model.parameters()):
            model.requires_grad_(False)
            return model.eval()
        from torch.distributed._composable.replicate import replicate

        self._remember(model)
        replicate(
            model,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            # Rotary tables and the like are identical on every rank; syncing buffers each
            # forward would also make generation on uneven prompt shares a collective.
            **_NO_BUFFER_SYNC,
            find_unused_parameters=self.config.find_unused_parameters,
            bucket_cap_mb=self.config.bucket_cap_mb,
        )
        model.register_comm_hook(None, _sum_gradients)
        return model

    @contextmanager
    def no_sync(self, model: nn.Module) -> Iterator[None]:
        if not hasattr(model, "set_requires_gradient_sync"):
            yield
            return
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
