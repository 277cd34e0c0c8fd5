"""Entry-point registries: lookup, errors that name the problem, listing."""

from __future__ import annotations

import os
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
    assert Registry("algorithms").get("sft").provider.startswith("rlkit ")
    assert Registry("algorithms").load("sft").__name__ == "SFT"
    assert Registry("algorithms").schema("sft").__name__ == "SFTConfig"


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


def test_duplicate_name_fails_only_where_it_is_used(on_sys_path):
    fake_distribution(on_sys_path, "rival_rewards", """
        [rlkit.rewards]
        math = rival_rewards:Math
    """)
    assert Registry("rewards").load("format").__name__ == "FormatReward"  # other names still work
    with pytest.raises(RegistryError) as err:
        Registry("rewards").load("math")
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
    assert "rlkit.algorithms.config:SFTConfig" in out and "rlkit 0.1.0" in out


def test_help_does_not_import_torch():
    code = (
        "import sys, runpy; sys.argv = ['rlkit', '--help']\n"
        "try:\n    runpy.run_module('rlkit', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "algo" in result.stdout


@pytest.fixture(scope="module")
def troubled_plugins(tmp_path_factory):
    """Three installed plugins with problems, on a path that child processes put first:
    a duplicate of a built-in name, a package whose ``__init__`` raises, and a config
    package installed without its YAML files (no package-data)."""
    root = tmp_path_factory.mktemp("troubled")
    fake_distribution(root, "rival_rewards", """
        [rlkit.rewards]
        math = rival_rewards:Math
    """)
    broken = root / "broken_plugin"
    (broken / "conf" / "data").mkdir(parents=True)
    (broken / "__init__.py").write_text("raise RuntimeError('boom in broken_plugin')\n")
    (broken / "conf" / "__init__.py").write_text("")
    (broken / "conf" / "data" / "broken_preset.yaml").write_text("name: arithmetic\n")
    fake_distribution(root, "broken_plugin", """
        [rlkit.rewards]
        broken = broken_plugin.reward:Reward

        [rlkit.configs]
        broken_plugin = broken_plugin.conf
    """)
    (root / "broken_plugin-1.0.dist-info" / "RECORD").write_text(
        "broken_plugin/__init__.py,,\nbroken_plugin/conf/__init__.py,,\nbroken_plugin/conf/data/broken_preset.yaml,,\n")
    (root / "no_yaml_plugin" / "conf").mkdir(parents=True)
    (root / "no_yaml_plugin" / "__init__.py").write_text("")
    (root / "no_yaml_plugin" / "conf" / "__init__.py").write_text("")
    fake_distribution(root, "no_yaml_plugin", """
        [rlkit.configs]
        no_yaml_plugin = no_yaml_plugin.conf
    """)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}


def test_registry_check_reports_every_problem(troubled_plugins):
    result = subprocess.run([sys.executable, "-m", "rlkit.registry", "--check"], capture_output=True, text=True,
                            env=troubled_plugins)
    assert result.returncode == 1
    assert "math" in result.stdout and "DUPLICATE" in result.stdout
    errors = result.stderr
    assert "'math' is registered twice" in errors and "rlkit 0.1.0" in errors and "rival_rewards 1.0" in errors
    assert "'broken' from broken_plugin 1.0" in errors and "RuntimeError: boom in broken_plugin" in errors
    assert "config package broken_plugin.conf from broken_plugin 1.0 failed to import" in errors
    assert "no_yaml_plugin.conf from no_yaml_plugin 1.0 holds no YAML presets" in errors
    assert "package-data" in errors
    # Nothing else: every built-in imports, its class's Config is the one its entry point
    # names, and no built-in schema imports torch.
    assert "5 problem(s), 0 warning(s)" in errors, errors


def test_broken_plugin_fails_only_runs_that_use_it_with_its_cause(troubled_plugins):
    code = textwrap.dedent("""
        from hydra import compose, initialize_config_module
        from rlkit.config import check_config, register_with_hydra
        register_with_hydra()
        with initialize_config_module(config_module="rlkit.conf", version_base="1.3"):
            check_config(compose("config", overrides=["algo=dpo"]))
            print("unrelated run: ok")
            for overrides in (["algo=grpo", "reward=broken"], ["data=broken_preset"], ["algo=grpo", "reward=math"]):
                try:
                    compose("config", overrides=overrides)
                    print(overrides, "composed")
                except Exception as exc:
                    print(overrides, "error:", exc, "| cause:", exc.__cause__)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=troubled_plugins)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "unrelated run: ok"
    assert "'broken' from broken_plugin 1.0" in lines[1] and "RuntimeError: boom in broken_plugin" in lines[1]
    assert "config package broken_plugin.conf" in lines[2] and "RuntimeError: boom in broken_plugin" in lines[2]
    assert "is registered twice" in lines[3] and "rival_rewards 1.0" in lines[3]
    # --help lists the plugin's names with the reason they cannot be used (not a bare "not found").
    help_text = subprocess.run([sys.executable, "-m", "rlkit", "--help"], capture_output=True, text=True,
                               env=troubled_plugins, check=True).stdout
    listed = {line.split()[0]: line for line in help_text.splitlines() if line.startswith("  ") and line.split()}
    assert "UNUSABLE" in listed["broken"] and "broken_plugin" in listed["broken"]
    assert "UNUSABLE" in listed["broken_preset"] and "broken_plugin.conf" in listed["broken_preset"]
