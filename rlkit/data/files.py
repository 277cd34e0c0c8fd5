"""Datasets from local JSONL/Parquet files (``data=files``) and from Hugging Face ``datasets`` (``data=hf``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from rlkit.data.base import DataError, Dataset
from rlkit.data.mapping import RowMapping, parse_mapped_rows
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
class FileDatasetConfig(RowMapping):
    """Local JSONL or Parquet files (data.train=<file>, data.eval=<file>), each row validated."""

    train: str = "???"
    #: Held-out file; when absent, the last ``eval_fraction`` of the train rows is held out.
    eval: Optional[str] = None
    eval_fraction: float = 0.0


def held_out_split(samples: list[Sample], split: str, eval_fraction: float) -> list[Sample]:
    """The train part or the held-out last ``eval_fraction`` of ``samples``."""
    held_out = int(len(samples) * eval_fraction)
    return samples[: len(samples) - held_out] if split == "train" else samples[len(samples) - held_out :]


class FileDataset(Dataset):
    """Local JSONL or Parquet files (data.train, data.eval); a bad row fails naming the file and row."""

    Config = FileDatasetConfig

    def __init__(self, config: FileDatasetConfig):
        self.config = config
        #: split -> the file row of each sample ``load`` returned (for errors found later).
        self.row_numbers: dict[str, list[int]] = {}

    def source(self, split: str) -> str:
        return self.config.eval if split == "eval" and self.config.eval else self.config.train

    def load(self, split: str, kind: SampleKind) -> list[Sample]:
        numbers: list[int] = []
        samples = parse_mapped_rows(read_rows(Path(self.source(split))), kind, self.source(split), self.config, numbers)
        if not (split == "eval" and self.config.eval):
            samples = held_out_split(samples, split, self.config.eval_fraction)
            numbers = held_out_split(numbers, split, self.config.eval_fraction)
        self.row_numbers[split] = numbers
        return samples


@dataclass
class HubDatasetConfig(RowMapping):
    #: A hub id (``openai/gsm8k``), a local directory laid out like a hub repository, a
    #: directory written by ``save_to_disk``, or a builder (``json``, ``parquet``, with ``data_files``).
    path: str = "???"
    #: The dataset's configuration, ``load_dataset``'s ``name`` (``data.name`` picks the component).
    subset: Optional[str] = None
    #: Training split; slices work as in ``load_dataset`` (``train[:1000]``).
    split: str = "train"
    #: Held-out split; null: the last ``eval_fraction`` of ``split``.
    eval_split: Optional[str] = None
    eval_fraction: float = 0.0
    #: A git revision (branch, tag or commit) of the hub repository.
    revision: Optional[str] = None
    data_files: Optional[Any] = None
    #: Read at most this many rows of each split (0: all).
    max_rows: int = 0


class HubDataset(Dataset):
    """A Hugging Face ``datasets`` dataset, read with ``load_dataset`` (``load_from_disk`` for
    a ``save_to_disk`` directory) and mapped to rlkit's rows (:mod:`rlkit.data.mapping`)."""

    Config = HubDatasetConfig

    def __init__(self, config: HubDatasetConfig):
        self.config = config
        #: split -> the dataset row of each sample ``load`` returned (for errors found later).
        self.row_numbers: dict[str, list[int]] = {}

    def load(self, split: str, kind: SampleKind) -> list[Sample]:
        c = self.config
        numbers: list[int] = []
        if split == "eval" and c.eval_split:
            samples = self._parse(c.eval_split, kind, numbers)
        else:
            samples = held_out_split(self._parse(c.split, kind, numbers), split, c.eval_fraction)
            numbers = held_out_split(numbers, split, c.eval_fraction)
        self.row_numbers[split] = numbers
        return samples

    def source(self, split: str) -> str:
        """How errors name the data: ``path:subset[split]`` (``split``: "train", "eval" or a split name)."""
        name = {"train": self.config.split, "eval": self.config.eval_split or self.config.split}.get(split, split)
        return f"{self.config.path}{':' + self.config.subset if self.config.subset else ''}[{name}]"

    def _parse(self, split: str, kind: SampleKind, numbers: list[int]) -> list[Sample]:
        rows = self._rows(split)
        if self.config.max_rows:
            rows = rows.select(range(min(self.config.max_rows, len(rows))))
        return parse_mapped_rows(enumerate(rows, start=1), kind, self.source(split), self.config, numbers)

    def _rows(self, split: str):
        import datasets

        c = self.config
        path = Path(c.path).expanduser()
        if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
            loaded = datasets.load_from_disk(str(path))
            if not isinstance(loaded, datasets.DatasetDict):
                return loaded
            if split not in loaded:
                raise ValueError(f"data.split: {c.path} has no split {split!r}; splits: {', '.join(loaded)}")
            return loaded[split]
        try:
            return datasets.load_dataset(c.path, c.subset, split=split, revision=c.revision, data_files=c.data_files)
        except ValueError as exc:
            if "split" in str(exc).lower():
                raise ValueError(f"data.split={split!r} of {self.source(split)}: {exc}") from None
            raise
