"""Turning raw rows (dicts from JSONL, Parquet or a Hugging Face dataset) into typed samples.

Accepted row shapes:

* SFT: ``{"prompt": P, "completion": str}`` or ``{"messages": [...]}`` whose last message
  is the assistant's (earlier turns become the prompt); optional ``"answer"``.
* Preference: ``{"prompt": P, "chosen": C, "rejected": C}`` with C a string or a single
  assistant message (``[{"role": "assistant", "content": ...}]``); optional ``"margin"``.
  Or ``chosen`` and ``rejected`` as whole conversations (HH-RLHF, UltraFeedback-binarized):
  their shared turns before the last are the prompt (a ``"prompt"`` field is then ignored).
* Prompt: ``{"prompt": P}`` or ``{"messages": [...]}``; optional ``"answer"``.

P is a string or a list of ``{"role", "content"}`` messages. Problems raise ValueError
with a message the caller prefixes with the file and row.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping

from rlkit.data.base import DataError
from rlkit.types import Message, PreferenceSample, Prompt, PromptSample, Sample, SampleKind, SFTSample

ROLES = ("system", "user", "assistant", "tool")


def parse_messages(value: Any, field: str) -> tuple[Message, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"'{field}' must be a non-empty list of messages")
    messages = []
    for i, m in enumerate(value):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise ValueError(f"'{field}[{i}]' must have 'role' and 'content'")
        if m["role"] not in ROLES:
            raise ValueError(f"'{field}[{i}]' has unknown role {m['role']!r}; roles: {', '.join(ROLES)}")
        if not isinstance(m["content"], str):
            raise ValueError(f"'{field}[{i}].content' must be a string")
        messages.append(Message(m["role"], m["content"]))
    return tuple(messages)


def parse_prompt(value: Any, field: str = "prompt") -> Prompt:
    if isinstance(value, str):
        if not value:
            raise ValueError(f"'{field}' is empty")
        return value
    messages = parse_messages(value, field)
    if messages[-1].role == "assistant":
        raise ValueError(f"'{field}' must not end with an assistant message")
    return messages


def _text(row: Mapping, field: str) -> str:
    value = row.get(field)
    if isinstance(value, (list, tuple)):
        messages = parse_messages(value, field)
        if len(messages) != 1 or messages[0].role != "assistant":
            raise ValueError(f"'{field}' as messages must be exactly one assistant message")
        value = messages[0].content
    if not isinstance(value, str) or not value:
        raise ValueError(f"'{field}' must be a non-empty string, got {value!r}")
    return value


def _answer(row: Mapping) -> str | None:
    answer = row.get("answer")
    if answer is None:
        return None
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        raise ValueError(f"'answer' must be a string or a number, got {answer!r}")
    return str(answer)


def _split_conversation(row: Mapping) -> tuple[tuple[Message, ...], Message]:
    messages = parse_messages(row["messages"], "messages")
    if messages[-1].role != "assistant":
        raise ValueError("'messages' must end with an assistant message")
    if len(messages) < 2:
        raise ValueError("'messages' needs at least one message before the assistant's")
    return messages[:-1], messages[-1]


def _require(row: Mapping, *fields: str) -> None:
    missing = [f for f in fields if f not in row or row[f] is None]
    if missing:
        keys = ", ".join(f"data.columns.{f}=<column>" for f in missing)
        raise ValueError(f"missing field(s) {', '.join(repr(f) for f in missing)}; got {sorted(row)} (map them: {keys})")


def parse_sft(row: Mapping) -> SFTSample:
    if "messages" in row and row["messages"] is not None:
        prompt, reply = _split_conversation(row)
        return SFTSample(prompt, reply.content, _answer(row))
    _require(row, "prompt", "completion")
    return SFTSample(parse_prompt(row["prompt"]), _text(row, "completion"), _answer(row))


def _shared_prefix_pair(row: Mapping) -> Mapping:
    """A pair of whole conversations (HH-RLHF, UltraFeedback-binarized) as prompt + replies:
    the turns before the last are the prompt, and must be the same in both."""
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if not (isinstance(chosen, (list, tuple)) and isinstance(rejected, (list, tuple))):
        return row
    if len(chosen) < 2 and len(rejected) < 2:
        return row
    chosen_turns, rejected_turns = parse_messages(chosen, "chosen"), parse_messages(rejected, "rejected")
    if chosen_turns[:-1] != rejected_turns[:-1]:
        raise ValueError("'chosen' and 'rejected' conversations differ before their last message")
    if len(chosen_turns) < 2:
        raise ValueError("'chosen' as a conversation needs a turn before the assistant's reply")
    prompt = [{"role": m.role, "content": m.content} for m in chosen_turns[:-1]]
    return {**row, "prompt": prompt, "chosen": chosen[-1:], "rejected": rejected[-1:]}


def parse_preference(row: Mapping) -> PreferenceSample:
    row = _shared_prefix_pair(row)
    _require(row, "prompt", "chosen", "rejected")
    margin = row.get("margin")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin)):
        raise ValueError(f"'margin' must be a finite number, got {margin!r}")
    chosen, rejected = _text(row, "chosen"), _text(row, "rejected")
    if chosen == rejected:
        # The pair carries no preference: every loss term would be zero or constant.
        raise ValueError(f"'chosen' and 'rejected' are the same text ({chosen[:40]!r}); a pair must differ")
    return PreferenceSample(parse_prompt(row["prompt"]), chosen, rejected, None if margin is None else float(margin))


def parse_prompt_row(row: Mapping) -> PromptSample:
    if "messages" in row and row["messages"] is not None:
        return PromptSample(parse_prompt(row["messages"], "messages"), _answer(row))
    _require(row, "prompt")
    return PromptSample(parse_prompt(row["prompt"]), _answer(row))


PARSERS: dict[SampleKind, Callable[[Mapping], Sample]] = {
    SampleKind.SFT: parse_sft,
    SampleKind.PREFERENCE: parse_preference,
    SampleKind.PROMPT: parse_prompt_row,
}


def parse_rows(numbered_rows: Iterable[tuple[int, Any]], kind: SampleKind, source: str) -> list[Sample]:
    """Validate every ``(row number, row)``; the first bad row raises DataError naming
    ``source`` and its number."""
    parse = PARSERS[SampleKind(kind)]
    samples = []
    for number, row in numbered_rows:
        if not isinstance(row, Mapping):
            raise DataError(source, number, f"expected a JSON object, got {type(row).__name__}")
        try:
            samples.append(parse(row))
        except ValueError as exc:
            raise DataError(source, number, str(exc)) from None
    return samples
