"""Turning a ``Prompt`` into the text a model is conditioned on."""

from __future__ import annotations

from typing import Any

from rlkit.types import Prompt


def render_prompt(tokenizer: Any, prompt: Prompt) -> str:
    """The text of ``prompt``: raw strings verbatim, chat messages through the chat template.

    Chat prompts end with the generation prompt (e.g. the assistant header), so the
    model's continuation is the assistant's reply.
    """
    if isinstance(prompt, str):
        return prompt
    messages = [{"role": m.role, "content": m.content} for m in prompt]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode_prompt(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Token ids of ``prompt`` as every stage sees them (generation, training, scoring).

    A chat template already writes its special tokens (BOS, headers) into the text; a raw
    prompt gets the tokenizer's usual ones, as in a plain ``tokenizer(text)`` call.
    """
    return tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=isinstance(prompt, str))["input_ids"]
