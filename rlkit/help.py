"""``python -m rlkit --help``: each config group with one line per option.

The template is ``conf/hydra/help/rlkit.yaml``; its ``${rlkit_config_groups:}`` is filled by
:func:`config_groups_help`, which lists the options of every config group on Hydra's search
path (rlkit's own and those of installed plugins) with the first sentence of each preset's
leading comment. No torch, no component import: ``--help`` stays fast.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

#: Groups not listed: Hydra's own.
HIDDEN_GROUPS = ("hydra",)
#: Groups outside the defaults list, chosen with a ``+`` (``+sweep=dpo_beta``, ``+recipe=sft_qwen``).
APPENDED_GROUPS = ("sweep", "recipe")
WIDTH = 100


def register_help_resolver() -> None:
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("rlkit_config_groups", config_groups_help, replace=True)


def config_groups_help(*, _root_: Any = None) -> str:
    """``group=`` lines, each followed by ``  option  description`` lines; a group the
    config does not choose by default (``sweep``, ``recipe``) is shown as ``+group=``."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType
    from omegaconf import OmegaConf

    loader = GlobalHydra.instance().config_loader()
    chosen = set(OmegaConf.select(_root_, "hydra.runtime.choices", default=None) or {})
    lines: list[str] = []
    for group in sorted(loader.list_groups("")):
        if group in HIDDEN_GROUPS:
            continue
        options = loader.get_group_options(group, ObjectType.CONFIG)
        if not options:
            continue
        prefix = f"+{group}" if group in APPENDED_GROUPS else group
        lines.append(f"{prefix}=")
        width = max(len(option) for option in options)
        for option in options:
            text = next((describe(t) for t in _preset_texts(loader, f"{group}/{option}") if describe(t)), "") \
                or schema_description(group, option)
            line = f"  {option:<{width}}  {text}".rstrip()
            lines.append(line if len(line) <= WIDTH else line[: WIDTH - 3] + "...")
    return "\n".join(lines)


def describe(yaml_text: str) -> str:
    """The first sentence of a preset's leading comment (``# @package`` lines skipped): up to
    the first ``. `` or ``; `` outside parentheses."""
    comment: list[str] = []
    for line in yaml_text.splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.startswith("@package"):
            continue
        if not text:
            if comment:
                break
            continue
        comment.append(text)
    sentence = " ".join(comment) + " "
    depth = 0
    for i, char in enumerate(sentence):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and char in ".;" and sentence[i + 1] == " ":
            return sentence[:i]
    return sentence.strip()


def schema_description(group: str, option: str) -> str:
    """For an option that is a component's schema (no YAML): the first sentence of its
    Config's docstring, else of the component class that holds the Config. Schemas are
    torch-free by the registry's contract; an option that cannot be used (a plugin that fails
    to import, a name two packages register) says why."""
    import sys

    from rlkit.config_store import preset_failure
    from rlkit.registry import CONFIG_GROUPS, Registry, RegistryError

    failure = preset_failure(group, option)
    if failure is not None:  # a preset of a config package that fails to import
        return f"UNUSABLE: {failure}"
    kind = next((k for k, g in CONFIG_GROUPS.items() if g == group), None)
    if kind is None:
        return ""
    try:
        registration = Registry(kind).get(option)
        schema = registration.schema()
    except RegistryError as exc:  # named where it is listed, not only where it is used
        return f"UNUSABLE: {exc}"
    target = registration.entry_point.load()  # imported by schema() already
    owner = sys.modules[schema.__module__]
    for part in schema.__qualname__.split(".")[:-1]:  # MlflowLogger.Config -> MlflowLogger
        owner = getattr(owner, part, None)
    for cls in (schema, owner, target):
        doc = vars(cls).get("__doc__") if isinstance(cls, type) else None
        if doc and not doc.startswith(f"{cls.__name__}("):  # not dataclass's generated signature
            first = doc.strip().split("\n\n")[0]
            first = re.sub(r":\w+:`~?([^`]+)`", r"\1", re.sub(r"``([^`]+)``", r"\1", first))
            return describe("\n".join("# " + line.strip() for line in first.splitlines()))
    return ""


def _preset_texts(loader, config_path: str):
    """The YAML text of ``config_path`` in each search-path source that has it."""
    for source in loader.get_sources():
        if not source.is_config(config_path):
            continue
        try:
            if source.scheme() == "pkg":
                yield resources.files(source.path).joinpath(f"{config_path}.yaml").read_text(encoding="utf-8")
            elif source.scheme() == "file":
                yield (Path(source.path) / f"{config_path}.yaml").read_text(encoding="utf-8")
        except OSError:
            continue
