"""``python -m rlkit.new plugin NAME``: write a new plugin package to start from.

    python -m rlkit.new plugin rlkit-acme            # ./rlkit-acme/, package rlkit_acme
    cd rlkit-acme && pip install . && python -m pytest tests

The package holds one component -- a reward, the most common plugin -- laid out as the README's
plugin guide says: its ``Config`` in a torch-free module named by the entry point (so Hydra
checks ``reward=<name> reward.<key>=...`` while composing, without importing torch), the
component class, a preset that extends it (``reward=<name>_strict``), ``package-data`` so the
presets install with a wheel, and a test that runs against the installed package. Swap the
reward for any other kind by changing the entry-point group and the base class.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from pathlib import Path
from string import Template

FILES = {
    "pyproject.toml": '''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "An rlkit plugin: the $name reward and its presets."
requires-python = ">=3.10"
dependencies = ["rlkit"]

# One entry per component, in the group of its kind. It names the component's Config (in a
# module that does not import torch), whose `component` names the class; the entry's name is
# the option of the config group: reward=$name.
[project.entry-points."rlkit.rewards"]
$name = "$package.config:${Class}Config"

# Presets: YAML files in $package/conf/<group>/ are options of rlkit's config groups.
[project.entry-points."rlkit.configs"]
$package = "$package.conf"

[tool.setuptools]
packages = ["$package", "$package.conf"]

# Without this a wheel (pip install .) carries no YAML files, and the presets are missing.
[tool.setuptools.package-data]
"$package.conf" = ["**/*.yaml"]

[tool.pytest.ini_options]
testpaths = ["tests"]
# The tests import the installed package, not this source tree.
addopts = "--import-mode=importlib"
''',
    "README.md": '''\
# $dist

An rlkit plugin: the `$name` reward scores a completion `score` when it
contains `keyword`.

    pip install .
    python -m rlkit algo=grpo reward=$name reward.keyword=answer     # the component's defaults, overridden
    python -m rlkit algo=grpo reward=${name}_strict                  # a preset (conf/reward/${name}_strict.yaml)
    python -m rlkit.registry --check                                 # imports every component and preset
    python -m pytest tests
''',
    "$package/__init__.py": '''\
"""The $name reward for rlkit."""
''',
    "$package/config.py": '''\
"""The components' schemas. This module must not import torch: Hydra loads it while composing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rlkit.rewards.base import PerSampleReward
from rlkit.schema import at_least


@dataclass
class ${Class}Config(PerSampleReward.Config):
    component: ClassVar[str] = "$package.reward:${Class}Reward"

    #: Text a completion must contain.
    keyword: str = "so"
    #: Score of a completion that contains it (0 otherwise).
    score: float = 1.0
    #: Completions longer than this many characters score 0 (0: no limit).
    max_chars: int = field(default=0, metadata=at_least(0))
''',
    "$package/reward.py": '''\
"""The $name reward: ``score`` for completions that contain ``keyword``."""

from __future__ import annotations

from rlkit.rewards.base import PerSampleReward
from rlkit.types import Completion, PromptSample
from $package.config import ${Class}Config


class ${Class}Reward(PerSampleReward):
    Config = ${Class}Config
    config: ${Class}Config

    def score(self, sample: PromptSample, completion: Completion) -> float:
        text = completion.text
        if self.config.max_chars and len(text) > self.config.max_chars:
            return 0.0
        return self.config.score if self.config.keyword in text else 0.0
''',
    "$package/conf/__init__.py": "",
    "$package/conf/reward/${name}_strict.yaml": '''\
# reward=${name}_strict: the $name reward for short completions only. A preset starts from its
# component's option (the Config's defaults) and states only what it changes.
defaults:
  - $name
  - _self_

max_chars: 64
''',
    "tests/test_$package.py": '''\
"""The plugin as rlkit sees it once installed: registry, schema, presets, scores."""

from __future__ import annotations

from hydra import compose, initialize_config_module

from rlkit.config import check_config, register_with_hydra
from rlkit.registry import Registry, config_packages
from rlkit.types import Completion, PromptSample
from $package.reward import ${Class}Reward


def completion(text: str) -> Completion:
    return Completion(prompt_index=0, token_ids=[], text=text, logprobs=[], truncated=False)


def compose_reward(overrides: list[str]):
    register_with_hydra()
    with initialize_config_module(config_module="rlkit.conf", version_base="1.3"):
        return check_config(compose("config", overrides=["algo=grpo", *overrides])).reward


def test_registered_with_its_schema():
    registration = Registry("rewards").get("$name")
    assert registration.provider.startswith("$dist ")
    assert registration.component() is ${Class}Reward
    assert registration.schema() is ${Class}Reward.Config


def test_presets_are_installed_and_extend_the_component():
    [package] = [p for p in config_packages() if p.package == "$package.conf"]
    assert package.presets == ["reward/${name}_strict"]
    strict = compose_reward(["reward=${name}_strict"])
    assert strict["name"] == "$name" and strict["max_chars"] == 64 and strict["keyword"] == "so"
    assert compose_reward(["reward=$name", "reward.keyword=answer"])["keyword"] == "answer"


def test_scores():
    reward = ${Class}Reward(${Class}Reward.Config(keyword="so", max_chars=16))
    samples = [PromptSample("What is 47 + 38?", answer="85")] * 3
    out = reward(samples, [completion("so 85"), completion("85"), completion("so " + "8" * 20)])
    assert out.scores == [1.0, 0.0, 0.0]
''',
}


def names(dist: str) -> dict[str, str]:
    """``rlkit-acme`` -> package ``rlkit_acme``, option ``acme``, classes ``Acme...``."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", dist):
        raise ValueError(f"plugin name {dist!r}: use letters, digits, '-' and '_', starting with a letter")
    package = dist.replace("-", "_").lower()
    name = package.removeprefix("rlkit_") or package
    if keyword.iskeyword(package) or keyword.iskeyword(name):
        raise ValueError(f"plugin name {dist!r} makes a Python keyword; choose another")
    return {"dist": dist, "package": package, "name": name, "Class": "".join(p.title() for p in name.split("_"))}


def write_plugin(dist: str, parent: Path) -> Path:
    """Write the package into ``parent/dist`` (which must not exist) and return its path."""
    values = names(dist)
    root = parent / dist
    if root.exists():
        raise FileExistsError(f"{root} already exists")
    for path, text in FILES.items():
        target = root / Template(path).substitute(values)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(Template(text).substitute(values))
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlkit.new", description=__doc__.split("\n\n")[0])
    kinds = parser.add_subparsers(dest="what", required=True)
    plugin = kinds.add_parser("plugin", help="a plugin package with a component, presets and a test")
    plugin.add_argument("name", help="distribution name, e.g. rlkit-acme (package rlkit_acme, reward=acme)")
    plugin.add_argument("--dir", type=Path, default=Path("."), help="where to create it (default: here)")
    args = parser.parse_args(argv)
    try:
        root = write_plugin(args.name, args.dir)
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    values = names(args.name)
    print(f"wrote {root}: reward={values['name']} and preset reward={values['name']}_strict\n"
          f"next: pip install {root} && python -m pytest {root}/tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
