"""Datasets from local JSONL/Parquet files and from Hugging Face ``datasets``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from rlkit.data.base import DataError, Dataset
from rlkit.data.rows import parse_rows
from rlkit.types import Sample, SampleKind


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, object)`` for each non-blank line (UTF-8; other bytes name the row)."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(str(path), number, f"not UTF-8: byte {raw[exc.start:exc.start + 1]!r} at column "
                                f"{len(raw[:exc.start].decode('utf-8', 'replace')) + 1}") from None
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(str(path), number, f"invalid JSON: {exc.msg} (column {exc.colno})") from None


def read_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """Numbered rows of a ``.jsonl``/``.json`` file (by line) or a ``.parquet`` file (from 1)."""
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return read_jsonl(path)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return enumerate(pq.read_table(path).to_pylist(), start=1)
    raise ValueError(f"{path}: unsupported data file type {suffix!r}; use .jsonl or .parquet")


@dataclass
class FileDatasetConfig:
    train: str = "???"
    #: Held-out file; when absent, the last ``eval_fraction`` of the train rows is held out.
    eval: Optional[str] = None
    eval_fraction: float = 0.0


class FileDataset(Dataset):
    Config = FileDatasetConfig

    def __init__(self, config: FileDatasetConfig):
        self.config = config

    def load(self, split: str, kind: SampleKind) -> list[Sample]:
        if split == "eval" and self.config.eval:
            return self._parse(Path(self.config.eval), kind)
        samples = self._parse(Path(self.config.train), kind)
        held_out = int(len(samples) * self.config.eval_fraction)
        if split == "train":
            return samples[: len(samples) - held_out]
        return samples[len(samples) - held_out :]

    @staticmethod
    def _parse(path: Path, kind: SampleKind) -> list[Sample]:
        return parse_rows(read_rows(path), kind, str(path))


@dataclass
class HubDatasetConfig:
    #: A hub id, a local dataset directory (``save_to_disk``) or a builder name (``json``, ...).
    path: str = "???"
    subset: Optional[str] = None
    data_files: Optional[Any] = None
    train_split: str = "train"
    eval_split: Optional[str] = "test"


class HubDataset(Dataset):
    """A Hugging Face ``datasets`` dataset; rows must have the shapes in :mod:`rlkit.data.rows`."""

    Config = HubDatasetConfig

    def __init__(self, config: HubDatasetConfig):
        self.config = config

    def load(self, split: str, kind: SampleKind) -> list[Sample]:
        name = self.config.train_split if split == "train" else self.config.eval_split
        if name is None:
            return []
        rows = enumerate(self._split(name), start=1)
        return parse_rows(rows, kind, f"{self.config.path}[{name}]")

    def _split(self, name: str):
        import datasets

        path = Path(self.config.path)
        if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
            loaded = datasets.load_from_disk(str(path))
            return loaded[name] if isinstance(loaded, datasets.DatasetDict) else loaded
        return datasets.load_dataset(self.config.path, self.config.subset, data_files=self.config.data_files, split=name)
