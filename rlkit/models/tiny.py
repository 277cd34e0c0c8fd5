"""The built-in tiny model: a small Llama-style network and a locally trained tokenizer.

Nothing is downloaded. The model and tokenizer are written to a cache directory with
``save_pretrained`` and then loaded back with ``from_pretrained``, so the tiny model takes
exactly the code path of any Hugging Face checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from rlkit.config import TinyModelConfig

BUILTIN_PREFIX = "builtin:"
SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _tokenizer_corpus() -> list[str]:
    """Text the BPE merges are learned from: English words and arithmetic phrasing."""
    words = (
        "the answer is what compute calculate add subtract plus minus equals sum difference "
        "question result number solve step first then so final correct wrong yes no and of to "
        "a an in is it this that with for on are be by as at from or not"
    ).split()
    lines = [" ".join(words[i : i + 7]) for i in range(0, len(words), 3)]
    lines += [f"What is {a} + {b}? The answer is {a + b}." for a in range(0, 100, 7) for b in range(3, 100, 11)]
    lines += [f"{a} - {b} = {a - b}" for a in range(0, 100, 9) for b in range(0, 100, 13)]
    return lines * 4


def build_tokenizer(vocab_size: int):
    """A byte-level BPE tokenizer with single-digit tokens (as in Llama) and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Digits are split one by one so that numbers of any length share the same tokens.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|pad|>",
        eos_token="<|end|>",
        additional_special_tokens=SPECIAL_TOKENS[2:],
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
    )


def build_model(config: TinyModelConfig, vocab_size: int, pad_token_id: int, eos_token_id: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        max_position_embeddings=config.max_position_embeddings,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        return LlamaForCausalLM(llama)


def cache_root() -> Path:
    return Path(os.environ.get("RLKIT_CACHE", Path.home() / ".cache" / "rlkit"))


def is_builtin(name_or_path: str) -> bool:
    """A built-in model: ``builtin:...``, or a model rlkit trained into its cache from one
    (the warm start, rlkit.models.warm_start)."""
    if name_or_path.startswith(BUILTIN_PREFIX):
        return True
    return Path(name_or_path).resolve().is_relative_to((cache_root() / "models").resolve())


def materialize(name: str, config: TinyModelConfig) -> Path:
    """Directory holding the saved built-in model ``name`` (``builtin:tiny``), created once.

    The directory is keyed by the config, written to a temporary sibling and renamed into
    place, so concurrent runs and interrupted writes never see a partial model.
    """
    if name != f"{BUILTIN_PREFIX}tiny":
        raise ValueError(f"unknown built-in model {name!r}; built-in models: {BUILTIN_PREFIX}tiny")
    key = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:16]
    target = cache_root() / "models" / f"tiny-{key}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tiny-"))
    try:
        tokenizer = build_tokenizer(config.vocab_size)
        model = build_model(config, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:  # another process won the race; its copy is identical
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
