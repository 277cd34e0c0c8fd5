"""Random-init tiny models of the architectures users bring, with locally built tokenizers
that carry each family's real special tokens and chat template (ChatML, Llama-3 headers,
Mistral [INST], Gemma turns, Phi-3 tags). Nothing is downloaded.

    build_family("qwen2", directory)  # config.json, model.safetensors, tokenizer files
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CHATML = (
    "{%- for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)
QWEN2_CHATML = (  # Qwen2/2.5: a default system message when the conversation has none
    "{%- if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}" + CHATML
)
LLAMA3 = (
    "{{- bos_token }}{%- for m in messages %}"
    "{{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
MISTRAL = (  # v0.1/v0.2: user and assistant turns only, a system message raises
    "{{ bos_token }}{% for m in messages %}"
    "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
    "{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}"
)
GEMMA2 = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + m['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
GEMMA3 = (  # the system message is put before the first user turn
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"
    "{%- set prefix = messages[0]['content'] + '\\n\\n' -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set prefix = '' -%}{%- set turns = messages -%}{%- endif -%}"
    "{%- for m in turns -%}{%- set role = 'model' if m['role'] == 'assistant' else m['role'] -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (prefix if loop.first else '') + m['content'] | trim + '<end_of_turn>\\n' }}"
    "{%- endfor -%}{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)
PHI3 = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '<|end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
)


@dataclass(frozen=True)
class Family:
    config_class: str  # a transformers config class
    chat_template: str
    specials: dict[str, str | None]  # bos/eos/pad tokens
    extra_tokens: tuple[str, ...] = ()
    #: Tokens that end an assistant turn besides eos (generation_config.eos_token_id).
    end_of_turn: tuple[str, ...] = ()
    config: dict = field(default_factory=dict)
    #: LoRA target modules (Phi-3 fuses q/k/v into one projection).
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


FAMILIES = {
    "qwen2": Family("Qwen2Config", QWEN2_CHATML, {"bos": None, "eos": "<|im_end|>", "pad": "<|endoftext|>"},
                    ("<|im_start|>",)),
    "qwen3": Family("Qwen3Config", CHATML, {"bos": None, "eos": "<|im_end|>", "pad": "<|endoftext|>"},
                    ("<|im_start|>", "<think>", "</think>"), config={"head_dim": 16}),
    "llama3": Family("LlamaConfig", LLAMA3, {"bos": "<|begin_of_text|>", "eos": "<|eot_id|>", "pad": None},
                     ("<|start_header_id|>", "<|end_header_id|>", "<|end_of_text|>"), config={"rope_theta": 500000.0}),
    "mistral": Family("MistralConfig", MISTRAL, {"bos": "<s>", "eos": "</s>", "pad": None}, ("[INST]", "[/INST]"),
                      config={"sliding_window": None}),
    "gemma2": Family("Gemma2Config", GEMMA2, {"bos": "<bos>", "eos": "<eos>", "pad": "<pad>"},
                     ("<start_of_turn>",), ("<end_of_turn>",),
                     config={"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 64}),
    "gemma3": Family("Gemma3TextConfig", GEMMA3, {"bos": "<bos>", "eos": "<eos>", "pad": "<pad>"},
                     ("<start_of_turn>",), ("<end_of_turn>",),
                     config={"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 64}),
    "phi3": Family("Phi3Config", PHI3, {"bos": "<s>", "eos": "<|end|>", "pad": "<|endoftext|>"},
                   ("<|system|>", "<|user|>", "<|assistant|>"), config={"original_max_position_embeddings": 512},
                   lora_targets=("qkv_proj", "o_proj")),
}


def _corpus() -> list[str]:
    words = ("the answer is what how many apples does he have tom buys more solve step first then so "
             "final colour name blue red hello hi there help you it".split())
    lines = [" ".join(words[i: i + 6]) for i in range(0, len(words), 2)]
    lines += [f"What is {a} + {b}? The answer is {a + b}. #### {a + b}" for a in range(0, 30, 3) for b in range(0, 30, 7)]
    return lines * 3


def build_family(name: str, directory: Path, max_position_embeddings: int = 512, vocab_size: int = 400,
                 **config_overrides) -> Path:
    """Save a random-init tiny ``name`` model and its tokenizer in ``directory`` (``config_overrides``
    replace fields of the family's model config)."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, GenerationConfig, PreTrainedTokenizerFast

    family = FAMILIES[name]
    specials = [t for t in family.specials.values() if t] + list(family.extra_tokens) + list(family.end_of_turn)
    specials = list(dict.fromkeys(specials))
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(_corpus(), trainer=trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    bos, eos, pad = (family.specials[k] for k in ("bos", "eos", "pad"))
    if bos:  # families with a BOS token prepend it to plain text, as their real tokenizers do
        from tokenizers import processors

        bpe.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bpe.token_to_id(bos))])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=bos, eos_token=eos, pad_token=pad, chat_template=family.chat_template,
        additional_special_tokens=[t for t in specials if t not in (bos, eos, pad)], model_max_length=max_position_embeddings)
    config_class = getattr(transformers, family.config_class)
    config = config_class(**{
        "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": max_position_embeddings,
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id, **family.config, **config_overrides})
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config)
    stop_ids = [tokenizer.eos_token_id, *tokenizer.convert_tokens_to_ids(list(family.end_of_turn))]
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=stop_ids,
                                               pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
