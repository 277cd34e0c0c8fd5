"""Weights & Biases: metrics, the run's config, sample tables and its artefacts.

``mode="offline"`` works without network or account; upload later with
``wandb sync <run_dir>/wandb/offline-run-*``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

from rlkit.loggers.base import Logger, RunInfo, SampleRow

ID_FILE = "wandb_id.txt"
"""Holds the run's wandb id in its run directory, so a resumed run continues the same wandb run."""


class WandbLogger(Logger):
    """Logs to a wandb run whose files live under ``run_dir / "wandb"``."""

    @dataclass
    class Config:
        project: str = "rlkit"
        entity: Optional[str] = None
        mode: Optional[str] = None
        """``online``, ``offline`` or ``disabled``; None: wandb's own (``WANDB_MODE``, login)."""
        tags: list[str] = field(default_factory=list)
        name: Optional[str] = None
        """Display name; None: the run's name."""
        log_model: bool = False
        """Upload ``final/`` as a wandb Artifact at the end of a completed run."""

    def __init__(self, config: Config, run: RunInfo) -> None:
        # Imported here so that this module, and its Config, load without wandb.
        try:
            import wandb
        except ImportError as e:
            raise ImportError("WandbLogger needs wandb: pip install 'rlkit[wandb]'") from e
        self._wandb = wandb
        self.config = config
        run_dir = Path(run.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        #: The wandb Run, for what goes beyond scalars (tables, media).
        self.wandb_run = wandb.init(
            project=config.project,
            entity=config.entity,
            mode=config.mode,
            tags=list(config.tags),
            name=config.name or run.name,
            dir=run_dir,
            config=dict(run.config),
            id=_run_id(run_dir),
            resume="allow",
        )

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self.wandb_run.log({key: float(value) for key, value in metrics.items()}, step=int(step))

    def log_samples(self, rows: Sequence[SampleRow], step: int) -> None:
        """A ``samples`` Table per evaluation (the Tables view shows each step's)."""
        if rows:
            columns = list(rows[0])
            table = self._wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in rows])
            self.wandb_run.log({"samples": table}, step=int(step))

    def log_model(self, directory: Path) -> None:
        if self.config.log_model:
            self.log_artifact(directory)

    def log_artifact(self, path: Path) -> None:
        """Upload a file or a directory (the final model, say) as a wandb Artifact.

        The files are uploaded from where they are (``policy="immutable"``), not first
        copied to wandb's staging area, so they must stay unchanged until uploaded
        (offline: until ``wandb sync``).
        """
        path = Path(path)
        name = re.sub(r"[^\w.-]", "-", f"{self.wandb_run.id}-{path.name}")
        artifact = self._wandb.Artifact(name, type="directory" if path.is_dir() else "file")
        if path.is_dir():
            artifact.add_dir(str(path), policy="immutable")
        else:
            artifact.add_file(str(path), policy="immutable")
        self.wandb_run.log_artifact(artifact)

    def close(self) -> None:
        self.wandb_run.finish()
        # finish() can return before wandb's service has written the run to disk, and the
        # atexit hook that waits for it does not run in multiprocessing children.
        self._wandb.teardown()


def _run_id(run_dir: Path) -> str:
    """The wandb id kept in ``run_dir``, created on the first call."""
    id_file = run_dir / ID_FILE
    if id_file.exists():
        return id_file.read_text().strip()
    run_id = secrets.token_hex(6)
    id_file.write_text(run_id + "\n")
    return run_id
