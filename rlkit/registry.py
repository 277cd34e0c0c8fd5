"""Entry-point registries, one per component kind, and the plugins' config packages.

rlkit registers its own built-ins through the same entry-point groups as third-party
packages (see pyproject.toml), so a plugin is never a second-class citizen. Nothing is
imported until a component is asked for by name.

An entry point names either the component class (its ``Config`` is the schema) or the
component's ``Config`` dataclass, whose ``component`` class attribute (``"module:Class"``)
names the class. The second form lets Hydra check a config against the schema without
importing the component's module (and torch with it): ``Registration.schema`` loads only
the Config, ``Registration.component`` the class.

Errors are raised where a name is used, never where it is merely listed: an unknown name
lists the known ones, a name that two packages register names both packages, and an entry
that fails to import names its package and the cause. A broken or duplicate plugin
therefore breaks only the runs that use it. ``python -m rlkit.registry --check`` imports
every entry and reports every problem.

    python -m rlkit.registry            # every registered component, by group, with its provider
    python -m rlkit.registry --check    # also import everything; exit 1 on any problem
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass, is_dataclass
from functools import cached_property
from importlib import resources
from importlib.metadata import EntryPoint, entry_points

#: Component kind (entry-point group ``rlkit.<kind>``) -> the config group that chooses one.
CONFIG_GROUPS = {
    "algorithms": "algo",
    "backends": "backend",
    "generators": "generator",
    "rewards": "reward",
    "datasets": "data",
    "loggers": "logger",
    "environments": "env",
}
GROUPS = tuple(CONFIG_GROUPS)
#: Entry-point group of the packages whose YAML files are presets of the config groups.
CONFIGS_GROUP = "rlkit.configs"


class RegistryError(LookupError):
    """A component that cannot be resolved: unknown, ambiguous, or broken."""


def provider_of(entry_point: EntryPoint) -> str:
    dist = entry_point.dist
    return f"{dist.name} {dist.version}" if dist is not None else "<unknown distribution>"


def import_object(path: str) -> object:
    """The object at ``"package.module:Qual.Name"``."""
    module, _, qualname = path.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def is_schema(obj: object) -> bool:
    """A Config dataclass that names its component (an entry point of the second form)."""
    return isinstance(obj, type) and is_dataclass(obj) and isinstance(getattr(obj, "component", None), str)


@dataclass(frozen=True)
class Registration:
    kind: str
    name: str
    entry_point: EntryPoint

    @property
    def provider(self) -> str:
        return provider_of(self.entry_point)

    def _failed(self, what: str, exc: BaseException) -> RegistryError:
        return RegistryError(
            f"{self.kind[:-1]} {self.name!r} from {self.provider} ({what}) failed to import: "
            f"{type(exc).__name__}: {exc}"
        )

    def target(self) -> object:
        """What the entry point names: the component class or its Config dataclass."""
        try:
            return self.entry_point.load()
        except Exception as exc:  # any import-time failure of a plugin is reported the same way
            raise self._failed(self.entry_point.value, exc) from exc

    def schema(self) -> type:
        """The component's Config dataclass (imports only the Config's module when the entry
        point names it)."""
        target = self.target()
        if is_schema(target):
            return target
        config = getattr(target, "Config", None)
        if not (isinstance(config, type) and is_dataclass(config)):
            raise RegistryError(
                f"{self.kind[:-1]} {self.name!r} from {self.provider} ({self.entry_point.value}) has no "
                "Config dataclass: the entry point must name a component class with a Config, or a Config "
                "dataclass with a `component` class attribute"
            )
        return config

    def component(self) -> type:
        """The component class."""
        target = self.target()
        if not is_schema(target):
            return target
        try:
            return import_object(target.component)
        except Exception as exc:
            raise self._failed(target.component, exc) from exc


class Registry:
    """The components of one kind, e.g. ``Registry("rewards")`` reads ``rlkit.rewards``."""

    def __init__(self, kind: str):
        if kind not in GROUPS:
            raise ValueError(f"unknown component kind {kind!r}; kinds: {', '.join(GROUPS)}")
        self.kind = kind
        self.group = f"rlkit.{kind}"

    @cached_property
    def candidates(self) -> dict[str, list[Registration]]:
        """Name -> every registration of it (more than one: a conflict, reported on use)."""
        found: dict[str, list[Registration]] = {}
        for ep in _unique(entry_points(group=self.group)):
            found.setdefault(ep.name, []).append(Registration(self.kind, ep.name, ep))
        return found

    def names(self) -> list[str]:
        return sorted(self.candidates)

    def duplicates(self) -> dict[str, list[Registration]]:
        return {name: regs for name, regs in self.candidates.items() if len(regs) > 1}

    def get(self, name: str) -> Registration:
        regs = self.candidates.get(name)
        if not regs:
            known = ", ".join(self.names()) or "none"
            raise RegistryError(f"unknown {self.kind[:-1]} {name!r}; registered {self.kind}: {known}")
        if len(regs) > 1:
            both = " and by ".join(f"{reg.provider} ({reg.entry_point.value})" for reg in regs)
            raise RegistryError(
                f"{self.kind[:-1]} {name!r} is registered twice: by {both}; uninstall one of the packages"
            )
        return regs[0]

    def load(self, name: str) -> type:
        """The component class registered as ``name``."""
        return self.get(name).component()

    def schema(self, name: str) -> type:
        """The Config dataclass of the component registered as ``name``."""
        return self.get(name).schema()


def _unique(eps) -> list[EntryPoint]:
    """Drop exact repeats that appear when one distribution is visible twice on sys.path
    (an editable install next to its source tree): same name, same target, same dist."""
    seen, out = set(), []
    for ep in eps:
        key = (ep.name, ep.value, ep.dist.name if ep.dist else None)
        if key not in seen:
            seen.add(key)
            out.append(ep)
    return out


# ------------------------------------------------------------------ config packages


@dataclass(frozen=True)
class ConfigPackage:
    """A package listed in ``rlkit.configs``: its ``<group>/<name>.yaml`` files are presets."""

    entry_point: EntryPoint

    @property
    def package(self) -> str:
        return self.entry_point.value

    @property
    def provider(self) -> str:
        return provider_of(self.entry_point)

    @cached_property
    def import_error(self) -> BaseException | None:
        """Why the package cannot be imported (e.g. its plugin's ``__init__`` raises), or None."""
        try:
            importlib.import_module(self.package)
        except Exception as exc:
            return exc
        return None

    def failure(self) -> RegistryError | None:
        exc = self.import_error
        if exc is None:
            return None
        return RegistryError(
            f"config package {self.package} from {self.provider} failed to import: {type(exc).__name__}: {exc}"
        )

    @cached_property
    def presets(self) -> list[str]:
        """``group/name`` of every YAML preset, e.g. ``reward/brevity`` (read from the
        installed files when the package cannot be imported)."""
        if self.import_error is None:
            found = []

            def walk(node, prefix: str) -> None:
                for child in node.iterdir():
                    if child.is_dir() and child.name != "__pycache__":
                        walk(child, f"{prefix}{child.name}/")
                    elif child.name.endswith(".yaml"):
                        found.append(prefix + child.name[: -len(".yaml")])

            walk(resources.files(self.package), "")
            return sorted(found)
        dist = self.entry_point.dist
        root = self.package.replace(".", "/") + "/"
        files = (dist.files or []) if dist is not None else []
        return sorted(
            str(f)[len(root) : -len(".yaml")] for f in files if str(f).startswith(root) and str(f).endswith(".yaml")
        )


def config_packages() -> list[ConfigPackage]:
    return [ConfigPackage(ep) for ep in _unique(entry_points(group=CONFIGS_GROUP))]


# ------------------------------------------------------------------ the CLI


def describe() -> str:
    """Every registered component by kind; names registered twice are marked."""
    lines = []
    for kind in GROUPS:
        lines.append(f"{kind}:")
        candidates = Registry(kind).candidates
        if not candidates:
            lines.append("  (none)")
        width = max((len(n) for n in candidates), default=0)
        for name in sorted(candidates):
            regs = candidates[name]
            for reg in regs:
                mark = "  DUPLICATE: fails when used" if len(regs) > 1 else ""
                lines.append(f"  {name:<{width}}  {reg.entry_point.value:<45} {reg.provider}{mark}")
    lines.append("configs (presets of the config groups):")
    for package in config_packages():
        lines.append(f"  {package.package:<45} {package.provider}")
    return "\n".join(lines)


def check() -> tuple[list[str], list[str]]:
    """Import every entry and config package: (problems, warnings)."""
    problems, warnings = [], []
    for kind in GROUPS:
        registry = Registry(kind)
        for name, regs in sorted(registry.candidates.items()):
            if len(regs) > 1:
                try:
                    registry.get(name)
                except RegistryError as exc:
                    problems.append(str(exc))
            for reg in regs:
                had_torch = "torch" in sys.modules
                try:
                    schema = reg.schema()
                except RegistryError as exc:
                    problems.append(str(exc))
                    continue
                if not had_torch and "torch" in sys.modules:
                    warnings.append(
                        f"{kind[:-1]} {name!r} from {reg.provider}: loading its Config imported torch, so composing "
                        "a config that uses it is slow; point the entry point at a torch-free Config dataclass"
                    )
                try:
                    component = reg.component()
                except RegistryError as exc:
                    problems.append(str(exc))
                    continue
                if getattr(component, "Config", None) is not schema:
                    problems.append(
                        f"{kind[:-1]} {name!r} from {reg.provider}: {component.__module__}.{component.__qualname__}"
                        f".Config is not {schema.__module__}.{schema.__qualname__}, the Config its entry point names"
                    )
    registered = {group: set(Registry(kind).candidates) for kind, group in CONFIG_GROUPS.items()}
    for package in config_packages():
        failure = package.failure()
        if failure is not None:
            problems.append(str(failure))
        if not package.presets:
            problems.append(
                f"config package {package.package} from {package.provider} holds no YAML presets: was it "
                f"installed without package data? Add to its pyproject.toml: [tool.setuptools.package-data] "
                f'"{package.package}" = ["**/*.yaml"]'
            )
        for preset in package.presets:
            group, _, name = preset.rpartition("/")
            if name in registered.get(group, ()):
                problems.append(
                    f"preset {preset}.yaml in {package.package} ({package.provider}) has the name of the {group} "
                    f"component {name!r}, whose schema is already the option {preset}: give the preset another "
                    f"name and start it with `defaults: [{name}, _self_]`"
                )
    return problems, warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlkit.registry", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="import every registered component and config package; exit 1 on any problem")
    args = parser.parse_args(argv)
    print(describe())
    if not args.check:
        return 0
    problems, warnings = check()
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    print(f"{len(problems)} problem(s), {len(warnings)} warning(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
