"""Entry-point registries, one per component kind.

rlkit registers its own built-ins through the same entry-point groups as third-party
packages (see pyproject.toml), so a plugin is never a second-class citizen. Nothing is
imported until a component is asked for by name.

    python -m rlkit.registry      # every registered component, by group, with its provider
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import EntryPoint, entry_points

GROUPS = ("algorithms", "backends", "generators", "rewards", "datasets", "loggers")


class RegistryError(LookupError):
    """A component that cannot be resolved: unknown, ambiguous, or broken."""


@dataclass(frozen=True)
class Registration:
    name: str
    entry_point: EntryPoint

    @property
    def provider(self) -> str:
        dist = self.entry_point.dist
        return f"{dist.name} {dist.version}" if dist is not None else "<unknown distribution>"


class Registry:
    """The components of one kind, e.g. ``Registry("rewards")`` reads ``rlkit.rewards``."""

    def __init__(self, kind: str):
        if kind not in GROUPS:
            raise ValueError(f"unknown component kind {kind!r}; kinds: {', '.join(GROUPS)}")
        self.kind = kind
        self.group = f"rlkit.{kind}"

    @cached_property
    def registrations(self) -> dict[str, Registration]:
        found: dict[str, Registration] = {}
        for ep in _unique(entry_points(group=self.group)):
            reg = Registration(ep.name, ep)
            if ep.name in found:
                raise RegistryError(
                    f"{self.kind} {ep.name!r} is registered twice: by {found[ep.name].provider} "
                    f"({found[ep.name].entry_point.value}) and by {reg.provider} ({ep.value}); "
                    "uninstall one of the packages"
                )
            found[ep.name] = reg
        return found

    def names(self) -> list[str]:
        return sorted(self.registrations)

    def load(self, name: str) -> type:
        """The component class registered as ``name``."""
        reg = self.registrations.get(name)
        if reg is None:
            known = ", ".join(self.names()) or "none"
            raise RegistryError(f"unknown {self.kind[:-1]} {name!r}; registered {self.kind}: {known}")
        try:
            return reg.entry_point.load()
        except Exception as exc:  # any import-time failure of a plugin is reported the same way
            raise RegistryError(
                f"{self.kind[:-1]} {name!r} from {reg.provider} ({reg.entry_point.value}) "
                f"failed to import: {type(exc).__name__}: {exc}"
            ) from exc


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


def describe() -> str:
    lines = []
    for kind in GROUPS:
        lines.append(f"{kind}:")
        regs = Registry(kind).registrations
        if not regs:
            lines.append("  (none)")
        width = max((len(n) for n in regs), default=0)
        for name in sorted(regs):
            reg = regs[name]
            lines.append(f"  {name:<{width}}  {reg.entry_point.value:<45} {reg.provider}")
    return "\n".join(lines)


def main() -> int:
    try:
        print(describe())
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
