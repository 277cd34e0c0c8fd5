"""MLflow: the composed config as params and as ``config.yaml``, metrics by step, sample
tables, plots and (optionally) the final model as artefacts.

The run's MLflow id is kept in its run directory (``mlflow_run_id.txt``), so a resumed run
continues the same MLflow run. Talks to the tracking server through ``MlflowClient`` (no
fluent API, so two runs in one process never share an "active run").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

from rlkit.loggers.base import Logger, RunInfo, SampleRow, flatten_config

ID_FILE = "mlflow_run_id.txt"
"""Holds the run's MLflow id in its run directory."""


class MlflowLogger(Logger):
    """Logs to one MLflow run of ``experiment`` on the tracking server ``tracking_uri``.

    View with ``mlflow ui --backend-store-uri <store>`` or the server's own UI.
    """

    @dataclass
    class Config:
        tracking_uri: Optional[str] = None
        """e.g. ``http://127.0.0.1:5000`` or ``sqlite:///mlflow.db``; None: MLflow's default
        (``MLFLOW_TRACKING_URI``, else its local store)."""
        experiment: str = "rlkit"
        """Created on the server if it does not exist."""
        run_name: Optional[str] = None
        """Display name; None: the run directory's name."""
        tags: dict[str, str] = field(default_factory=dict)
        log_model: bool = False
        """Upload ``final/`` (the model's files) as artefacts at the end of a completed run."""
        connect_timeout: float = 10.0
        """Seconds to wait for an ``http(s)`` server when the run starts."""

    def __init__(self, config: Config, run: RunInfo) -> None:
        # Imported here so that this module, and its Config, load without mlflow.
        try:
            from mlflow import MlflowClient
        except ImportError as e:
            raise ImportError("MlflowLogger needs mlflow: pip install 'rlkit[mlflow]'") from e
        self.config = config
        self.client = MlflowClient(tracking_uri=config.tracking_uri)
        run_dir = Path(run.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        id_file = run_dir / ID_FILE
        if id_file.exists():
            #: The MLflow run id.
            self.run_id = id_file.read_text().strip()
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            self.run_id = self._create_run(run)
            id_file.write_text(self.run_id + "\n")
        self._completed = False

    @classmethod
    def check(cls, config: Config) -> None:
        if config.tracking_uri and config.tracking_uri.startswith(("http://", "https://")):
            check_reachable(config.tracking_uri, config.connect_timeout)

    def _create_run(self, run: RunInfo) -> str:
        experiment = self.client.get_experiment_by_name(self.config.experiment)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else self.client.create_experiment(self.config.experiment))
        tags = {"rlkit.run_dir": str(Path(run.run_dir).resolve()), **self.config.tags}
        run_id = self.client.create_run(experiment_id, tags=tags,
                                        run_name=self.config.run_name or run.name).info.run_id
        # Params are immutable in MLflow: logged once, when the run is created.
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        params = [Param(key, str(value)[:MAX_PARAM_VAL_LENGTH]) for key, value in flatten_config(run.config)]
        for start in range(0, len(params), MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(run_id, params=params[start:start + MAX_PARAMS_TAGS_PER_BATCH])
        self.client.log_dict(run_id, dict(run.config), "config.yaml")
        return run_id

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, int(step)) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_samples(self, rows: Sequence[SampleRow], step: int) -> None:
        """One table artefact per evaluation, ``samples/step_<step>.json`` (MLflow's
        "Evaluation" view reads it)."""
        if rows:
            columns = {key: [row[key] for row in rows] for key in rows[0]}
            self.client.log_table(self.run_id, data=columns, artifact_file=f"samples/step_{int(step)}.json")

    def log_summary(self, metrics: Mapping[str, float]) -> None:
        self._completed = True

    def log_artifact(self, path: Path) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path=path.name)
        else:
            self.client.log_artifact(self.run_id, str(path))

    def log_model(self, directory: Path) -> None:
        if self.config.log_model:
            self.client.log_artifacts(self.run_id, str(directory), artifact_path="final")

    def close(self) -> None:
        self.client.set_terminated(self.run_id, status="FINISHED" if self._completed else "FAILED")


def check_reachable(uri: str, timeout: float) -> None:
    """Raise ConnectionError (one line) when nothing answers HTTP at ``uri``.

    MLflow's client retries a refused connection for minutes; this asks once, so that a
    wrong address fails before training starts. Any HTTP answer counts as reachable.
    """
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    except requests.RequestException as e:
        reason = type(e).__name__
        raise ConnectionError(f"logger.mlflow.tracking_uri={uri}: no MLflow server answers ({reason})") from None

