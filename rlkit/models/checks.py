"""Checks of a configured model before anything is trained: its context length against the
algorithm's lengths, and the tiny demo's training settings left on a real model.

Both read only the model's ``config.json`` (no weights), so they fail or warn in a second.
"""

from __future__ import annotations

from typing import Any, Mapping

from rlkit.config import ModelConfig, TrainerConfig
from rlkit.models.tiny import is_builtin

#: config.json keys that hold a model's context length, by family.
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")

#: Training settings of the built-in demo (conf/config.yaml, TrainerConfig) that a real model
#: should not keep: key -> (value is tiny-scale when, what real models use).
_TINY_SCALE = {
    "lr": (lambda v: v >= 1e-4, "1e-6..2e-5"),
    "eval_max_new_tokens": (lambda v: v <= 32, "256-1024 for worked answers"),
}


def context_length(model_dir_or_id: str, trust_remote_code: bool = False) -> int | None:
    """The model's maximum positions from its config, or None if it states none."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir_or_id, trust_remote_code=trust_remote_code)
    config = getattr(config, "text_config", None) or config  # multimodal wrappers
    for key in _CONTEXT_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_context_length(model: ModelConfig, path: str, algo: Mapping[str, Any]) -> None:
    """Raise a one-line ValueError when ``algo.max_length`` (or, for online algorithms,
    ``algo.sampling.max_new_tokens``) does not fit the model's positions."""
    positions = context_length(path, model.trust_remote_code)
    if positions is None:
        return
    lengths = {"algo.max_length": algo.get("max_length")}
    sampling = algo.get("sampling") or {}
    lengths["algo.sampling.max_new_tokens"] = sampling.get("max_new_tokens")
    for key, value in lengths.items():
        if isinstance(value, int) and value > positions:
            raise ValueError(f"{key}={value} exceeds the {positions} positions of model.name_or_path={model.name_or_path} "
                             f"(its max_position_embeddings); set {key}<={positions}")


def tiny_defaults_warning(model: ModelConfig, trainer: TrainerConfig) -> str | None:
    """One line when a real model (not ``builtin:`` or its warm start) trains with the demo's
    tiny-model settings."""
    if is_builtin(model.name_or_path):
        return None
    kept = [f"trainer.{key}={getattr(trainer, key)} (real models: {advice})"
            for key, (is_tiny, advice) in _TINY_SCALE.items() if is_tiny(getattr(trainer, key))]
    if not kept:
        return None
    return (f"model.name_or_path={model.name_or_path} trains with the tiny demo's settings: {', '.join(kept)}; "
            "start from a recipe (+recipe=sft_qwen, +recipe=grpo_gsm8k_qwen, +recipe=dpo_ultrafeedback) or set them")
