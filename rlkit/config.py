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
from rlkit.registry import CONFIG_GROUPS, Registry
from rlkit.schema import Choice, Dtype, OutOfRange, above, at_least, between, check_ranges


class Schedule(Choice):
    """The learning rate after the warmup."""

    cosine = "cosine"
    linear = "linear"
    constant = "constant"


@dataclass
class TrainerConfig:
    max_steps: int = field(default=100, metadata=at_least(0))
    seed: int = 0
    #: Samples per optimizer step (pairs for DPO, prompts for online RL), across all ranks.
    batch_size: int = field(default=32, metadata=at_least(1))
    #: Samples per forward/backward; the update does not depend on it.
    micro_batch_size: int = field(default=32, metadata=at_least(1))
    #: SFT, DPO and RM: when > 0, a micro-batch also holds at most this many tokens, padding
    #: included (rows x longest row); the step's samples are grouped by length first, so
    #: short samples are not padded to the longest. 0: consecutive micro_batch_size chunks.
    #: The update does not depend on it.
    micro_batch_tokens: int = field(default=0, metadata=at_least(0))
    lr: float = field(default=1e-3, metadata=above(0))
    weight_decay: float = field(default=0.0, metadata=at_least(0))
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = field(default=1e-8, metadata=above(0))
    warmup_steps: int = field(default=0, metadata=at_least(0))
    #: cosine | linear | constant, after the warmup.
    schedule: Schedule = Schedule.cosine
    #: The schedule's final learning rate, as a share of ``lr``.
    min_lr_ratio: float = field(default=0.0, metadata=between(0, 1))
    max_grad_norm: float = field(default=1.0, metadata=above(0))
    log_every: int = field(default=1, metadata=at_least(1))
    #: Evaluate every N steps (0: only at the start and end).
    eval_every: int = field(default=50, metadata=at_least(0))
    #: Held-out samples used for evaluation (0: all of the eval split).
    eval_samples: int = field(default=200, metadata=at_least(0))
    eval_batch_size: int = field(default=64, metadata=at_least(1))
    eval_max_new_tokens: int = field(default=16, metadata=at_least(1))
    #: Held-out prompts whose greedy completions are logged at each evaluation
    #: (samples/step_N.jsonl, logger tables); 0: none.
    log_samples: int = field(default=8, metadata=at_least(0))
    #: Save a checkpoint every N steps (0: only the final model).
    save_every: int = field(default=50, metadata=at_least(0))
    keep_checkpoints: int = field(default=2, metadata=at_least(1))
    #: Resume from the run directory's latest complete checkpoint if there is one.
    resume: bool = True
    #: A NaN/inf loss or gradient norm: stop (the run fails at that step) | skip (drop the
    #: update, counted in nonfinite/skipped). See rlkit.trainer.nonfinite.
    on_nonfinite: str = "stop"


@dataclass
class LoraConfig:
    enabled: bool = False
    r: int = field(default=8, metadata=at_least(1))
    alpha: int = field(default=16, metadata=above(0))
    dropout: float = field(default=0.0, metadata=between(0, 1))
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class TinyModelConfig:
    """The built-in Llama-style model (``model.name_or_path: builtin:tiny``)."""

    hidden_size: int = field(default=128, metadata=at_least(1))
    intermediate_size: int = field(default=256, metadata=at_least(1))
    num_layers: int = field(default=4, metadata=at_least(1))
    num_heads: int = field(default=4, metadata=at_least(1))
    num_kv_heads: int = field(default=2, metadata=at_least(1))
    #: As long as the algorithms' default ``max_length`` (RoPE: no weights depend on it).
    max_position_embeddings: int = field(default=512, metadata=at_least(1))
    vocab_size: int = field(default=512, metadata=at_least(1))
    seed: int = 0


@dataclass
class ModelConfig:
    #: A local directory, a hub id, or ``builtin:tiny``.
    name_or_path: str = "builtin:tiny"
    #: Tokenizer location when it differs from the model's.
    tokenizer: Optional[str] = None
    dtype: Dtype = Dtype.float32
    gradient_checkpointing: bool = False
    trust_remote_code: bool = False
    attn_implementation: Optional[str] = None
    lora: LoraConfig = field(default_factory=LoraConfig)
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    #: Algorithms other than SFT start the untrained built-in model on the built-in task from
    #: its cached SFT (rlkit.models.warm_start); false: from the untrained model.
    warm_start: bool = True


@dataclass
class EvalConfig:
    """``python -m rlkit.evaluate`` and evaluation stages of a pipeline."""

    split: str = "eval"
    #: Prompts to score (0: the whole split).
    samples: int = field(default=200, metadata=at_least(0))
    #: Samples per prompt for pass@k (1: greedy decoding only).
    k: int = field(default=1, metadata=at_least(1))
    temperature: float = field(default=1.0, metadata=above(0))
    top_p: float = field(default=1.0, metadata=between(0, 1))
    max_new_tokens: int = field(default=32, metadata=at_least(1))


class StageKind(Choice):
    train = "train"
    evaluate = "evaluate"


@dataclass
class StageConfig:
    """One stage of a pipeline (see rlkit.pipeline)."""

    name: str = "???"
    #: train | evaluate
    kind: StageKind = StageKind.train
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
    #: A multi-turn environment (rlkit.environments); null: single-turn prompt -> completion.
    env: Optional[dict[str, Any]] = None
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


#: Config group -> registry kind of the component it selects (loggers: see ``logger``).
COMPONENT_GROUPS = {group: kind for kind, group in CONFIG_GROUPS.items() if kind != "loggers"}


class ConfigError(ValueError):
    """A config value that does not fit its schema; the message starts with its key."""


def register_with_hydra() -> None:
    """Make ``rlkit_schema``, every component's schema (rlkit.config_store) and plugins'
    presets available to Hydra, and the compose-time check (rlkit.config_check).

    Hydra finds the search-path plugin by scanning the ``hydra_plugins`` namespace package,
    which misses it under editable installs (their import hooks are invisible to the scan);
    registering it by hand covers both cases.
    """
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins
    from hydra.plugins.search_path_plugin import SearchPathPlugin

    from hydra_plugins.rlkit_searchpath.rlkit_searchpath import RlkitPluginConfigs
    from rlkit.help import register_help_resolver
    from rlkit.config_store import register_component_schemas
    from rlkit.sweeps.launchers import register_launchers

    ConfigStore.instance().store(name="rlkit_schema", node=RunConfig)
    register_component_schemas()
    register_launchers()  # hydra/launcher=submitit_slurm|submitit_local and their resolvers
    register_help_resolver()  # --help lists each group's options (conf/hydra/help/rlkit.yaml)
    plugins = Plugins.instance()
    if not any(cls.__name__ == RlkitPluginConfigs.__name__ for cls in plugins.discover(SearchPathPlugin)):
        plugins.register(RlkitPluginConfigs)


def typed_component_config(key: str, node: DictConfig | dict, kind: str, name: str | None = None) -> tuple[str, Any]:
    """``(name, typed config)`` of a component node, without importing the component.

    The component is ``name``, or the node's own ``name`` entry. Raises ConfigError naming
    the key (e.g. ``algo.kl_beta``) for an unknown field, a wrong type or choice, a missing
    mandatory value or a value out of its declared range.
    """
    node = OmegaConf.create(node) if isinstance(node, dict) else node
    if name is None:
        if "name" not in node:
            raise ConfigError(f"{key}: missing 'name' (the registered component to use)")
        name = node.name
    schema = Registry(kind).schema(name)
    fields = OmegaConf.masked_copy(node, [k for k in node.keys() if k != "name"])
    where = f"(schema: {schema.__module__}.{schema.__qualname__})"
    try:
        typed = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), fields))
    except OmegaConfBaseException as exc:
        at = f"{key}.{exc.full_key}" if getattr(exc, "full_key", None) else key
        raise ConfigError(f"{at}: {_first_line(exc)} {where}") from exc
    try:
        check_ranges(typed, key)
    except OutOfRange as exc:
        raise ConfigError(f"{exc} {where}") from exc
    return name, typed


def component_config(
    key: str, node: DictConfig | dict, kind: str, name: str | None = None
) -> tuple[type, Any]:
    """Resolve ``node`` to its component class and typed config (see typed_component_config)."""
    name, typed = typed_component_config(key, node, kind, name)
    return Registry(kind).load(name), typed


def typed_run_config(cfg: DictConfig) -> RunConfig:
    """The composed config as dataclasses (component groups stay plain dicts), with every
    top-level value checked against its declared range (ConfigError naming the key)."""
    components = [*COMPONENT_GROUPS, "logger"]
    try:
        # Component nodes carry their schema's type (rlkit.config_store); they stay plain
        # dicts here, and component_config types them once the component is known.
        plain = {key: None if cfg[key] is None else OmegaConf.to_container(cfg[key], resolve=True, enum_to_str=True)
                 for key in components if key in cfg}
        rest = OmegaConf.masked_copy(cfg, [key for key in cfg if key not in components])
        run = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RunConfig), rest, plain))
    except OmegaConfBaseException as exc:
        at = getattr(exc, "full_key", None)
        raise ConfigError(f"{at + ': ' if at else ''}{_first_line(exc)}") from exc
    try:
        check_ranges(run)
    except OutOfRange as exc:
        raise ConfigError(str(exc)) from exc
    return run


def _first_line(exc: OmegaConfBaseException) -> str:
    """OmegaConf's message without the lines on full_key/object_type it appends."""
    return str(getattr(exc, "msg", None) or exc).splitlines()[0]


def check_config(cfg: DictConfig) -> RunConfig:
    """Check a composed config completely without importing torch or building anything:
    every top-level value and every component node (children of a combined reward
    included) against its schema and ranges. Raises ConfigError naming the first bad key."""
    run = typed_run_config(cfg)
    for group, kind in COMPONENT_GROUPS.items():
        node = getattr(run, group)
        if node:
            _, typed = typed_component_config(group, node, kind)
            if group == "reward":
                _check_reward_children(typed)
    for name, node in run.logger.items():
        typed_component_config(f"logger.{name}", node or {}, "loggers", name=name)
    return run


def _check_reward_children(typed: Any) -> None:
    """A combined reward's entries (``{name, weight?, label?, ...fields}``), each against its
    own reward's schema."""
    for index, entry in enumerate(getattr(typed, "rewards", None) or []):
        if isinstance(entry, dict) and "name" in entry:
            fields = {k: v for k, v in entry.items() if k not in ("weight", "label")}
            _, child = typed_component_config(f"reward.rewards[{index}]", fields, "rewards")
            _check_reward_children(child)
