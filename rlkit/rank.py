"""One rank of a training run: build the components, resume, train, report.

Every launcher ends here: this process for a single-process run, each spawned rank
(:mod:`rlkit.backends.launch`), each Ray trainer actor (:mod:`rlkit.cluster.trainer_group`).
:func:`rlkit.launch.train` decides which; this module never starts processes itself.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rlkit.build import build_environment, build_judge, build_reward, generator_spec, resolve_components
from rlkit.config import RunConfig, typed_run_config
from rlkit.data.checks import check_dataset_prompts
from rlkit.loggers.base import RunInfo
from rlkit.models.checks import check_context_length, tiny_defaults_warning
from rlkit.outputs import RunOutputs

_log = logging.getLogger(__name__)


def train_rank(cfg: DictConfig, run_dir: Path, reward=None) -> dict[str, float]:
    """Train this rank's part of the run configured by ``cfg`` (a concrete backend, no
    ``cluster``); returns the final held-out metrics. ``reward``, when given, is used
    instead of building the configured one (the Python API's ``reward_fn``)."""
    from rlkit.algorithms.base import TrainContext
    from rlkit.data.sampler import SampleSource
    from rlkit.hub import publish
    from rlkit.loggers.jsonl import truncate_after
    from rlkit.manifest import recorded
    from rlkit.models.loading import load_tokenizer, resolve_path
    from rlkit.trainer.checkpoint import CheckpointManager
    from rlkit.trainer.loop import Trainer, set_seed

    run = typed_run_config(cfg)
    parts = resolve_components(run)
    outputs = RunOutputs(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Write the built-in model's files before any process group exists: once
    # torch.distributed is up, transformers' save_pretrained writes nothing on ranks != 0.
    model_path = resolve_path(run.model)
    check_context_length(run.model, model_path, cfg.algo)
    set_seed(run.trainer.seed)
    backend = parts["backend"].build()
    warning = tiny_defaults_warning(run.model, run.trainer)
    if warning and backend.is_main:
        _log.warning(warning)
    algo = parts["algo"]
    dataset = parts["data"].build()
    train_samples = dataset.load("train", algo.cls.sample_kind)
    eval_samples = dataset.load("eval", algo.cls.sample_kind)

    checkpoints = CheckpointManager(outputs.checkpoints, run.trainer.keep_checkpoints)
    # The newest checkpoint whose files are intact (one warning for each newer damaged one).
    resume_from = checkpoints.latest_usable(warn=backend.is_main) if run.trainer.resume else None
    tokenizer = load_tokenizer(run.model)
    check_dataset_prompts(dataset, {"train": train_samples, "eval": eval_samples}, tokenizer, run.model.name_or_path)
    policy = backend.wrap(load_policy(run, algo.cls.model_kind, tokenizer, resume_from))
    samples = SampleSource(train_samples, run.trainer.batch_size, run.trainer.seed, run.trainer.max_steps,
                           backend.dp_rank, backend.dp_size)
    reward = reward or (build_reward(parts["reward"]) if "reward" in parts else None)
    ctx = TrainContext(policy=policy, tokenizer=tokenizer, backend=backend, trainer=run.trainer, model=run.model,
                       generator=generator_spec(parts).build(policy, tokenizer), reward=reward,
                       judge=build_judge(reward), samples=samples,
                       environment=build_environment(parts["env"]) if "env" in parts else None)
    algorithm = algo.build(ctx)

    if backend.is_main:
        # On every start: metrics logged after the checkpoint resumed from (all of them when
        # starting over) are logged again, and a torn last line of a killed write goes.
        truncate_after(outputs.metrics, CheckpointManager.step_of(resume_from) if resume_from else -1)
    info = RunInfo(run_dir=run_dir, name=run_dir.name, total_steps=run.trainer.max_steps,
                   config=OmegaConf.to_container(cfg, resolve=True))
    loggers = [r.build(info) for r in parts["loggers"].values()] if backend.is_main else []
    trainer = Trainer(
        run.trainer, algorithm=algorithm, backend=backend, samples=samples,
        eval_samples=eval_samples, loggers=loggers, outputs=outputs,
        save_model=lambda directory: save_model(run, backend, policy, tokenizer, directory),
    )
    if resume_from:
        trainer.resume(resume_from)
        if backend.is_main:
            print(f"resumed from {resume_from} (step {trainer.step})", flush=True)
    try:
        with recorded(run_dir, info.config.get("data", {}), model_path) if backend.is_main else nullcontext():
            final = trainer.fit()
        if backend.is_main:
            print(report(trainer.initial_eval, final, outputs.final), flush=True)
            publish(outputs.final, info.config, final, outputs.metrics_plot, run.hub)
        return final
    finally:
        for logger in loggers:
            logger.close()
        if ctx.environment is not None:
            ctx.environment.close()
        backend.close()


def load_policy(run: RunConfig, model_kind: str, tokenizer, resume_from: Path | None):
    """The model to train: from the checkpoint being resumed, else from ``model``'s weights."""
    from rlkit.models.loading import load_adapter, load_model

    lora = run.model.lora.enabled
    model = load_model(run.model, model_kind, pad_token_id=tokenizer.pad_token_id,
                       path=str(resume_from) if resume_from and not lora else None)
    if resume_from and lora:
        load_adapter(model, resume_from / "adapter")
    return model


def save_model(run: RunConfig, backend, policy, tokenizer, directory: Path) -> None:
    """The policy in Hugging Face format (and its LoRA adapter). Every rank takes part in
    gathering the full weights; rank 0 writes them."""
    from rlkit.models.loading import export_pretrained, save_adapter

    full = backend.gathered_model(policy)
    if not backend.is_main:
        return
    export_pretrained(full, tokenizer, directory)
    if run.model.lora.enabled:
        save_adapter(full, directory / "adapter")


def report(before: dict[str, float], after: dict[str, float], final_model: Path) -> str:
    """One line per held-out metric: before training -> after."""
    lines = [f"held-out metrics ({final_model}):"]
    for key in sorted(k for k in after if k.startswith("eval/")):
        start = f"{before[key]:.3f} -> " if key in before else ""
        lines.append(f"  {key[5:]:<16} {start}{after[key]:.3f}")
    return "\n".join(lines)
