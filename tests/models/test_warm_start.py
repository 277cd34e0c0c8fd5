"""The warm start (rlkit/models/warm_start.py): when it applies, and its cache built once, whole.

The full recipe (600 SFT steps) runs in tests/test_headline_commands.py; here the same build
path trains a few steps of a smaller SFT config.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM

from rlkit.config import typed_component_config, typed_run_config
from rlkit.models import warm_start


@pytest.fixture
def warm_start_on(monkeypatch):
    monkeypatch.setenv(warm_start.ENV_SWITCH, "1")


def _applies(compose, overrides):
    run = typed_run_config(compose(overrides))
    _, algo = typed_component_config("algo", run.algo, "algorithms")
    return warm_start.applies(run, algo)


@pytest.mark.parametrize("algo", ["algo=dpo", "algo=rm", "algo=grpo", "algo=ppo"])
def test_applies_to_the_untrained_builtin_model_on_the_builtin_task(compose, warm_start_on, algo):
    assert _applies(compose, [algo, "pipeline=none"])


@pytest.mark.parametrize("overrides", [
    ["algo=sft"],                                        # SFT is what the warm start is
    ["algo=dpo", "model.warm_start=false"],              # turned off
    ["algo=dpo", "model.name_or_path=/some/model"],      # the user's own model
    ["algo=dpo", "data=files", "data.train=a.jsonl"],    # the user's own data
    ["algo=grpo", "env=calculator"],                     # a multi-turn task
])
def test_does_not_apply(compose, warm_start_on, overrides):
    assert not _applies(compose, [*overrides, "pipeline=none"])


def test_environment_switch_turns_it_off(compose, monkeypatch):
    monkeypatch.setenv(warm_start.ENV_SWITCH, "0")
    assert not _applies(compose, ["algo=dpo", "pipeline=none"])


def test_cache_is_keyed_by_the_sft_config_not_by_pair_offsets(compose):
    def key(*overrides):
        return warm_start.cache_dir(warm_start.sft_config(typed_run_config(compose(["algo=dpo", *overrides]))))

    assert key() == key("data.min_wrong_offset=3", "data.max_wrong_offset=4", "trainer.lr=1e-5")
    assert key() != key("data.digits=1")
    assert key() != key("model.tiny.hidden_size=64")


def _small_sft(compose):
    """The warm start's SFT config shrunk to a few seconds of training."""
    sft = warm_start.sft_config(typed_run_config(compose(["algo=dpo", "data.digits=1", "data.eval_size=8",
                                                          "data.train_size=64"])))
    sft.trainer.max_steps = 2
    sft.trainer.batch_size = sft.trainer.micro_batch_size = 8
    sft.trainer.eval_samples = 4
    sft.trainer.eval_max_new_tokens = 2
    sft.trainer.log_samples = 0
    sft.logger = {"jsonl": {}}
    return sft


ENSURE = "import sys; from omegaconf import OmegaConf; from rlkit.models.warm_start import ensure; " \
         "print('built:', ensure(OmegaConf.load(sys.argv[1])))"


def test_concurrent_builds_train_once_and_publish_a_whole_model(compose, tmp_path, monkeypatch):
    sft = _small_sft(compose)
    config = tmp_path / "sft.yaml"
    OmegaConf.save(sft, config)
    cache = tmp_path / "cache"
    monkeypatch.setenv("RLKIT_CACHE", str(cache))
    target = warm_start.cache_dir(sft)
    stale = target.parent / f".{target.name}-killedbuild"  # a killed build's staging
    stale.mkdir(parents=True)
    builders = [subprocess.Popen([sys.executable, "-c", ENSURE, str(config)], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [builder.communicate(timeout=600)[0] for builder in builders]
    assert [builder.returncode for builder in builders] == [0, 0], outputs
    assert all(f"built: {target}" in output for output in outputs)
    assert sum("training the SFT warm start" in output for output in outputs) == 1
    assert sum("waiting for another process" in output for output in outputs) <= 1
    assert {"config.json", "model.safetensors", "tokenizer.json", warm_start.METRICS_FILE} <= {
        p.name for p in target.iterdir()}
    # No staging directory (half-built or killed) is left beside it.
    assert not [p.name for p in target.parent.iterdir() if p.name.startswith(".")]
    AutoModelForCausalLM.from_pretrained(target)
