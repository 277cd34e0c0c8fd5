"""Config -> registries -> components -> loop, for one training run.

Every component config is resolved and checked against its schema before anything heavy
(models, data) is built, so a bad key fails in a second, not after loading a model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from rlkit.config import COMPONENT_GROUPS, RunConfig, component_config, typed_run_config
from rlkit.loggers.base import RunInfo


@dataclass
class Resolved:
    """A component class with its typed config."""

    cls: type
    config: Any

    def build(self, *args, **kwargs):
        return self.cls(self.config, *args, **kwargs)


def resolve_components(run: RunConfig) -> dict[str, Resolved]:
    """Resolve and validate every configured component (``loggers`` maps name -> Resolved)."""
    resolved: dict[str, Any] = {}
    for group, kind in COMPONENT_GROUPS.items():
        node = getattr(run, group)
        if node:
            resolved[group] = Resolved(*component_config(group, node, kind))
    resolved["loggers"] = {
        name: Resolved(*component_config(f"logger.{name}", node or {}, "loggers", name=name))
        for name, node in run.logger.items()
    }
    return resolved


def generator_spec(parts: dict[str, Resolved]) -> Resolved:
    """The configured generator, or the in-process ``hf`` one."""
    return parts.get("generator") or Resolved(*component_config("generator", {"name": "hf"}, "generators"))


def build_reward(resolved: Resolved):
    """Build a reward, resolving the children of a combined reward through the registry."""
    from rlkit.rewards.combined import CombinedReward

    if issubclass(resolved.cls, CombinedReward):
        return resolved.build(build_child=lambda node: build_reward(Resolved(*component_config("reward", node, "rewards"))))
    return resolved.build()


def train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    from rlkit.algorithms.base import TrainContext
    from rlkit.backends.distributed import inside_launch
    from rlkit.loggers.jsonl import truncate_after
    from rlkit.models.loading import export_pretrained, load_model, load_tokenizer, resolve_path
    from rlkit.trainer.checkpoint import CheckpointManager
    from rlkit.trainer.loop import RunOutputs, Trainer, set_seed

    run = typed_run_config(cfg)
    parts = resolve_components(run)
    cfg, parts["backend"] = select_backend(cfg, parts["backend"], run)
    nproc = getattr(parts["backend"].config, "nproc_per_node", 1)
    outputs = RunOutputs(run_dir)
    done = outputs.completed_metrics()
    if done is not None:
        # Finished here before (a re-run sweep or pipeline): keep it, train nothing.
        print(f"{run_dir} already completed; not training again", flush=True)
        return done
    if run.cluster is not None:
        from rlkit.cluster.driver import train_on_cluster

        # Trainer ranks and generators become Ray actors; each rank runs this function
        # again, with no cluster and the generator actors behind generator=ray.
        return train_on_cluster(cfg, run_dir)
    if nproc > 1 and not inside_launch():
        from rlkit.backends.launch import launch_train

        # Start the ranks, each running this function; rank 0's result comes back.
        return launch_train(cfg, run_dir, nproc)
    run_dir.mkdir(parents=True, exist_ok=True)

    # Write the built-in model's files before any process group exists: once
    # torch.distributed is up, transformers' save_pretrained writes nothing on ranks != 0.
    resolve_path(run.model)
    set_seed(run.trainer.seed)
    backend = parts["backend"].build()
    algo = parts["algo"]
    dataset = parts["data"].build()
    train_samples = dataset.load("train", algo.cls.sample_kind)
    eval_samples = dataset.load("eval", algo.cls.sample_kind)

    resume_from = CheckpointManager(outputs.checkpoints, run.trainer.keep_checkpoints).latest() if run.trainer.resume else None
    tokenizer = load_tokenizer(run.model)
    model = load_model(run.model, algo.cls.model_kind, pad_token_id=tokenizer.pad_token_id,
                       path=str(resume_from) if resume_from and not run.model.lora.enabled else None)
    if resume_from and run.model.lora.enabled:
        from rlkit.models.loading import load_adapter

        load_adapter(model, resume_from / "adapter")
    policy = backend.wrap(model)

    ctx = TrainContext(policy=policy, tokenizer=tokenizer, backend=backend, trainer=run.trainer, model=run.model,
                       generator=generator_spec(parts).build(policy, tokenizer),
                       reward=build_reward(parts["reward"]) if "reward" in parts else None)
    algorithm = algo.build(ctx)

    info = RunInfo(run_dir=run_dir, name=run_dir.name, total_steps=run.trainer.max_steps,
                   config=OmegaConf.to_container(cfg, resolve=True))
    if resume_from and backend.is_main:
        # Metrics logged after the checkpoint by the interrupted run are logged again.
        truncate_after(outputs.metrics, CheckpointManager.step_of(resume_from))
    loggers = [r.build(info) for r in parts["loggers"].values()] if backend.is_main else []

    def save_model(directory: Path) -> None:
        # Every rank takes part in gathering the full weights; rank 0 writes them.
        full = backend.gathered_model(policy)
        if not backend.is_main:
            return
        export_pretrained(full, tokenizer, directory)
        if run.model.lora.enabled:
            from rlkit.models.loading import save_adapter

            save_adapter(full, directory / "adapter")

    trainer = Trainer(
        run.trainer, algorithm=algorithm, backend=backend, train_samples=train_samples,
        eval_samples=eval_samples, loggers=loggers, outputs=outputs, save_model=save_model,
    )
    if resume_from:
        trainer.resume(resume_from)
        if backend.is_main:
            print(f"resumed from {resume_from} (step {trainer.step})", flush=True)
    try:
        final = trainer.fit()
        if backend.is_main:
            print(report(trainer.initial_eval, final, run_dir), flush=True)
        return final
    finally:
        for logger in loggers:
            logger.close()
        backend.close()


def select_backend(cfg: DictConfig, resolved: Resolved, run: RunConfig) -> tuple[DictConfig, Resolved]:
    """``backend=auto`` (a backend class with ``select``) -> the backend it chooses; the
    returned config names that backend, so launched ranks and loggers see the choice."""
    if not hasattr(resolved.cls, "select"):
        return cfg, resolved
    choice = resolved.cls.select(resolved.config, run.model)
    node = {"name": choice.name, **choice.config}
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.backend = node
    return cfg, Resolved(*component_config("backend", node, "backends"))


def report(before: dict[str, float], after: dict[str, float], run_dir: Path) -> str:
    """One line per held-out metric: before training -> after."""
    lines = [f"held-out metrics ({run_dir / 'final'}):"]
    for key in sorted(k for k in after if k.startswith("eval/")):
        start = f"{before[key]:.3f} -> " if key in before else ""
        lines.append(f"  {key[5:]:<16} {start}{after[key]:.3f}")
    return "\n".join(lines)


def run(cfg: DictConfig) -> dict[str, float]:
    """The configured pipeline of stages, or one training run of ``algo``.

    ``algo=...`` on the command line without ``pipeline=...`` asks for one run of that
    algorithm, so the default pipeline (SFT -> GRPO -> evaluation) never swallows it.
    """
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig

    from rlkit.pipeline import plot_pipeline, run_pipeline, summary

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    chosen = {o.split("=", 1)[0].lstrip("+~") for o in hydra_cfg.overrides.task}
    stages = typed_run_config(cfg).stages
    if not stages or ("algo" in chosen and "pipeline" not in chosen):
        return train(cfg, run_dir)
    command_line = [o for o in hydra_cfg.overrides.task if not o.startswith(("pipeline=", "hydra."))]
    # Each stage is one plain run: compose it without the pipeline.
    results = run_pipeline(stages, run_dir, command_line,
                           lambda overrides: compose("config", overrides=["pipeline=none", *overrides]))
    print(summary(results))
    print(f"plot: {plot_pipeline(results, run_dir / 'pipeline.png')}", flush=True)
    return results[-1].metrics
