"""Config -> registries -> components -> loop, for one training run.

Every component config is resolved and checked against its schema before anything heavy
(models, data) is built, so a bad key fails in a second, not after loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

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


def build_reward(resolved: Resolved):
    """Build a reward, resolving the children of a combined reward through the registry."""
    from rlkit.rewards.combined import CombinedReward

    if issubclass(resolved.cls, CombinedReward):
        return resolved.build(build_child=lambda node: build_reward(Resolved(*component_config("reward", node, "rewards"))))
    return resolved.build()


def train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    from rlkit.algorithms.base import TrainContext
    from rlkit.loggers.jsonl import truncate_after
    from rlkit.models.loading import export_pretrained, load_model, load_tokenizer
    from rlkit.trainer.checkpoint import CheckpointManager
    from rlkit.trainer.loop import RunOutputs, Trainer, set_seed

    run = typed_run_config(cfg)
    parts = resolve_components(run)
    outputs = RunOutputs(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    set_seed(run.trainer.seed)
    backend = parts["backend"].build()
    algo = parts["algo"]
    dataset = parts["data"].build()
    train_samples = dataset.load("train", algo.cls.sample_kind)
    eval_samples = dataset.load("eval", algo.cls.sample_kind)

    resume_from = CheckpointManager(outputs.checkpoints, run.trainer.keep_checkpoints).latest() if run.trainer.resume else None
    tokenizer = load_tokenizer(run.model)
    policy = backend.wrap(load_model(run.model, algo.cls.model_kind, pad_token_id=tokenizer.pad_token_id,
                                     path=str(resume_from) if resume_from and not run.model.lora.enabled else None))
    if resume_from and run.model.lora.enabled:
        from rlkit.models.loading import load_adapter

        load_adapter(policy, resume_from / "adapter")

    generator = parts.get("generator") or Resolved(*component_config("generator", {"name": "hf"}, "generators"))
    ctx = TrainContext(policy=policy, tokenizer=tokenizer, backend=backend, trainer=run.trainer, model=run.model,
                       generator=generator.build(policy, tokenizer),
                       reward=build_reward(parts["reward"]) if "reward" in parts else None)
    algorithm = algo.build(ctx)

    info = RunInfo(run_dir=run_dir, name=run_dir.name, total_steps=run.trainer.max_steps,
                   config=OmegaConf.to_container(cfg, resolve=True))
    if resume_from and backend.is_main:
        # Metrics logged after the checkpoint by the interrupted run are logged again.
        truncate_after(outputs.metrics, CheckpointManager.step_of(resume_from))
    loggers = [r.build(info) for r in parts["loggers"].values()] if backend.is_main else []

    def save_model(directory: Path) -> None:
        export_pretrained(policy, tokenizer, directory)
        if run.model.lora.enabled:
            from rlkit.models.loading import save_adapter

            save_adapter(policy, directory / "adapter")

    trainer = Trainer(
        run.trainer, algorithm=algorithm, backend=backend, train_samples=train_samples,
        eval_samples=eval_samples, loggers=loggers, outputs=outputs, save_model=save_model,
    )
    if resume_from:
        trainer.resume(resume_from)
    try:
        return trainer.fit()
    finally:
        for logger in loggers:
            logger.close()
        backend.close()


def run(cfg: DictConfig) -> dict[str, float]:
    from hydra.core.hydra_config import HydraConfig

    return train(cfg, Path(HydraConfig.get().runtime.output_dir))
