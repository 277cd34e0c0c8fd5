"""Entry-point registries: lookup, errors that name the problem, listing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from rlkit.registry import GROUPS, Registry, RegistryError


def fake_distribution(root, name: str, entry_points: str) -> None:
    """An installed distribution, as pip would leave it, visible once ``root`` is on sys.path."""
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def on_sys_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtins_are_registered_through_entry_points():
    assert {"sft", "dpo", "rm", "grpo", "ppo"} <= set(Registry("algorithms").names())
    assert {"console", "jsonl", "tensorboard", "wandb"} <= set(Registry("loggers").names())
    assert Registry("rewards").load("math").__name__ == "MathVerifier"
    assert Registry("algorithms").registrations["sft"].provider.startswith("rlkit ")


def test_unknown_name_lists_known_ones():
    with pytest.raises(RegistryError) as err:
        Registry("rewards").load("maths")
    message = str(err.value)
    assert "unknown reward 'maths'" in message
    for known in ("math", "format", "callable"):
        assert known in message


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="algorithms"):
        Registry("optimizers")


def test_duplicate_name_names_both_packages(on_sys_path):
    fake_distribution(on_sys_path, "rival_rewards", """
        [rlkit.rewards]
        math = rival_rewards:Math
    """)
    with pytest.raises(RegistryError) as err:
        Registry("rewards").load("format")
    message = str(err.value)
    assert "'math' is registered twice" in message
    assert "rlkit 0.1.0" in message and "rival_rewards 1.0" in message


def test_plugin_that_fails_to_import_names_plugin_and_cause(on_sys_path):
    (on_sys_path / "broken_plugin.py").write_text("import definitely_not_installed\n")
    fake_distribution(on_sys_path, "broken_plugin", """
        [rlkit.rewards]
        broken = broken_plugin:Reward
    """)
    with pytest.raises(RegistryError) as err:
        Registry("rewards").load("broken")
    message = str(err.value)
    assert "'broken' from broken_plugin 1.0" in message
    assert "ModuleNotFoundError" in message and "definitely_not_installed" in message


def test_registry_cli_lists_every_group_with_provider():
    out = subprocess.run([sys.executable, "-m", "rlkit.registry"], capture_output=True, text=True, check=True).stdout
    for group in GROUPS:
        assert f"{group}:" in out
    assert "rlkit.algorithms.sft:SFT" in out and "rlkit 0.1.0" in out


def test_help_does_not_import_torch():
    code = (
        "import sys, runpy; sys.argv = ['rlkit', '--help']\n"
        "try:\n    runpy.run_module('rlkit', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "algo" in result.stdout
