"""Loading policies, references and tokenizers from a local path, a hub id or ``builtin:``.

Every model, the built-in tiny one included, is read with ``from_pretrained``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedTokenizerBase,
)

from rlkit.config import LoraConfig, ModelConfig
from rlkit.models.tiny import BUILTIN_PREFIX, materialize

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_path(config: ModelConfig) -> str:
    """Where ``from_pretrained`` reads the model: the built-in model's cache dir or the given id."""
    if config.name_or_path.startswith(BUILTIN_PREFIX):
        return str(materialize(config.name_or_path, config.tiny))
    return checked_location(config.name_or_path, "model.name_or_path")


def checked_location(name_or_path: str, key: str) -> str:
    """``name_or_path`` when it is an existing directory or could be a hub id; a name that
    can only be a local path (``/...``, ``./...``, ``~/...``, two or more ``/``) and does
    not exist raises ``FileNotFoundError`` naming ``key`` and the directory."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise NotADirectoryError(f"{key}: {name_or_path} is a file, not a model directory")
        return str(path)
    looks_local = name_or_path.startswith(("/", ".", "~"))
    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        looks_local = True
    if looks_local:
        raise FileNotFoundError(f"{key}: directory not found: {name_or_path}")
    return name_or_path


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"model.dtype: unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[name]


def load_tokenizer(config: ModelConfig) -> PreTrainedTokenizerBase:
    path = checked_location(config.tokenizer, "model.tokenizer") if config.tokenizer else resolve_path(config)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=config.trust_remote_code)
    if tokenizer.pad_token is None:
        # Padding positions are always masked, so any token id serves; EOS is the usual choice.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


#: ``Algorithm.model_kind`` -> (transformers auto class, extra ``from_pretrained``
#: arguments, peft task type). ``sequence_classification`` is a scalar head (one label)
#: on any causal LM checkpoint, read at each row's last token that is not padding.
#: ``token_classification`` is a scalar per token (PPO's value model), with no dropout.
MODEL_KINDS = {
    "causal_lm": (AutoModelForCausalLM, {}, "CAUSAL_LM"),
    "sequence_classification": (AutoModelForSequenceClassification, {"num_labels": 1}, "SEQ_CLS"),
    "token_classification": (AutoModelForTokenClassification, {}, "TOKEN_CLS"),
}


def load_model(
    config: ModelConfig, kind: str = "causal_lm", path: str | None = None, pad_token_id: int | None = None
) -> nn.Module:
    """The trained model as configured: dtype, gradient checkpointing and LoRA applied.

    ``kind`` is a key of :data:`MODEL_KINDS`. A ``sequence_classification`` model finds
    each row's last real token by its config's pad id, so ``pad_token_id`` (the
    tokenizer's) is required for it and written there; it saves in the Hugging Face
    sequence-classification format.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; kinds: {', '.join(MODEL_KINDS)}")
    auto_class, extra, peft_task = MODEL_KINDS[kind]
    kwargs = {"dtype": torch_dtype(config.dtype), "trust_remote_code": config.trust_remote_code, **extra}
    if config.attn_implementation:
        kwargs["attn_implementation"] = config.attn_implementation
    if kind == "sequence_classification":
        if pad_token_id is None:
            raise ValueError("a sequence-classification model needs the tokenizer's pad_token_id")
        kwargs["pad_token_id"] = pad_token_id
    path = path or resolve_path(config)
    if kind == "token_classification":
        # One label; dropout before the head off (it defaults to 0.1 and would make values noisy).
        head = AutoConfig.from_pretrained(path, num_labels=1, trust_remote_code=config.trust_remote_code)
        head.classifier_dropout = 0.0
        kwargs["config"] = head
    model = auto_class.from_pretrained(path, **kwargs)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if config.lora.enabled:
        model = add_lora(model, config.lora, peft_task)
    return model


def load_causal_lm(config: ModelConfig, path: str | None = None) -> nn.Module:
    """The policy as configured: dtype, gradient checkpointing and LoRA adapters applied."""
    return load_model(config, "causal_lm", path)


def add_lora(model: nn.Module, config: LoraConfig, task_type: str = "CAUSAL_LM") -> nn.Module:
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_config = PeftLoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        task_type=task_type,
    )
    return get_peft_model(model, peft_config)


def is_lora(model: nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def frozen_copy(model: nn.Module) -> nn.Module:
    """An independent copy in eval mode with gradients off (a reference policy)."""
    ref = copy.deepcopy(model).eval()
    ref.requires_grad_(False)
    return ref


def export_pretrained(model: nn.Module, tokenizer: PreTrainedTokenizerBase, directory: Path) -> None:
    """Write a plain Hugging Face checkpoint (LoRA adapters merged into the weights)."""
    if is_lora(model):
        model = copy.deepcopy(model).merge_and_unload()
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)


def save_adapter(model: nn.Module, directory: Path) -> None:
    """LoRA weights only, to resume training (the exported model has them merged)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()},
              directory / "adapter_model.safetensors")


def load_adapter(model: nn.Module, directory: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(directory / "adapter_model.safetensors"))
