"""``backend=auto``: pick single, ddp or fsdp2 from the model size and the devices.

The estimate is the memory of training state per parameter -- weights, gradients and two
AdamW moments, all in the model's dtype (LoRA: weights only, the adapters are negligible)
-- against ``memory_fraction`` of one device's memory (the rest is left for activations):

* it fits on one device: ``single`` with one device, ``ddp`` with several (no weight
  gathering, the fastest data parallelism);
* it does not fit: ``fsdp2`` over all devices, with ``cpu_offload`` if even the 1/N share
  does not fit.

On CPU the default is one process (several CPU ranks only split the same cores); set
``nproc_per_node`` to ask for more. Under torchrun or Slurm the world size is given, and
the choice is between ``ddp`` and ``fsdp2``. The choice and its reason are logged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from rlkit.backends.config import AutoConfig
from rlkit.config import ModelConfig

_log = logging.getLogger(__name__)
GiB = 2**30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass
class Choice:
    name: str
    config: dict[str, Any]
    reason: str


def count_parameters(model: ModelConfig) -> int:
    """Parameters of the configured model, counted on the meta device (nothing allocated)."""
    import torch
    from transformers import AutoConfig as HFAutoConfig
    from transformers import AutoModelForCausalLM

    from rlkit.models.loading import resolve_path

    hf_config = HFAutoConfig.from_pretrained(resolve_path(model), trust_remote_code=model.trust_remote_code)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(hf_config, trust_remote_code=model.trust_remote_code)
    return sum(p.numel() for p in skeleton.parameters())


def device_memory(device: str, processes: int) -> tuple[str, int, int]:
    """(device type, number of devices, bytes of one device's memory for one rank)."""
    import torch

    if device != "cpu" and torch.cuda.is_available():
        count = torch.cuda.device_count()
        memory = min(torch.cuda.get_device_properties(i).total_memory for i in range(count))
        return "cuda", count, memory
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return "cpu", 1, ram // max(1, processes)


def decide(parameters: int, bytes_per_param: float, kind: str, devices: int, memory: int,
           fraction: float, world: int | None, nproc: int) -> Choice:
    """The backend for ``parameters`` given the hardware (pure: unit-testable)."""
    state = parameters * bytes_per_param
    budget = memory * fraction
    size = f"{parameters / 1e6:.1f}M parameters need ~{state / GiB:.2f} GiB for weights, gradients and AdamW state"
    where = f"one {kind} device has {memory / GiB:.1f} GiB (budget {budget / GiB:.1f} GiB at memory_fraction={fraction})"
    if world is None:  # rlkit starts the processes
        ranks = nproc or (devices if kind == "cuda" else 1)
    else:
        ranks = world
    base = {"device": kind}
    if world is None:
        base["nproc_per_node"] = ranks
    if ranks == 1:
        if state <= budget:
            return Choice("single", {"device": kind}, f"{size}; {where}: fits on one device")
        if kind == "cuda":
            return Choice("fsdp2", {**base, "cpu_offload": True},
                          f"{size}; {where}: does not fit one GPU, so fsdp2 with CPU offload")
        return Choice("single", {"device": kind}, f"{size}; {where}: CPU run in one process")
    if state <= budget:
        return Choice("ddp", base, f"{size}; {where}: fits, so ddp over {ranks} ranks (no weight gathering)")
    share = state / ranks
    if share <= budget:
        return Choice("fsdp2", base, f"{size}; {where}: sharded over {ranks} ranks, ~{share / GiB:.2f} GiB each")
    return Choice("fsdp2", {**base, "cpu_offload": True},
                  f"{size}; {where}: even 1/{ranks} (~{share / GiB:.2f} GiB) does not fit, so fsdp2 with CPU offload")


class AutoBackend:
    """Not a backend itself: :meth:`select` names the backend to build (``rlkit.build.select_backend`` calls it)."""

    Config = AutoConfig

    def __init__(self, config: AutoConfig):
        raise TypeError("backend=auto is resolved by rlkit.build.select_backend (AutoBackend.select), not built")

    @staticmethod
    def select(config: AutoConfig, model: ModelConfig) -> Choice:
        from rlkit.backends.distributed import read_env

        env = read_env()
        world = env.world_size if env is not None and env.world_size > 1 else None
        kind, devices, memory = device_memory(config.device, world or config.nproc_per_node or 1)
        parameters = count_parameters(model)
        per_param = DTYPE_BYTES.get(model.dtype, 4)
        bytes_per_param = per_param if model.lora.enabled else 4 * per_param
        choice = decide(parameters, bytes_per_param, kind, devices, memory, config.memory_fraction, world,
                        config.nproc_per_node)
        if env is None or env.rank == 0:
            _log.info("backend=auto chose %s %s: %s", choice.name, choice.config, choice.reason)
        return choice
