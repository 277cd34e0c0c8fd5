"""Shared fixtures: an isolated model cache, config composition, tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def isolated_env(tmp_path_factory):
    """Keep every test off the network and out of the user's caches."""
    cache = tmp_path_factory.mktemp("rlkit-cache")
    os.environ["RLKIT_CACHE"] = str(cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    # Tests start from the model they name; tests/test_headline_commands.py turns the
    # warm start (rlkit/models/warm_start.py) back on for the commands as a user types them.
    os.environ["RLKIT_WARM_START"] = "0"
    yield cache


pytest_plugins = ["tests.slurm_fixtures"]


@pytest.fixture
def datasets_cache(tmp_path, monkeypatch):
    """A datasets cache of the test's own: datasets reuses a prepared local directory by its
    name, so two tests' different "gsm8k" directories (or a reader's own) would otherwise
    share one cached copy."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")


def compose_overrides(overrides: list[str] | None = None):
    """The config ``python -m rlkit <overrides>`` would run with."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from rlkit.config import register_with_hydra

    register_with_hydra()
    with initialize_config_module(config_module="rlkit.conf", version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides or []))


@pytest.fixture(scope="session")
def compose():
    return compose_overrides


@pytest.fixture(scope="session")
def tiny_model_dir(isolated_env) -> Path:
    """The built-in tiny model, saved once per test session."""
    from rlkit.config import TinyModelConfig
    from rlkit.models.tiny import materialize

    return materialize("builtin:tiny", TinyModelConfig())


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    """(model, tokenizer) loaded from the tiny model directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)
