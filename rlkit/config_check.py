"""Check every config a command will run before Hydra creates a run directory or launches a job.

Hydra itself rejects a wrong key, type or Enum choice while it composes (the schemas in
rlkit.config_store). What it cannot see needs the typed config: value ranges
(``trainer.batch_size=0``, ``algo.kl_beta=-1``), mandatory values left ``???``, and the
entries of a combined reward (``rlkit.config.check_config``). Also, a multirun composes job
*i* only when it launches it, so ``-m algo.kl_beta=1.0,high`` would train job 0 before
job 1 failed.

This Hydra callback (``hydra.callbacks.check_config`` in conf/config.yaml) closes both gaps
at the two moments before anything is written: ``on_run_start`` (after composition, before
the run directory) checks the run, or each stage of its pipeline; ``on_multirun_start``
(before the sweeper creates the sweep directory or the launcher submits anything) composes
every job of the sweep -- the command line's and ``hydra.sweeper.params``' values, as
Hydra's basic sweeper expands them -- and checks each. The first bad value stops the
command with its key (and, in a sweep, the job's overrides). Sweepers other than the basic
one choose their jobs as they go; their jobs are checked as each is composed.
"""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from rlkit.config import ConfigError, check_config

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def one_line(exc: BaseException) -> str:
    """The error's first line, with its cause's when Hydra wraps one ("Error merging
    override algo.kl_beta=high: Value 'high' of type 'str' could not be converted to Float")."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    cause = exc.__cause__
    if cause is not None and not isinstance(exc, ConfigError) and str(cause):
        message += f": {str(cause).splitlines()[0]}"
    return message


def without_hydra(config: DictConfig) -> DictConfig:
    return OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])


def runs_pipeline(config: DictConfig) -> bool:
    """Whether the command runs the config's pipeline: it is ``python -m rlkit`` (Hydra's job
    name ``__main__``; ``rlkit.evaluate`` ignores stages), the config has stages, and the
    command line names no ``algo`` or names a ``pipeline`` too (rlkit.cli.dispatch)."""
    chosen = {o.split("=", 1)[0].lstrip("+~") for o in config.hydra.overrides.task}
    return (config.hydra.job.name == "__main__" and bool(config.get("stages"))
            and ("algo" not in chosen or "pipeline" in chosen))


def check_run(config: DictConfig) -> None:
    """The run's config, or the config of each stage of its pipeline."""
    run = check_config(without_hydra(config))
    if not runs_pipeline(config):
        return
    from hydra import compose

    from rlkit.pipeline import stage_overrides

    command_line = [o for o in config.hydra.overrides.task if not o.startswith(("pipeline=", "hydra."))]
    for index, stage in enumerate(run.stages):
        overrides = ["pipeline=none", *stage_overrides(stage, None, command_line)]
        try:
            check_config(compose("config", overrides=overrides))
        except Exception as exc:
            raise ConfigError(f"stages[{index}] ({stage.name}): {one_line(exc)}") from exc


def sweep_jobs(config: DictConfig) -> list[list[str]]:
    """Every job's overrides, as Hydra's basic sweeper expands them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()]
    arguments += list(config.hydra.overrides.task)
    overrides = OverridesParser.create().parse_overrides(arguments)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def check_sweep(config: DictConfig) -> None:
    """Every job of a multirun (basic sweeper), composed as its launcher will compose it."""
    if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
        return
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    for index, job in enumerate(sweep_jobs(config)):
        try:
            check_run(loader.load_sweep_config(config, job))
        except Exception as exc:
            raise ConfigError(f"job {index} ({' '.join(job)}): {one_line(exc)}") from exc


class CheckConfig(Callback):
    """Hydra turns an exception raised by a callback into a warning and goes on, so a bad
    config ends the command here, with its one-line error, through SystemExit."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _exit_on_error(check_run, config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _exit_on_error(check_sweep, config)


def _exit_on_error(check: Any, config: DictConfig) -> None:
    try:
        check(config)
    except Exception as exc:
        raise SystemExit(f"Error in the config: {exc}") from None
