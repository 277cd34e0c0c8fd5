"""The example plugin, pip-installed, adds a dataset, a reward and config presets."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlkit.registry import Registry, config_packages

PLUGIN = Path(__file__).resolve().parent.parent / "plugins" / "rlkit-example-plugin"


@pytest.fixture(scope="module")
def example_plugin(tmp_path_factory):
    """Install the plugin from its source as a user would (not editable: nothing is linked),
    from a copy, so that the build leaves nothing in the repository."""
    source = tmp_path_factory.mktemp("plugin") / PLUGIN.name
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", str(source)],
        check=True,
    )
    yield
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", "rlkit-example-plugin"], check=True)


def test_plugin_components_are_registered(example_plugin):
    assert Registry("datasets").get("multiplication").provider == "rlkit-example-plugin 0.1.0"
    assert Registry("rewards").load("brevity").__name__ == "BrevityReward"
    assert Registry("rewards").schema("brevity") is Registry("rewards").load("brevity").Config
    out = subprocess.run([sys.executable, "-m", "rlkit.registry"], capture_output=True, text=True, check=True).stdout
    assert "rlkit_example.config:BrevityConfig" in out and "rlkit_example.conf" in out
    # The YAML presets were installed with the package (package-data), as --check verifies.
    [package] = [p for p in config_packages() if p.package == "rlkit_example.conf"]
    assert package.presets == ["reward/terse"]


def test_plugin_presets_are_config_group_choices(example_plugin, compose):
    from rlkit.config import check_config
    from rlkit.build import resolve_components

    run = check_config(compose(["data=multiplication", "reward=brevity", "reward.max_chars=12"]))
    parts = resolve_components(run)
    assert parts["data"].config.digits == 1
    assert parts["reward"].config.max_chars == 12
    samples = parts["data"].build().load("eval", parts["algo"].cls.sample_kind)
    assert len(samples) == 50 and "*" in samples[0].prompt[0].content
    # A preset extends the component's option and states only what it changes.
    terse = compose(["reward=terse"]).reward
    assert terse.name == "brevity" and terse.max_chars == 8 and terse.on_error == "raise"


def test_plugin_schema_is_checked_while_composing(example_plugin, compose):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as err:
        compose(["reward=terse", "reward.max_chars=many"])
    assert "reward.max_chars" in str(err.value.__cause__)


@pytest.mark.slow
def test_training_on_the_plugin_dataset(example_plugin, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "rlkit", "algo=sft", "data=multiplication", "trainer.max_steps=3", "trainer.batch_size=8",
         "trainer.micro_batch_size=8", "trainer.eval_samples=8", "logger=[jsonl]", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 3 and "eval/accuracy" in rows[-1]


def test_a_plugin_algorithm_is_its_loss_and_trains(example_plugin, compose, tmp_path):
    """SimPO from the example plugin (a preference loss: its config, its loss and a
    four-line class) trains through the ordinary loop: the trainer logs its loss and the
    preference base class its implicit rewards."""
    from rlkit.launch import train
    from rlkit.loggers.jsonl import read_metrics

    steps = 12
    final = train(compose(["algo=simpo", "algo.max_length=64", "data.digits=1", "data.eval_size=16", "data.min_wrong_offset=10",
                           "data.max_wrong_offset=20", "model.tiny.hidden_size=64", "model.tiny.num_layers=2",
                           f"trainer.max_steps={steps}", "trainer.batch_size=16", "trainer.micro_batch_size=8",
                           "trainer.lr=3e-3", "trainer.warmup_steps=0", "trainer.eval_every=0", "trainer.save_every=0",
                           "logger=[jsonl]"]), tmp_path)
    rows = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in rows] == list(range(1, steps + 1))
    assert {"rewards/chosen", "rewards/rejected", "rewards/accuracy", "grad_norm"} <= set(rows[0])
    first, last = (sum(r["loss"] for r in part) / 3 for part in (rows[:3], rows[-3:]))
    assert last < first
    assert "eval/pref_accuracy" in final and (tmp_path / "final" / "model.safetensors").exists()
