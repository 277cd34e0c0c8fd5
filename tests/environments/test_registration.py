"""env= is a config group filled from the rlkit.environments entry-point group, like reward=."""

from __future__ import annotations

import pytest

import rlkit
from rlkit.api import compose_dict
from rlkit.config import check_config
from rlkit.registry import Registry


def test_the_calculator_is_registered_and_composes_with_its_schema():
    assert "calculator" in Registry("environments").names()
    config = rlkit.compose(["algo=grpo", "reward=math", "env=calculator", "env.max_turns=3"])
    assert config.env["name"] == "calculator" and config.env["max_turns"] == 3


@pytest.mark.parametrize("override, message", [
    ("env.on_error=bogus", "observation, zero_reward"),
    ("env.max_turns=0", "env.max_turns must be >= 1"),
    ("env.max_turn=2", "max_turn"),
    ("env.num_workers=-1", "env.num_workers must be >= 0"),
])
def test_bad_env_values_fail_while_composing(override, message):
    with pytest.raises(Exception) as err:
        check_config(compose_dict(["algo=grpo", "reward=math", "env=calculator", override]))
    assert message in f"{err.value} {err.value.__cause__}"


def test_an_environment_plugin_that_fails_to_import_is_named():
    """A broken plugin environment is reported with its package and cause when chosen."""
    from importlib.metadata import EntryPoint

    from rlkit.registry import Registration, RegistryError

    entry = EntryPoint("broken", "no_such_module_xyz:Env", "rlkit.environments")
    with pytest.raises(RegistryError, match="environment 'broken' .* failed to import: ModuleNotFoundError"):
        Registration("environments", "broken", entry).schema()
