"""Turning a ``Prompt`` into the text a model is conditioned on."""

from __future__ import annotations

from typing import Any

from rlkit.types import Prompt


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer: Any, prompt: Prompt) -> str:
    """The text of ``prompt``: raw strings verbatim, chat messages through the chat template.

    Chat prompts end with the generation prompt (e.g. the assistant header), so the
    model's continuation is the assistant's reply. A tokenizer without a chat template (a
    base model's) gets the messages' contents, one paragraph each.
    """
    if isinstance(prompt, str):
        return prompt
    if not has_chat_template(tokenizer):
        return "\n\n".join(m.content for m in prompt)
    messages = [{"role": m.role, "content": m.content} for m in prompt]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode_prompt(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Token ids of ``prompt`` as every stage sees them (generation, training, scoring).

    A chat template already writes its special tokens (BOS, headers) into the text; a raw
    (or untemplated) prompt gets the tokenizer's usual ones, as in a plain ``tokenizer(text)`` call.
    """
    templated = not isinstance(prompt, str) and has_chat_template(tokenizer)
    return tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=not templated)["input_ids"]
