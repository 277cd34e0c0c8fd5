"""Typed schemas of the top-level config, and the resolution of component configs.

Hydra validates the top-level keys (``trainer``, ``model``, ...) against these dataclasses
while it composes, so a misspelled or mistyped key fails before anything runs or is
submitted. Component groups (``algo``, ``data``, ``reward``, ...) name their registry entry
with ``name:``; :func:`component_config` checks the rest of the node against that
component's own ``Config`` dataclass.

This module must stay importable without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlkit.cluster.config import ClusterConfig
from rlkit.hub import HubConfig
from rlkit.registry import Registry


@dataclass
class TrainerConfig:
    max_steps: int = 100
    seed: int = 0
    #: Samples per optimizer step (pairs for DPO, prompts for online RL), across all ranks.
    batch_size: int = 32
    #: Samples per forward/backward; the update does not depend on it.
    micro_batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-8
    warmup_steps: int = 0
    #: cosine | linear | constant, after the warmup.
    schedule: str = "cosine"
    min_lr_ratio: float = 0.0
    max_grad_norm: float = 1.0
    log_every: int = 1
    #: Evaluate every N steps (0: only at the start and end).
    eval_every: int = 50
    #: Held-out samples used for evaluation (0: all of the eval split).
    eval_samples: int = 200
    eval_batch_size: int = 64
    eval_max_new_tokens: int = 16
    #: Held-out prompts whose greedy completions are logged at each evaluation
    #: (samples/step_N.jsonl, logger tables); 0: none.
    log_samples: int = 8
    #: Save a checkpoint every N steps (0: only the final model).
    save_every: int = 50
    keep_checkpoints: int = 2
    #: Resume from the run directory's latest complete checkpoint if there is one.
    resume: bool = True


@dataclass
class LoraConfig:
    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class TinyModelConfig:
    """The built-in Llama-style model (``model.name_or_path: builtin:tiny``)."""

    hidden_size: int = 128
    intermediate_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    max_position_embeddings: int = 256
    vocab_size: int = 512
    seed: int = 0


@dataclass
class ModelConfig:
    #: A local directory, a hub id, or ``builtin:tiny``.
    name_or_path: str = "builtin:tiny"
    #: Tokenizer location when it differs from the model's.
    tokenizer: Optional[str] = None
    dtype: str = "float32"
    gradient_checkpointing: bool = False
    trust_remote_code: bool = False
    attn_implementation: Optional[str] = None
    lora: LoraConfig = field(default_factory=LoraConfig)
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)


@dataclass
class EvalConfig:
    """``python -m rlkit.evaluate`` and evaluation stages of a pipeline."""

    split: str = "eval"
    #: Prompts to score (0: the whole split).
    samples: int = 200
    #: Samples per prompt for pass@k (1: greedy decoding only).
    k: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 32


@dataclass
class StageConfig:
    """One stage of a pipeline (see rlkit.pipeline)."""

    name: str = "???"
    #: train | evaluate
    kind: str = "train"
    overrides: list[str] = field(default_factory=list)


@dataclass
class SweepSummaryConfig:
    """The table, CSV and plot written after a multirun (rlkit.sweeps.callback)."""

    enabled: bool = True
    #: Final metric to sort by and plot, e.g. eval/accuracy (null: the first eval/* one).
    metric: Optional[str] = None
    #: Sort direction (null: inferred from the name; losses ascend, the rest descend).
    descending: Optional[bool] = None
    #: Also write summary_<metric>.png (the metric against step, one line per job).
    plot: bool = True


@dataclass
class RunConfig:
    """The whole composed config. Component groups are checked by :func:`component_config`."""

    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    algo: Optional[dict[str, Any]] = None
    backend: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    reward: Optional[dict[str, Any]] = None
    generator: Optional[dict[str, Any]] = None
    logger: dict[str, Any] = field(default_factory=dict)
    eval: EvalConfig = field(default_factory=EvalConfig)
    #: An external benchmark harness for rlkit.evaluate (harness=lm_eval); null: rlkit's own evaluation.
    harness: Optional[dict[str, Any]] = None
    #: A pipeline: used when no ``algo`` is chosen.
    stages: list[StageConfig] = field(default_factory=list)
    sweep_summary: SweepSummaryConfig = field(default_factory=SweepSummaryConfig)
    #: Trainer ranks and generators as Ray actors (rlkit.cluster); null: this process and its ranks.
    cluster: Optional[ClusterConfig] = None
    #: Publishing the final model to the Hugging Face Hub (rlkit.hub).
    hub: HubConfig = field(default_factory=HubConfig)


#: Config group -> registry kind of the component it selects.
COMPONENT_GROUPS = {
    "algo": "algorithms",
    "backend": "backends",
    "data": "datasets",
    "reward": "rewards",
    "generator": "generators",
}


class ConfigError(ValueError):
    """A config node that does not fit its component's schema."""


def register_with_hydra() -> None:
    """Make ``rlkit_schema`` available to ``config.yaml`` and plugins' presets to the groups.

    Hydra finds the search-path plugin by scanning the ``hydra_plugins`` namespace package,
    which misses it under editable installs (their import hooks are invisible to the scan);
    registering it by hand covers both cases.
    """
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins
    from hydra.plugins.search_path_plugin import SearchPathPlugin

    from hydra_plugins.rlkit_searchpath.rlkit_searchpath import RlkitPluginConfigs
    from rlkit.help import register_help_resolver
    from rlkit.sweeps.launchers import register_launchers

    ConfigStore.instance().store(name="rlkit_schema", node=RunConfig)
    register_launchers()  # hydra/launcher=submitit_slurm|submitit_local and their resolvers
    register_help_resolver()  # --help lists each group's options (conf/hydra/help/rlkit.yaml)
    plugins = Plugins.instance()
    if not any(cls.__name__ == RlkitPluginConfigs.__name__ for cls in plugins.discover(SearchPathPlugin)):
        plugins.register(RlkitPluginConfigs)


def component_config(
    key: str, node: DictConfig | dict, kind: str, name: str | None = None
) -> tuple[type, Any]:
    """Resolve ``node`` to its component class and typed config.

    The component is ``name``, or the node's own ``name`` entry. Raises ConfigError naming
    ``key`` (e.g. ``algo.lr``) for unknown fields or bad types.
    """
    node = OmegaConf.create(node) if isinstance(node, dict) else node
    if name is None:
        if "name" not in node:
            raise ConfigError(f"{key}: missing 'name' (the registered component to use)")
        name = node.name
    cls = Registry(kind).load(name)
    fields = OmegaConf.masked_copy(node, [k for k in node.keys() if k != "name"])
    try:
        typed = OmegaConf.merge(OmegaConf.structured(cls.Config), fields)
        return cls, OmegaConf.to_object(typed)
    except OmegaConfBaseException as exc:
        where = f"{key}.{exc.full_key}" if getattr(exc, "full_key", None) else key
        raise ConfigError(f"{where}: {exc.msg if hasattr(exc, 'msg') else exc} "
                          f"(schema: {cls.__module__}.{cls.Config.__qualname__})") from exc


def typed_run_config(cfg: DictConfig) -> RunConfig:
    """The composed config as dataclasses (component groups stay plain dicts)."""
    merged = OmegaConf.merge(OmegaConf.structured(RunConfig), cfg)
    return OmegaConf.to_object(merged)
