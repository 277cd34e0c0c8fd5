"""Pipelines: a run made of stages, each a full composition reading the previous stage's model.

    stages:
      - name: sft
        overrides: [algo=sft, trainer.max_steps=200]
      - name: grpo
        overrides: [algo=grpo, reward=math, trainer.lr=1e-4]
      - name: eval
        kind: evaluate
        overrides: [reward=math]

Stage ``i`` runs in ``<run dir>/<i>-<name>`` (its composed config in ``config.yaml``) with ``model.name_or_path`` set to the final
model of the stage before it (unless the stage sets it itself). The command line's own
overrides apply to every stage, after the stage's. A finished stage is not run again, so
re-running the command resumes the pipeline where it stopped (see rlkit.launch.train).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from omegaconf import DictConfig, OmegaConf

from rlkit.config import StageConfig
from rlkit.outputs import RunOutputs

STAGE_KINDS = ("train", "evaluate")


@dataclass
class StageResult:
    name: str
    directory: Path
    metrics: dict[str, float]


def stage_overrides(stage: StageConfig, previous_model: Path | None, command_line: Sequence[str]) -> list[str]:
    overrides = [*stage.overrides, *command_line]
    sets_model = any(o.split("=", 1)[0].lstrip("+~") == "model.name_or_path" for o in stage.overrides)
    if previous_model is not None and not sets_model:
        overrides.append(f"model.name_or_path={previous_model}")
    return overrides


def run_pipeline(
    stages: Sequence[StageConfig],
    run_dir: Path,
    command_line: Sequence[str],
    compose: Callable[[list[str]], DictConfig],
) -> list[StageResult]:
    from rlkit.evaluate import evaluate_run
    from rlkit.launch import train

    results: list[StageResult] = []
    previous: Path | None = None
    for index, stage in enumerate(stages):
        if stage.kind not in STAGE_KINDS:
            raise ValueError(f"stages[{index}].kind: unknown {stage.kind!r}; choose one of {', '.join(STAGE_KINDS)}")
        directory = run_dir / f"{index}-{stage.name}"
        cfg = compose(stage_overrides(stage, previous, command_line))
        print(f"== stage {index} ({stage.name}): {directory}", flush=True)
        directory.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, directory / "config.yaml")  # the stage's composed config
        metrics = evaluate_run(cfg, directory) if stage.kind == "evaluate" else train(cfg, directory)
        results.append(StageResult(stage.name, directory, metrics))
        if stage.kind == "train":
            previous = directory / "final"
    return results


def plot_pipeline(results: Sequence[StageResult], out_path: Path) -> Path:
    """Held-out accuracy and training reward of every training stage on one step axis."""
    from rlkit.loggers.jsonl import read_metrics
    from rlkit.loggers.plot import Series, plot_runs

    series, first_step = [], 0
    for r in results:
        metrics = RunOutputs(r.directory).metrics
        if not metrics.exists():  # evaluation stages log no steps
            continue
        records = read_metrics(metrics)
        series.append(Series(r.name, records, first_step))
        first_step += max((rec["step"] for rec in records), default=0)
    return plot_runs(series, ("eval/accuracy", "reward/mean"), out_path, title="pipeline: " + " -> ".join(r.name for r in results))


def summary(results: Sequence[StageResult]) -> str:
    """Each stage's held-out metrics, headed by the greedy accuracy after every stage."""
    accuracy = [(r.name, r.metrics.get("eval/accuracy", r.metrics.get("accuracy"))) for r in results]
    steps = " -> ".join(f"{name} {value:.3f}" for name, value in accuracy if value is not None)
    lines = [f"held-out accuracy after each stage: {steps}", "stage results (held-out):"]
    for r in results:
        shown = {k: v for k, v in r.metrics.items() if not k.startswith("time/")}
        text = "  ".join(f"{k}={v:.3f}" for k, v in sorted(shown.items()))
        lines.append(f"  {r.name:<10} {text}")
    return "\n".join(lines)
