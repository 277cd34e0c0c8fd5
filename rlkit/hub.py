"""The final model's card (``final/README.md``) and its upload to the Hugging Face Hub.

The card is written with ``huggingface_hub``'s ``ModelCard``: metadata (base model, datasets,
library, tags, the final metrics as model-index results) and a body with the algorithm, its
key hyperparameters, the held-out metrics, the metrics plot and the command that trains it.
``hub.push=true hub.repo_id=<user>/<name>`` uploads ``final/`` with ``upload_folder`` at the
end of a completed run (needs a network and a token: ``HF_TOKEN`` or ``hf auth login``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from rlkit.loggers.base import flatten_config

CARD = "README.md"
PLOT = "metrics.png"
#: Trainer keys shown in the card (every scalar ``algo.*`` key is shown too).
TRAINER_KEYS = ("max_steps", "batch_size", "lr", "schedule", "warmup_steps", "weight_decay", "max_grad_norm", "seed")


@dataclass
class HubConfig:
    """``hub.*``: publishing the final model."""

    #: Upload ``final/`` (weights, tokenizer, model card) at the end of a completed run.
    push: bool = False
    #: ``<user or org>/<name>``; created if it does not exist.
    repo_id: Optional[str] = None
    private: bool = True
    #: Branch, tag or commit to upload to (null: the default branch).
    revision: Optional[str] = None


class PublishError(RuntimeError):
    """``hub.push=true`` cannot work (no repo id, offline, no token) or the upload failed."""


def check_push(config: HubConfig) -> None:
    """Fail before training when a requested upload cannot happen."""
    if not config.push:
        return
    if not config.repo_id or "/" not in config.repo_id:
        raise PublishError(f"hub.push=true needs hub.repo_id=<user or org>/<name>, got {config.repo_id!r}")
    from huggingface_hub import get_token

    if os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        raise PublishError("hub.push=true but HF_HUB_OFFLINE is set: the upload needs the network")
    if get_token() is None:
        raise PublishError("hub.push=true needs a Hugging Face token: set HF_TOKEN or run `hf auth login`")


def push(final_dir: Path, config: HubConfig) -> str:
    """Upload ``final_dir`` to ``config.repo_id``; the commit's URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(config.repo_id, private=config.private, exist_ok=True)
        commit = api.upload_folder(repo_id=config.repo_id, folder_path=final_dir, revision=config.revision,
                                   commit_message=f"rlkit: upload {final_dir}")
    except Exception as e:  # network, authentication, permissions: one line naming the repo
        raise PublishError(f"hub.push: uploading {final_dir} to {config.repo_id} failed: "
                           f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    return commit.commit_url


def write_model_card(final_dir: Path, config: Mapping[str, Any], metrics: Mapping[str, float],
                     plot: Path | None = None, command: str | None = None) -> Path:
    """``final_dir/README.md`` for the run composed as ``config`` (a plain nested dict) with
    final ``metrics``; ``plot`` is copied next to it and shown."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    import rlkit

    algo = dict(config.get("algo") or {})
    algo_name = str(algo.get("name", "?"))
    model = dict(config.get("model") or {})
    base = str(model.get("name_or_path", ""))
    data = dict(config.get("data") or {})
    hub_datasets = [str(data["path"])] if data.get("name") == "hf" and data.get("path") else None
    hub_base = base if _is_hub_id(base) else None
    results = [
        EvalResult(task_type="text-generation", dataset_type=(hub_datasets or ["rlkit/" + str(data.get("name", "data"))])[0],
                   dataset_name=_dataset_description(data).strip("`"), metric_type=key.removeprefix("eval/"),
                   metric_value=float(value))
        for key, value in metrics.items() if key.startswith("eval/")
    ]
    repo_id = (config.get("hub") or {}).get("repo_id")
    name = str(repo_id or final_dir.parent.name)
    location = str(repo_id or final_dir)  # what from_pretrained takes
    card_data = ModelCardData(
        base_model=hub_base, datasets=hub_datasets, library_name="transformers", model_name=name,
        tags=["rlkit", algo_name, "text-generation"], pipeline_tag="text-generation",
        eval_results=results or None,
    )
    if plot is not None and Path(plot).exists():
        shutil.copyfile(plot, final_dir / PLOT)
    hyperparameters = [(f"trainer.{k}", v) for k, v in flatten_config(config.get("trainer") or {}) if k in TRAINER_KEYS]
    hyperparameters += [(f"algo.{k}", v) for k, v in flatten_config(algo) if k != "name"]
    lines = [
        f"# {name}", "",
        f"`{base}` post-trained with **{algo_name.upper()}** by rlkit {rlkit.__version__} "
        f"on {_dataset_description(data)}.", "",
        "## Held-out metrics", "",
        "| metric | value |", "| --- | --- |",
        *[f"| {k.removeprefix('eval/')} | {v:.4g} |" for k, v in metrics.items() if k.startswith("eval/")], "",
    ]
    if (final_dir / PLOT).exists():
        lines += [f"![metrics]({PLOT})", ""]
    lines += ["## Training", "", "| hyperparameter | value |", "| --- | --- |",
              *[f"| `{k}` | `{v}` |" for k, v in hyperparameters], ""]
    if command:
        lines += ["Trained with:", "", "```bash", command, "```", ""]
    lines += ["## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
              "", f'model = AutoModelForCausalLM.from_pretrained("{location}")',
              f'tokenizer = AutoTokenizer.from_pretrained("{location}")', "```", ""]
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines))
    path = final_dir / CARD
    card.save(path)
    return path


def _is_hub_id(name: str) -> bool:
    """``org/name`` that is not a local path (``builtin:tiny`` and directories are not)."""
    return name.count("/") == 1 and ":" not in name and not os.path.exists(name) and not name.startswith((".", "/"))


def _dataset_description(data: Mapping[str, Any]) -> str:
    kind = data.get("name", "?")
    if kind == "hf":
        return f"`{data.get('path')}`"
    if kind == "files":
        return f"`{Path(str(data.get('train'))).name}`"
    return f"the built-in `{kind}` task"


def publish(final_dir: Path, config: Mapping[str, Any], metrics: Mapping[str, float], plot: Path | None,
            hub: HubConfig) -> None:
    """At the end of a completed run: the model card, then the upload when ``hub.push``."""
    write_model_card(final_dir, config, metrics, plot, command=_command_line())
    if hub.push:
        print(f"uploaded {final_dir} to the Hugging Face Hub: {push(final_dir, hub)}", flush=True)


def _command_line() -> str | None:
    """``python -m rlkit <args>`` when this process is rlkit's command line."""
    if not sys.argv or Path(sys.argv[0]).resolve() != Path(__file__).with_name("__main__.py").resolve():
        return None
    return " ".join(["python -m rlkit", *map(shlex.quote, sys.argv[1:])])
