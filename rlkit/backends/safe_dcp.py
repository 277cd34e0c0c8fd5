"""Reading torch.distributed.checkpoint (DCP) directories without executing their pickles.

DCP stores two kinds of pickles: the ``.metadata`` file (plain ``pickle`` in torch's
``FileSystemReader``) and the non-tensor values inside the shard files, such as the
optimizer's ``param_groups`` (``torch.load(weights_only=False)`` in the default load
planner). Either one, planted in a run directory, would run arbitrary code on resume.

:class:`SafeFileSystemReader` unpickles ``.metadata`` with an unpickler that resolves only
the checkpoint metadata classes, and :class:`SafeLoadPlanner` reads the non-tensor values
with ``torch.load(weights_only=True)``. Anything else raises :class:`UnsafePickleError`
naming the file, before any object of the pickle is built.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner

#: The only globals a DCP ``.metadata`` pickle may name: the metadata dataclasses and
#: enums, torch's size, dtype and layout helpers and plain paths.
METADATA_MODULES = ("torch.distributed.checkpoint.metadata",)
METADATA_GLOBALS = {
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),
    ("pathlib", "PosixPath"),
    ("pathlib", "PurePosixPath"),
    ("pathlib", "WindowsPath"),
    ("pathlib", "PureWindowsPath"),
    ("collections", "OrderedDict"),
}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle in a checkpoint names something outside the allowed classes."""


class _MetadataUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if module in METADATA_MODULES or (module, name) in METADATA_GLOBALS:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise UnsafePickleError(
            f"{self.path}: refusing to unpickle {module}.{name}; a checkpoint's metadata may only "
            "hold torch.distributed.checkpoint metadata (the file was not written by rlkit)"
        )


def load_metadata(path: Path) -> Any:
    """The DCP ``Metadata`` in ``path``, unpickled with the restricted unpickler.

    Raises :class:`UnsafePickleError` for a pickle naming anything else, ``FileNotFoundError``
    when it is missing and ``ValueError`` naming the file when it is cut short or garbled.
    """
    with open(path, "rb") as f:
        try:
            return _MetadataUnpickler(f, path).load()
        except UnsafePickleError:
            raise
        except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: unreadable checkpoint metadata ({type(exc).__name__}: {exc})") from None


class SafeFileSystemReader(FileSystemReader):
    """torch's ``FileSystemReader`` with ``.metadata`` read once, by :func:`load_metadata`,
    when the reader is created (so a bad file raises its own error, naming it, instead of
    DCP's fallback to per-rank metadata files that rlkit never writes)."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self.metadata = load_metadata(Path(self._get_metadata_path()))

    def read_metadata(self, *args: Any, **kwargs: Any):
        from torch.distributed.checkpoint.metadata import StorageMeta

        metadata = self.metadata
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class SafeLoadPlanner(DefaultLoadPlanner):
    """The default planner, reading non-tensor values with ``weights_only=True``."""

    def __init__(self, reader: SafeFileSystemReader):
        super().__init__()
        self.reader = reader

    def load_bytes(self, read_item, value) -> None:
        try:
            loaded = torch.load(value, weights_only=True)
        except pickle.UnpicklingError as exc:
            shard = self.reader.storage_data[read_item.storage_index].relative_path
            raise UnsafePickleError(
                f"{Path(self.reader.path) / shard}: refusing to unpickle the value of "
                f"{read_item.dest_index.fqn!r}: {weights_only_reason(exc)}"
            ) from None
        if self.flatten_state_dict:
            from torch.distributed.checkpoint._traverse import set_element

            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], loaded)
        else:
            self.state_dict[read_item.dest_index.fqn] = loaded


def weights_only_reason(exc: pickle.UnpicklingError) -> str:
    """The line of torch's long ``weights_only`` refusal that says what was refused."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[1] if len(lines) > 2 and lines[0].startswith("Weights only load failed") else " ".join(lines[:1])
