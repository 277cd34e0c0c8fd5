"""``manifest.json``: what produced a run directory, and a check that its inputs are unchanged.

Written by the main rank when a run starts (a resumed run adds a session)::

    {"rlkit": {"version": ..., "git": {"revision": ..., "dirty": ...} or null},
     "python": ..., "packages": {"torch": ..., "transformers": ..., "vllm": null, ...},
     "inputs": {"data.train": {"path": ..., "sha256": {"<file>": "<hex>", ...}}, "model": ...},
     "sessions": [{"command": [...], "host": ..., "pid": ..., "start": ..., "end": ..., "status": ...}]}

``inputs`` are hashed once, when the run is created: the local data files named in the
``data`` config and the initial model's files. ``python -m rlkit.manifest RUN_DIR --verify``
hashes them again and lists what changed (exit status 1 when anything did).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Mapping

from rlkit.outputs import RunOutputs

#: Installed versions recorded (null when not installed).
PACKAGES = ("torch", "transformers", "peft", "vllm", "ray", "datasets", "accelerate", "hydra-core")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(path: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of a file (its name) or of every file under a directory."""
    if path.is_file():
        return {path.name: sha256_file(path)}
    return {str(f.relative_to(path)): sha256_file(f) for f in sorted(path.rglob("*")) if f.is_file()}


def git_revision(directory: Path) -> dict[str, Any] | None:
    """The checkout's HEAD and whether it has uncommitted changes; None outside a checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        revision = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"revision": revision, "dirty": dirty}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def local_paths(node: Any, prefix: str) -> Iterator[tuple[str, Path]]:
    """``(config key, path)`` for every string value of ``node`` naming an existing local
    file or directory (a dataset's ``train``/``eval`` files, say)."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from local_paths(value, f"{prefix}.{key}")
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from local_paths(value, f"{prefix}[{i}]")
    elif isinstance(node, str) and node and not node.startswith(("http://", "https://")) and Path(node).exists():
        yield prefix, Path(node)


def describe_inputs(data: Mapping[str, Any], model_path: str | None) -> dict[str, Any]:
    """Hashes of the data files named in ``data`` and of the initial model's directory."""
    inputs = {key: {"path": str(path.resolve()), "sha256": sha256_tree(path)}
              for key, path in local_paths(data, "data")}
    if model_path and Path(model_path).exists():
        inputs["model"] = {"path": str(Path(model_path).resolve()), "sha256": sha256_tree(Path(model_path))}
    return inputs


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write(path: Path, manifest: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)


@contextmanager
def recorded(run_dir: Path, data: Mapping[str, Any], model_path: str | None) -> Iterator[dict[str, Any]]:
    """Write the manifest (or add this session to an existing one) for the block, and its
    end time and status (``completed`` or ``failed``) after it."""
    path = RunOutputs(Path(run_dir)).manifest
    if path.exists():
        manifest = json.loads(path.read_text())
    else:
        import rlkit

        manifest = {
            "rlkit": {"version": rlkit.__version__, "git": git_revision(Path(rlkit.__file__).parent)},
            "python": platform.python_version(),
            "packages": package_versions(),
            "inputs": describe_inputs(data, model_path),
            "sessions": [],
        }
    session = {"command": list(sys.argv), "host": socket.gethostname(), "pid": os.getpid(),
               "start": _now(), "end": None, "status": "running"}
    manifest["sessions"].append(session)
    _write(path, manifest)
    status = "failed"
    try:
        yield manifest
        status = "completed"
    finally:
        session.update(end=_now(), status=status)
        _write(path, manifest)


def verify(run_dir: Path) -> list[str]:
    """One line per input file that changed, went missing or appeared since the run was
    created; empty when everything matches."""
    manifest = json.loads(RunOutputs(Path(run_dir)).manifest.read_text())
    problems = []
    for key, entry in manifest["inputs"].items():
        path = Path(entry["path"])
        now = sha256_tree(path) if path.exists() else {}
        for name, digest in entry["sha256"].items():
            if name not in now:
                problems.append(f"missing: {key} {path / name if path.is_dir() else path}")
            elif now[name] != digest:
                problems.append(f"changed: {key} {path / name if path.is_dir() else path}")
        problems += [f"new: {key} {path / name}" for name in sorted(set(now) - set(entry["sha256"]))]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlkit.manifest", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--verify", action="store_true", help="hash the inputs again and list what changed")
    args = parser.parse_args(argv)
    path = RunOutputs(args.run_dir).manifest
    if not path.exists():
        parser.error(f"{path}: no manifest (was this directory written by an rlkit run?)")
    if not args.verify:
        print(path.read_text(), end="")
        return 0
    problems = verify(args.run_dir)
    count = sum(len(entry["sha256"]) for entry in json.loads(path.read_text())["inputs"].values())
    for line in problems:
        print(line)
    print(f"{count} input file(s) checked: " + ("all unchanged" if not problems else f"{len(problems)} difference(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
