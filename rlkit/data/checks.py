"""Checks of loaded samples against the tokenizer before training: every prompt renders."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from rlkit.data.base import DataError
from rlkit.data.templates import has_chat_template, render_prompt
from rlkit.types import Sample


def check_prompts_render(samples: Sequence[Sample], tokenizer: Any, source: str, model: str,
                         row_numbers: Sequence[int] | None = None) -> None:
    """Raise DataError naming ``source`` and the row of the first prompt the chat template
    cannot render. Templates fail on roles (a system message, turns that do not alternate),
    so each distinct sequence of roles is rendered once."""
    if not has_chat_template(tokenizer):
        return
    seen: set[tuple[str, ...]] = set()
    for index, sample in enumerate(samples):
        if isinstance(sample.prompt, str):
            continue
        roles = tuple(m.role for m in sample.prompt)
        if roles in seen:
            continue
        seen.add(roles)
        try:
            render_prompt(tokenizer, sample.prompt)
        except Exception as exc:  # jinja's TemplateError, or raise_exception() in the template
            row = row_numbers[index] if row_numbers else index + 1
            cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(source, row, f"the chat template of model.name_or_path={model} cannot render this prompt "
                                         f"(roles: {', '.join(roles)}): {cause}") from None


def check_dataset_prompts(dataset: Any, samples: Mapping[str, Sequence[Sample]], tokenizer: Any, model: str) -> None:
    """:func:`check_prompts_render` for each ``split -> samples`` loaded from ``dataset``,
    naming its source (``dataset.source(split)``) and rows (``dataset.row_numbers``) when it
    keeps them."""
    for split, split_samples in samples.items():
        source = dataset.source(split) if hasattr(dataset, "source") else f"data ({type(dataset).__name__}) {split}"
        check_prompts_render(split_samples, tokenizer, source, model, getattr(dataset, "row_numbers", {}).get(split))
