"""Composition: typed schemas catch typos and wrong types before anything runs."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from rlkit.config import ConfigError, component_config
from rlkit.build import resolve_components
from rlkit.config import typed_run_config


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
