"""Composition: typed schemas catch typos and wrong types before anything runs."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from rlkit.config import ConfigError, check_config, component_config, typed_run_config
from rlkit.registry import CONFIG_GROUPS, Registry
from rlkit.build import resolve_components


def test_default_config_composes_and_resolves(compose):
    cfg = compose()
    run = typed_run_config(cfg)
    assert run.trainer.max_steps > 0 and run.model.name_or_path == "builtin:tiny"
    parts = resolve_components(run)
    assert parts["algo"].cls.__name__ == "SFT"
    assert set(parts["loggers"]) == {"console", "jsonl"}


def test_misspelled_top_level_key_fails_at_composition(compose):
    with pytest.raises(ConfigCompositionException) as err:
        compose(["trainer.max_stepz=3"])
    assert "max_stepz" in str(err.value.__cause__ or err.value)


def test_wrong_type_fails_at_composition(compose):
    with pytest.raises((ValidationError, ConfigCompositionException)) as err:
        compose(["trainer.max_steps=many"])
    assert "max_steps" in str(err.value) + str(err.value.__cause__)


def test_unknown_choice_lists_available_options(compose):
    with pytest.raises(Exception) as err:
        compose(["algo=sfft"])
    message = str(err.value)
    assert "sfft" in message and "sft" in message


def test_misspelled_component_key_names_the_key(compose):
    run = typed_run_config(compose(["+algo.packng=true"]))
    with pytest.raises(ConfigError) as err:
        resolve_components(run)
    assert "algo.packng" in str(err.value)


def test_wrong_component_type_names_the_key():
    with pytest.raises(ConfigError, match="algo.max_length"):
        component_config("algo", {"name": "sft", "max_length": "long"}, "algorithms")


def test_command_line_typo_fails_before_running(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "rlkit", "trainer.max_stepz=3", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "max_stepz" in result.stderr
    assert not (tmp_path / "metrics.jsonl").exists()


@pytest.mark.parametrize("overrides, message", [
    (["algo=grpo", "algo.scale=bogus"], "Invalid value 'bogus', expected one of [group, batch, none]"),
    (["algo=dpo", "algo.loss_type=sigmoidd"], "expected one of [sigmoid, hinge, ipo, robust]"),
    (["algo=grpo", "algo.beta=0.1"], "Key 'beta' not in 'GRPOConfig'"),
    (["trainer.schedule=cosin"], "expected one of [cosine, linear, constant]"),
    (["backend=fsdp2", "backend.param_dtype=fp8"], "expected one of [float32, bfloat16, float16]"),
])
def test_component_keys_types_and_choices_fail_while_composing(compose, overrides, message):
    with pytest.raises(ConfigCompositionException) as err:
        compose(overrides)
    cause = str(err.value.__cause__)
    assert message in cause and overrides[-1].split("=")[0] in cause


@pytest.mark.parametrize("overrides, message", [
    (["trainer.batch_size=0"], "trainer.batch_size must be >= 1, got 0"),
    (["trainer.micro_batch_size=0"], "trainer.micro_batch_size must be >= 1, got 0"),
    (["trainer.micro_batch_tokens=-1"], "trainer.micro_batch_tokens must be >= 0, got -1"),
    (["trainer.max_steps=-1"], "trainer.max_steps must be >= 0, got -1"),
    (["trainer.warmup_steps=-5"], "trainer.warmup_steps must be >= 0, got -5"),
    (["algo=grpo", "algo.kl_beta=-0.1"], "algo.kl_beta must be >= 0, got -0.1"),
    (["algo=grpo", "algo.sampling.top_p=1.5"], "algo.sampling.top_p must be between 0 and 1, got 1.5"),
    (["algo=grpo", "reward=format"], "reward.pattern: "),
    (["algo=grpo", "reward=combined", "reward.rewards=[{name: math}, {name: format, pattern: so, timeout_s: 0}]"],
     "reward.rewards[1].timeout_s must be > 0, got 0"),
])
def test_values_out_of_range_name_the_key(compose, overrides, message):
    with pytest.raises(ConfigError) as err:
        check_config(compose(overrides))
    assert message in str(err.value)


def test_every_field_is_overridable_without_plus():
    """Each registered component is an option of its group whose node holds every field of
    its Config (the node Hydra loads when the option is chosen)."""
    from hydra.core.config_store import ConfigStore

    from rlkit.config import register_with_hydra

    register_with_hydra()
    for kind, group in CONFIG_GROUPS.items():
        registry = Registry(kind)
        for name in registry.names():
            node = ConfigStore.instance().load(f"{group}/{name}.yaml").node
            assert set(node) >= {f.name for f in dataclasses.fields(registry.schema(name))}, (group, name)
            if kind != "loggers":  # loggers are keyed by name (logger.<name>)
                assert node.name == name


def run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlkit", *args], capture_output=True, text=True, cwd=cwd)


def test_bad_choice_fails_before_a_run_directory_exists(tmp_path):
    result = run_cli("algo=grpo", "reward=math", "algo.scale=bogus", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode != 0
    assert "algo.scale" in result.stderr and "expected one of [group, batch, none]" in result.stderr
    assert not (tmp_path / "run").exists()


def test_value_out_of_range_fails_before_a_run_directory_exists(tmp_path):
    result = run_cli("trainer.batch_size=0", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "Error in the config: trainer.batch_size must be >= 1, got 0"
    assert not (tmp_path / "run").exists()


def test_sweep_checks_every_job_before_the_first_one_runs(tmp_path):
    result = run_cli("-m", "algo=grpo", "reward=math", "algo.kl_beta=0.0,high", f"hydra.sweep.dir={tmp_path}/sweep",
                     cwd=tmp_path)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error in the config: job 1 (") and "algo.kl_beta=high)" in last
    assert "algo.kl_beta" in last and "could not be converted to Float" in last
    assert not (tmp_path / "sweep").exists()  # job 0 never started
