"""A bridge to EleutherAI's lm-evaluation-harness: score a trained model (a run's ``final/``
or any Hugging Face checkpoint) on its tasks -- MMLU, HellaSwag, ARC, GSM8K, HumanEval, ... --
or on task definitions of your own (``harness.include_path``: a folder of task YAMLs).

    python -m rlkit.evaluate harness=lm_eval harness.tasks=[hellaswag,mmlu] model.name_or_path=outputs/<run>/final

Needs the ``lm-eval`` extra (``pip install -e '.[lm-eval]'``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from rlkit.config import ModelConfig


@dataclass
class LmEvalConfig:
    #: Task or group names known to lm-eval (or defined under ``include_path``).
    tasks: list[str] = field(default_factory=list)
    #: Few-shot examples per prompt (null: each task's default).
    num_fewshot: Optional[int] = None
    #: Documents per task (null: all; a fraction < 1 takes that share).
    limit: Optional[float] = None
    batch_size: int = 8
    #: A folder of task YAMLs of your own, added to lm-eval's.
    include_path: Optional[str] = None
    #: Render prompts with the model's chat template (instruct models).
    apply_chat_template: bool = False
    system_instruction: Optional[str] = None
    #: null: the first GPU if there is one, else the CPU.
    device: Optional[str] = None
    #: Per-document outputs in eval_harness_samples.jsonl.
    log_samples: bool = False
    seed: int = 0


HARNESSES = ("lm_eval",)


def harness_config(node: Mapping[str, Any]) -> LmEvalConfig:
    """The typed ``harness`` node; a wrong name, key or type fails naming the key."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    fields = dict(node)
    name = fields.pop("name", None)
    if name not in HARNESSES:
        raise ValueError(f"harness: unknown harness {name!r}; harnesses: {', '.join(HARNESSES)}")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(LmEvalConfig), fields))
    except OmegaConfBaseException as exc:
        raise ValueError(f"harness.{getattr(exc, 'full_key', '') or ''}: {getattr(exc, 'msg', exc)}") from None


def _require_lm_eval():
    try:
        import lm_eval
    except ImportError as exc:
        raise ImportError("harness=lm_eval needs the lm-eval extra: pip install -e '.[lm-eval]' "
                          f"(or pip install 'lm-eval>=0.4.8'); {exc}") from None
    return lm_eval


def run_lm_eval(config: LmEvalConfig, model: ModelConfig, model_path: str, out_dir: Path) -> dict[str, float]:
    """Evaluate ``model_path`` on ``config.tasks``; write ``eval_harness.json`` (lm-eval's
    results, versions and config) into ``out_dir`` and return ``{"<task>/<metric>": value}``."""
    if not config.tasks:
        raise ValueError("harness.tasks is empty; e.g. harness.tasks=[hellaswag,mmlu]")
    lm_eval = _require_lm_eval()
    from lm_eval.tasks import TaskManager

    import torch

    task_manager = TaskManager(include_path=config.include_path) if config.include_path else TaskManager()
    unknown = [t for t in config.tasks if t not in task_manager.all_tasks]
    if unknown:
        where = f" or under harness.include_path={config.include_path}" if config.include_path else ""
        raise ValueError(f"harness.tasks: unknown task(s) {', '.join(unknown)} (not in lm-eval's {len(task_manager.all_tasks)} "
                         f"tasks{where}; `lm-eval ls tasks` lists them)")
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model_args: dict[str, Any] = {"pretrained": model_path, "dtype": model.dtype,
                                  "trust_remote_code": model.trust_remote_code}
    if model.tokenizer:
        model_args["tokenizer"] = model.tokenizer
    results = lm_eval.simple_evaluate(
        model="hf", model_args=model_args, tasks=list(config.tasks), num_fewshot=config.num_fewshot,
        limit=config.limit, batch_size=config.batch_size, device=device, task_manager=task_manager,
        apply_chat_template=config.apply_chat_template, system_instruction=config.system_instruction,
        log_samples=config.log_samples, random_seed=config.seed, numpy_random_seed=config.seed,
        torch_random_seed=config.seed, fewshot_random_seed=config.seed,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = results.pop("samples", None)
    (out_dir / "eval_harness.json").write_text(json.dumps(results, indent=2, default=str))
    if samples:
        with (out_dir / "eval_harness_samples.jsonl").open("w") as f:
            for task, docs in samples.items():
                for doc in docs:
                    f.write(json.dumps({"task": task, **doc}, default=str) + "\n")
    return flat_metrics(results["results"])


def flat_metrics(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``{"task/metric": value}`` from lm-eval's ``results`` (``"acc,none"`` -> ``acc``)."""
    flat = {}
    for task, metrics in results.items():
        for key, value in metrics.items():
            name, _, filter_name = key.partition(",")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and name != "alias":
                suffix = "" if filter_name in ("", "none") else f"/{filter_name}"
                flat[f"{task}/{name}{suffix}"] = float(value)
    return flat
