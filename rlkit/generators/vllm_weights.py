"""The trainer's state dict -> the Hugging Face weight names a vLLM model loads.

Pure tensor functions, free of vLLM, so they are tested in the main environment. The
trainer hands over its full state dict: plain ``model.*``/``lm_head.*`` keys, a ``module.``
prefix from wrappers, or PEFT's LoRA layout, whose adapters are merged here (vLLM then
serves one plain model; no adapter machinery in the engine).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import nn

#: Prefix PEFT puts before the wrapped model's own parameter names.
PEFT_PREFIX = "base_model.model."
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def lora_scalings(model: nn.Module) -> dict[str, float]:
    """``{module name: alpha / r}`` (or alpha / sqrt(r) with rsLoRA) of every LoRA layer of
    ``model``, keyed as in its state dict; empty for a model without adapters."""
    scalings = {}
    for name, module in model.named_modules():
        scaling = getattr(module, "scaling", None)
        if isinstance(scaling, dict) and "default" in scaling and hasattr(module, "lora_A"):
            scalings[_strip_wrappers(name)] = float(scaling["default"])
    return scalings


def merge_lora(weight: torch.Tensor, lora_a: torch.Tensor, lora_b: torch.Tensor, scaling: float) -> torch.Tensor:
    """W' = W + scaling * (B @ A): the weight a LoRA layer computes with, as one matrix.

    Shapes: W (out, in), A (r, in), B (out, r). Computed in fp32, returned in W's dtype.
    """
    merged = weight.float() + scaling * (lora_b.float() @ lora_a.float())
    return merged.to(weight.dtype)


def hf_weights(state_dict: Mapping[str, torch.Tensor], scalings: Mapping[str, float]) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) pairs named as in the plain Hugging Face model, LoRA merged.

    ``scalings`` is :func:`lora_scalings` of the trained model (empty without LoRA).
    """
    state = {_strip_wrappers(k): v for k, v in state_dict.items()}
    for key, tensor in state.items():
        if ".lora_" in key:
            continue  # folded into the base weight below
        module, _, leaf = key.rpartition(".")
        if module.endswith(".base_layer"):
            owner = module[: -len(".base_layer")]
            lora_a, lora_b = state.get(f"{owner}.lora_A.default.{leaf}"), state.get(f"{owner}.lora_B.default.{leaf}")
            if leaf == "weight" and lora_a is not None and lora_b is not None:
                if owner not in scalings:
                    raise ValueError(f"LoRA weights for {owner} but no scaling for it: pass lora_scalings(model)")
                tensor = merge_lora(tensor, lora_a, lora_b, scalings[owner])
            key = f"{owner}.{leaf}"
        yield key.removeprefix(PEFT_PREFIX), tensor


def _strip_wrappers(name: str) -> str:
    for prefix in WRAPPER_PREFIXES:
        while name.startswith(prefix):
            name = name[len(prefix) :]
    return name
