"""From a source's own columns to rlkit's rows and prompts: the settings ``data=files`` and
``data=hf`` share.

    columns: {prompt: question, answer: answer}   # rlkit field -> the source's column
    answer_pattern: '#### (.*)'                   # the reference answer inside the answer field
    system_prompt: Solve step by step.            # a system message before every prompt
    chat: true                                    # plain-string prompts are the user's message
    prompt_template: '{text}\n{test_list}'        # the prompt made from several columns
    metadata: [test, entry_point]                 # columns kept with each prompt sample

Mapping happens before a row is parsed (:mod:`rlkit.data.rows`); the system prompt and the
chat form are applied to the parsed, typed prompt. A row that does not fit raises DataError
naming the config key, the source and the row.
"""

from __future__ import annotations

import re
import string
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable, Iterator, Mapping, Optional

from rlkit.data.base import DataError
from rlkit.data.rows import parse_rows
from rlkit.types import Message, Prompt, Sample, SampleKind

#: ``answer_pattern`` value that takes the content of the last ``\boxed{...}`` (balanced
#: braces, which a regular expression cannot match).
BOXED = "boxed"


@dataclass
class Columns:
    """The source's column for each field of rlkit's rows (:mod:`rlkit.data.rows`); null:
    the field's own name. Several fields may read one column."""

    prompt: Optional[str] = None
    completion: Optional[str] = None
    messages: Optional[str] = None
    answer: Optional[str] = None
    chosen: Optional[str] = None
    rejected: Optional[str] = None
    margin: Optional[str] = None


@dataclass
class RowMapping:
    columns: Columns = field(default_factory=Columns)
    #: Regular expression whose first group is the reference answer, searched in the answer
    #: field (GSM8K: '#### (.*)'), or ``boxed``: the content of its last \boxed{...}.
    answer_pattern: Optional[str] = None
    #: A system message put before every prompt that has none.
    system_prompt: Optional[str] = None
    #: A plain-string prompt becomes the user's message, so it is rendered with the model's
    #: chat template (verbatim when the tokenizer has none). false: the text is used as is.
    chat: bool = True
    #: The prompt made from the source's columns with ``str.format`` (``'{text}\n{test_list}'``;
    #: a list column is its items, one per line); null: the ``prompt`` column.
    prompt_template: Optional[str] = None
    #: Source columns kept, as they are, in each prompt sample's ``metadata`` for rewards and
    #: environments (a code task's unit tests: ``[test, entry_point]``).
    metadata: list[str] = field(default_factory=list)


def check_mapping(mapping: RowMapping) -> None:
    """Fail on an invalid pattern before any row is read."""
    if mapping.answer_pattern and mapping.answer_pattern != BOXED:
        try:
            pattern = re.compile(mapping.answer_pattern)
        except re.error as exc:
            raise ValueError(f"data.answer_pattern {mapping.answer_pattern!r}: invalid regex: {exc}") from None
        if pattern.groups < 1:
            raise ValueError(f"data.answer_pattern {mapping.answer_pattern!r}: needs a group, e.g. '#### (.*)'")
    if mapping.prompt_template is not None:
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(mapping.prompt_template) if name is not None]
        except ValueError as exc:
            raise ValueError(f"data.prompt_template {mapping.prompt_template!r}: {exc}") from None
        if not fields or not all(name.isidentifier() for name in fields):
            raise ValueError(f"data.prompt_template {mapping.prompt_template!r}: needs {{column}} fields naming columns")


def map_row(row: Mapping[str, Any], mapping: RowMapping) -> dict[str, Any]:
    """``row`` with the mapped fields set from their columns and the answer extracted."""
    out = dict(row)
    if mapping.prompt_template is not None:
        out["prompt"] = _format_prompt(row, mapping.prompt_template)
    for name, column in asdict(mapping.columns).items():
        if column is None:
            continue
        if column not in row:
            raise ValueError(f"data.columns.{name}: column {column!r} not found; columns: {', '.join(sorted(row))}")
        out[name] = row[column]
    if mapping.answer_pattern and out.get("answer") is not None:
        out["answer"] = extract_reference(str(out["answer"]), mapping.answer_pattern)
    return out


def _format_prompt(row: Mapping[str, Any], template: str) -> str:
    values = {key: "\n".join(map(str, value)) if isinstance(value, (list, tuple)) else value
              for key, value in row.items()}
    try:
        return template.format_map(values)
    except KeyError as exc:
        raise ValueError(f"data.prompt_template: column {exc.args[0]!r} not found; columns: {', '.join(sorted(row))}") from None


def kept_metadata(row: Mapping[str, Any], mapping: RowMapping) -> dict[str, Any]:
    """The ``data.metadata`` columns of ``row``."""
    missing = [column for column in mapping.metadata if column not in row]
    if missing:
        raise ValueError(f"data.metadata: column {missing[0]!r} not found; columns: {', '.join(sorted(row))}")
    return {column: row[column] for column in mapping.metadata}


def extract_reference(text: str, pattern: str) -> str:
    if pattern == BOXED:
        from rlkit.rewards.math import last_boxed

        found = last_boxed(text)
    else:
        match = re.search(pattern, text, flags=re.DOTALL)
        found = match.group(1) if match else None
    if found is None or not found.strip():
        preview = text if len(text) <= 60 else "..." + text[-57:]
        raise ValueError(f"data.answer_pattern {pattern!r} does not match the answer {preview!r}")
    return found.strip()


def styled_prompt(prompt: Prompt, mapping: RowMapping) -> Prompt:
    """``prompt`` as a user message (``chat``) and after the system prompt, if set."""
    if isinstance(prompt, str):
        if not (mapping.chat or mapping.system_prompt):
            return prompt
        prompt = (Message("user", prompt),)
    if mapping.system_prompt and prompt[0].role != "system":
        prompt = (Message("system", mapping.system_prompt), *prompt)
    return prompt


def parse_mapped_rows(
    numbered_rows: Iterable[tuple[int, Any]], kind: SampleKind, source: str, mapping: RowMapping,
    row_numbers: list[int] | None = None,
) -> list[Sample]:
    """Typed samples of ``kind`` from raw ``(row number, row)`` pairs of ``source``; each
    sample's row number is appended to ``row_numbers`` if given."""
    check_mapping(mapping)
    metadata: list[dict[str, Any]] = []  # per row, in order: parse_rows makes one sample of each

    def mapped() -> Iterator[tuple[int, Any]]:
        for number, row in numbered_rows:
            if row_numbers is not None:
                row_numbers.append(number)
            if isinstance(row, Mapping):
                try:
                    metadata.append(kept_metadata(row, mapping))
                    row = map_row(row, mapping)
                except ValueError as exc:
                    raise DataError(source, number, str(exc)) from None
            yield number, row

    samples = parse_rows(mapped(), kind, source)
    samples = [replace(s, prompt=styled_prompt(s.prompt, mapping)) for s in samples]
    if mapping.metadata and kind == SampleKind.PROMPT:
        samples = [replace(s, metadata={**s.metadata, **kept}) for s, kept in zip(samples, metadata)]
    return samples
