"""The warm start: a cached SFT of the built-in tiny model that other algorithms start from.

DPO, reward modelling and online RL need a policy that already answers the task: on the
untrained built-in model DPO's preference accuracy stays at chance and GRPO samples no
correct answer to reinforce. So when a run of such an algorithm (its ``Config`` declares
``starts_from_warm_start``) names the untrained built-in model (``model.name_or_path:
builtin:tiny``) on the built-in task (``data=arithmetic``), it starts from this SFT instead,
and says so in one line (``model.warm_start=false`` turns it off; ``RLKIT_WARM_START=0`` in
the environment turns it off for every run, as the test suite does for tests that pin their
own starting model). A run that names its own model or data gets exactly what it asked for.

The SFT is trained once per config -- the built-in model's, the task's and :data:`RECIPE` --
into ``<model cache>/models/tiny-sft-<hash>/``: every later command and test reuses it.
It is trained in a temporary sibling directory and renamed into place under an exclusive
file lock, so two commands started together build it once and neither sees half a model.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from rlkit.config import RunConfig, TrainerConfig
from rlkit.models.tiny import BUILTIN_PREFIX, cache_root

#: Bumped when the way the warm start is trained changes, so older caches are not reused.
FORMAT = 1
#: The final metrics of the SFT, kept beside the model.
METRICS_FILE = "warm_start.json"
#: ``RLKIT_WARM_START=0``: no run of this environment starts from the warm start.
ENV_SWITCH = "RLKIT_WARM_START"


@dataclass(frozen=True)
class WarmStartRecipe:
    """How the warm start is trained: the default pipeline's SFT stage (conf/pipeline/sft_grpo.yaml).

    Half the demonstrations work the sum out column by column, so the model answers the task
    often but not always right: preference losses have answers to rank and online RL has
    worked answers that are right more often to reinforce.
    """

    steps: int = 600
    worked_fraction: float = 0.5
    eval_max_new_tokens: int = 32


RECIPE = WarmStartRecipe()


def applies(run: RunConfig, algo_config: Any) -> bool:
    """Whether this run starts from the warm start: the algorithm wants one, the model is the
    untrained built-in one, the data is the built-in single-turn task, and ``model.warm_start``
    is on."""
    return (
        run.model.warm_start
        and os.environ.get(ENV_SWITCH, "1") != "0"
        and getattr(algo_config, "starts_from_warm_start", False)
        and run.model.name_or_path == f"{BUILTIN_PREFIX}tiny"
        and run.data.get("name") == "arithmetic"
        and run.env is None  # a multi-turn environment is another task (e.g. tool calls)
    )


def sft_config(run: RunConfig) -> DictConfig:
    """The composed config of the warm start's SFT run: :data:`RECIPE` on the run's built-in
    model and task (pair offsets left out: they shape preference pairs, not SFT data)."""
    data = {k: v for k, v in run.data.items() if k not in ("min_wrong_offset", "max_wrong_offset")}
    data["worked_fraction"] = RECIPE.worked_fraction
    trainer = asdict(TrainerConfig(max_steps=RECIPE.steps, batch_size=128, micro_batch_size=128, lr=3e-3,
                                   warmup_steps=20, eval_every=0, save_every=0, log_every=50,
                                   eval_max_new_tokens=RECIPE.eval_max_new_tokens))
    trainer["schedule"] = str(trainer["schedule"].value)
    return OmegaConf.create({
        "trainer": trainer,
        "model": {"name_or_path": f"{BUILTIN_PREFIX}tiny", "tiny": asdict(run.model.tiny), "warm_start": False},
        "algo": {"name": "sft"},
        "backend": {"name": "single"},
        "data": data,
        "logger": {"console": {}, "jsonl": {}},
    })


def cache_dir(sft: DictConfig) -> Path:
    """Where the warm start of ``sft`` (see :func:`sft_config`) is cached: keyed by its config."""
    text = json.dumps({"format": FORMAT, "sft": OmegaConf.to_container(sft, resolve=True)}, sort_keys=True)
    return cache_root() / "models" / f"tiny-sft-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def warm_started(cfg: DictConfig, run: RunConfig, algo_config: Any) -> DictConfig:
    """``cfg`` starting from the warm start when it applies (trained first if not cached),
    with one line saying so; otherwise ``cfg`` itself."""
    if not applies(run, algo_config):
        return cfg
    sft = sft_config(run)
    target = ensure(sft)
    metrics = json.loads((target / METRICS_FILE).read_text())
    accuracy = metrics.get("eval/accuracy")
    print(f"model: starting from the cached SFT warm start of {run.model.name_or_path} ({target}; "
          f"{RECIPE.steps} SFT steps, held-out accuracy {accuracy:.3f}); model.warm_start=false starts from the "
          "untrained model", flush=True)
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.model.name_or_path = str(target)
    return cfg


def ensure(sft: DictConfig) -> Path:
    """The cached warm start of ``sft``, trained now if no process has done so yet.

    An exclusive lock on ``<target>.lock`` makes concurrent callers wait for the one that
    trains; the model appears at the target path only complete (a rename of a finished
    directory). A killed build leaves a staging directory that the next build removes.
    """
    target = cache_dir(sft)
    if (target / METRICS_FILE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        if not _try_lock(lock):
            print(f"model: waiting for another process to finish the warm start {target}", flush=True)
            fcntl.lockf(lock, fcntl.LOCK_EX)
        try:
            if not (target / METRICS_FILE).exists():
                _build(sft, target)
        finally:
            fcntl.lockf(lock, fcntl.LOCK_UN)
    return target


def _try_lock(lock) -> bool:
    try:
        fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _build(sft: DictConfig, target: Path) -> None:
    from rlkit.rank import train_rank

    for stale in target.parent.glob(f".{target.name}-*"):  # a killed build's staging
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    print(f"model: training the SFT warm start of the built-in model once ({RECIPE.steps} steps); it is cached "
          f"in {target} for every later run", flush=True)
    try:
        metrics = train_rank(sft, staging / "run")  # one process; the cache lock is this run's lock
        final = staging / "run" / "final"
        (final / METRICS_FILE).write_text(json.dumps(metrics, indent=1) + "\n")
        OmegaConf.save(sft, final / "warm_start_config.yaml")
        os.replace(final, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
