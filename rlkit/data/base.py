"""The dataset interface: a named split of typed samples of the kind an algorithm needs."""

from __future__ import annotations

from abc import ABC, abstractmethod

from rlkit.types import Sample, SampleKind


class DataError(ValueError):
    """A row that cannot become a sample. The message names the source, the row and the problem."""

    def __init__(self, source: str, row: int, problem: str):
        self.source, self.row, self.problem = source, row, problem
        super().__init__(f"{source}, row {row}: {problem}")


class Dataset(ABC):
    """A dataset component, built as ``Dataset(config)``.

    ``load`` validates every row and returns typed samples; it raises ``DataError``
    naming the file and row of the first bad row.
    """

    Config: type

    @abstractmethod
    def load(self, split: str, kind: SampleKind) -> list[Sample]:
        """Samples of ``kind`` from ``split`` ("train" or "eval")."""
