"""The example plugin, pip-installed, adds a dataset, a reward and config presets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlkit.registry import Registry

PLUGIN = Path(__file__).resolve().parent.parent / "plugins" / "rlkit-example-plugin"


@pytest.fixture(scope="module")
def example_plugin():
    """Install the plugin from its source as a user would (not editable: nothing is linked)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", str(PLUGIN)],
        check=True,
    )
    yield
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", "rlkit-example-plugin"], check=True)


def test_plugin_components_are_registered(example_plugin):
    assert Registry("datasets").get("multiplication").provider == "rlkit-example-plugin 0.1.0"
    assert Registry("rewards").load("brevity").__name__ == "BrevityReward"
    out = subprocess.run([sys.executable, "-m", "rlkit.registry"], capture_output=True, text=True, check=True).stdout
    assert "rlkit_example.brevity:BrevityReward" in out


def test_plugin_presets_are_config_group_choices(example_plugin, compose):
    from rlkit.config import typed_run_config
    from rlkit.build import resolve_components

    run = typed_run_config(compose(["data=multiplication", "reward=brevity", "reward.max_chars=8"]))
    parts = resolve_components(run)
    assert parts["data"].config.digits == 1
    assert parts["reward"].config.max_chars == 8
    samples = parts["data"].build().load("eval", parts["algo"].cls.sample_kind)
    assert len(samples) == 50 and "*" in samples[0].prompt[0].content


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
