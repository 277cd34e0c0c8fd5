"""Is a checkpoint directory complete and readable? Checked before a resume relies on it.

Checkpoints are written atomically, but a disk can still lose or cut files (a full disk
on a network filesystem, a partial copy, a bad sector). :func:`checkpoint_problem` reads
what a resume reads, without building the model: the trainer state (``weights_only``
unpickling), every safetensors file's header against its size, and the sharded state's
``.metadata`` (restricted unpickling) against the sizes of the shard files it points
into. A pickle naming anything outside the allowed classes is not damage but tampering:
it raises :class:`~rlkit.backends.safe_dcp.UnsafePickleError` instead of being reported.
"""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import torch

from rlkit.backends.safe_dcp import UnsafePickleError, load_metadata, weights_only_reason


def checkpoint_problem(directory: Path, trainer_state: str, sharded_dir: str) -> str | None:
    """What is wrong with the checkpoint in ``directory`` (naming the file), or None."""
    for check in (_trainer_state_problem, _safetensors_problem, _sharded_problem):
        problem = check(directory, trainer_state, sharded_dir)
        if problem:
            return problem
    return None


def load_trainer_state(path: Path) -> dict:
    """``trainer_state.pt`` with ``weights_only`` unpickling; a refused pickle raises
    :class:`UnsafePickleError` naming the file."""
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafePickleError(f"{path}: refusing to unpickle: {weights_only_reason(exc)}") from None


def _trainer_state_problem(directory: Path, trainer_state: str, sharded_dir: str) -> str | None:
    path = directory / trainer_state
    if not path.is_file():
        return f"{path} is missing"
    try:
        state = load_trainer_state(path)
    except UnsafePickleError:
        raise
    except Exception as exc:  # truncated zip, garbage: torch raises RuntimeError or EOFError
        return f"{path} is unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    if not isinstance(state, dict) or "step" not in state:
        return f"{path} holds no trainer state"
    return None


def _safetensors_problem(directory: Path, trainer_state: str, sharded_dir: str) -> str | None:
    files = sorted(directory.glob("*.safetensors")) + sorted(directory.glob("adapter/*.safetensors"))
    if not (directory / "config.json").is_file():
        return f"{directory / 'config.json'} is missing"
    if not files:
        return f"{directory} has no model weights (*.safetensors)"
    for path in files:
        problem = _safetensors_file_problem(path)
        if problem:
            return f"{path} is {problem}"
    return None


def _safetensors_file_problem(path: Path) -> str | None:
    """The safetensors layout: an 8-byte header length, a JSON header, then the data."""
    size = path.stat().st_size
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            return f"truncated ({size} bytes)"
        (header_len,) = struct.unpack("<Q", prefix)
        if 8 + header_len > size:
            return f"truncated ({size} bytes, header says {8 + header_len}+)"
        try:
            header = json.loads(f.read(header_len))
        except ValueError:
            return "not a safetensors file (unreadable header)"
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    expected = 8 + header_len + max(ends, default=0)
    if size < expected:
        return f"truncated ({size} of {expected} bytes)"
    return None


def _sharded_problem(directory: Path, trainer_state: str, sharded_dir: str) -> str | None:
    sharded = directory / sharded_dir
    if not sharded.is_dir():
        return None  # a checkpoint from before sharded state: the HF files hold the weights
    try:
        metadata = load_metadata(sharded / ".metadata")
    except UnsafePickleError:
        raise
    except FileNotFoundError:
        return f"{sharded / '.metadata'} is missing"
    except ValueError as exc:
        return str(exc)
    needed: dict[str, int] = {}
    for info in (metadata.storage_data or {}).values():
        needed[info.relative_path] = max(needed.get(info.relative_path, 0), info.offset + info.length)
    for name, end in sorted(needed.items()):
        shard = sharded / name
        if not shard.is_file():
            return f"{shard} is missing"
        if shard.stat().st_size < end:
            return f"{shard} is truncated ({shard.stat().st_size} of {end} bytes)"
    return None
