"""The Python API: compose a config and train from a notebook or script, no CLI needed.

    import rlkit

    config = rlkit.compose(["algo=grpo", "trainer.lr=1e-5"])   # typed: config.trainer.lr
    outputs = rlkit.train(
        ["algo=grpo", "trainer.max_steps=20"],
        reward_fn=lambda sample, completion: float(completion.text.strip() == sample.answer),
        dataset=[{"prompt": "2+2=", "answer": "4"}, ...],           # or a datasets.Dataset
    )
    outputs.final                                                  # the trained model's directory

Overrides are the command line's (``python -m rlkit <overrides>``). ``train`` runs one
training run of the composed ``algo`` (pipelines are the CLI's). Each call composes with a
fresh Hydra state and restores the previous one, so calls can repeat in one process and
work inside a Hydra job too.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

from omegaconf import DictConfig, OmegaConf

from rlkit.config import RunConfig, typed_run_config
from rlkit.outputs import RunOutputs

#: Rows as dicts (the fields of ``data=files`` rows, see rlkit.data.rows) or a ``datasets.Dataset``.
Rows = Union[Sequence[Mapping[str, Any]], Any]


def compose(overrides: Iterable[str] = ()) -> RunConfig:
    """The typed config ``python -m rlkit <overrides>`` would run with; a wrong key, type or
    choice raises here."""
    return typed_run_config(compose_dict(overrides))


def compose_dict(overrides: Iterable[str] = ()) -> DictConfig:
    """The composed config as Hydra gives it (what :func:`train` runs)."""
    from hydra import compose as hydra_compose

    from rlkit.cli import single_run

    with _hydra():
        return hydra_compose("config", overrides=single_run(overrides))


def train(
    overrides: Iterable[str] = (),
    *,
    reward_fn: Optional[Callable[..., Any]] = None,
    dataset: Optional[Rows] = None,
    eval_dataset: Optional[Rows] = None,
    run_dir: Union[str, Path, None] = None,
):
    """Train one run of the composed ``algo``; returns its :class:`rlkit.outputs.RunOutputs`.

    * ``reward_fn(sample, completion)`` -> a float, or ``{part: float}`` whose sum is the
      reward (parts are logged one by one); replaces the configured reward.
    * ``dataset`` / ``eval_dataset``: training and held-out rows; they are validated first
      (an error names the row and the missing field) and written to ``<run_dir>/data/`` as
      JSONL, which the run then reads through ``data=files`` (the run directory keeps its
      data). Without ``eval_dataset`` there is no held-out evaluation.
    * ``run_dir``: default ``outputs/<date>/<time>`` (a new directory). An existing run
      directory resumes, or returns at once when that run completed.
    """
    from rlkit.launch import train as launch_train

    overrides = [o for o in overrides]
    reward = None
    if reward_fn is not None:
        reward = _function_reward(reward_fn)
        overrides += ["reward=callable", f"reward.function='{reward.config.function}'"]
    run_dir = Path(run_dir) if run_dir is not None else _new_run_dir()
    if dataset is not None:
        overrides += _write_rows(compose_dict(overrides), run_dir, dataset, eval_dataset)
    elif eval_dataset is not None:
        raise ValueError("eval_dataset needs dataset (the training rows) too")
    cfg = compose_dict(overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml")
    launch_train(cfg, run_dir, reward=reward)
    return RunOutputs(run_dir)


@contextmanager
def _hydra() -> Iterator[None]:
    """rlkit's config module initialised in a fresh GlobalHydra; the previous one (a
    notebook's earlier call, or the Hydra job this runs in) is back afterwards."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from rlkit.config import register_with_hydra

    register_with_hydra()
    global_hydra = GlobalHydra.instance()
    previous = global_hydra.hydra if global_hydra.is_initialized() else None
    global_hydra.clear()
    try:
        with initialize_config_module(config_module="rlkit.conf", version_base="1.3"):
            yield
    finally:
        GlobalHydra.instance().clear()
        if previous is not None:
            GlobalHydra.instance().initialize(previous)


def _function_reward(reward_fn: Any):
    from rlkit.rewards.python import CallableReward

    if not callable(reward_fn):
        raise TypeError(f"reward_fn: expected a function (sample, completion) -> float or {{part: float}}, "
                        f"got {type(reward_fn).__name__} {reward_fn!r:.60}")
    name = f"{getattr(reward_fn, '__module__', '?')}:{getattr(reward_fn, '__qualname__', type(reward_fn).__name__)}"
    return CallableReward(CallableReward.Config(function=name), function=reward_fn)


def _write_rows(cfg: DictConfig, run_dir: Path, dataset: Rows, eval_dataset: Optional[Rows]) -> list[str]:
    """Validate the rows for the composed algorithm, write them as JSONL; the overrides
    that make the run read them."""
    from rlkit.data.rows import parse_rows
    from rlkit.registry import Registry

    kind = Registry("algorithms").load(cfg.algo.name).sample_kind
    overrides = ["data=files"]
    for split, rows, source in (("train", dataset, "dataset"), ("eval", eval_dataset, "eval_dataset")):
        if rows is None:
            continue
        rows = _as_dicts(rows, source)
        if not rows:
            raise ValueError(f"{source}: no rows")
        parse_rows(enumerate(rows, start=1), kind, source)  # DataError: "dataset, row 3: missing field(s) ..."
        path = RunOutputs(run_dir).data / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        overrides.append(f"data.{split}='{path.resolve()}'")
    return overrides


def _as_dicts(rows: Rows, source: str) -> list[dict[str, Any]]:
    if hasattr(rows, "to_list") and hasattr(rows, "column_names"):  # datasets.Dataset
        return rows.to_list()
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
        raise TypeError(f"{source}: expected a list of dicts or a datasets.Dataset, got {type(rows).__name__}")
    return [dict(row) if isinstance(row, Mapping) else row for row in rows]


def _new_run_dir() -> Path:
    """``outputs/<date>/<time>`` as the CLI names runs, with a suffix when that exists."""
    base = Path("outputs") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    path, n = base, 1
    while path.exists():
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    return path
