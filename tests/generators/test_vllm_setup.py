"""generator=vllm in the main environment: the LoRA merge that feeds the engine, and a clear
error when vLLM is not installed (the engine itself is tested in test_vllm_generator.py)."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch

from rlkit.generators.vllm_weights import hf_weights, lora_scalings


def test_lora_adapters_are_merged_into_the_weights_vllm_loads(tiny):
    """The trainer's PEFT state dict, turned into plain weight names with the adapters merged,
    equals what peft's own merge_and_unload gives."""
    from rlkit.config import LoraConfig
    from rlkit.models.loading import add_lora

    model = add_lora(copy.deepcopy(tiny[0]), LoraConfig(enabled=True, r=4, alpha=16))
    with torch.no_grad():  # lora_B starts at zero: make the adapters change something
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.1)
    ours = dict(hf_weights(model.state_dict(), lora_scalings(model)))
    merged = copy.deepcopy(model).merge_and_unload().state_dict()
    assert ours.keys() == merged.keys()
    for key, value in merged.items():
        torch.testing.assert_close(ours[key], value, msg=key)
    assert any(not torch.equal(ours[k], v) for k, v in tiny[0].state_dict().items())


def test_wrapper_prefixes_are_dropped(tiny):
    state = {f"module.{k}": v for k, v in tiny[0].state_dict().items()}
    assert dict(hf_weights(state, {})).keys() == tiny[0].state_dict().keys()


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_choosing_vllm_without_it_fails_at_once_with_the_install_command(compose):
    from rlkit.config import component_config

    cfg = compose(["algo=grpo", "reward=format", "generator=vllm"])
    with pytest.raises(ImportError, match=r"pip install -e \"\.\[vllm\]\".*scripts/setup_vllm\.sh"):
        component_config("generator", cfg.generator, "generators")


def test_the_option_holds_every_key_with_the_schemas_default(compose):
    from omegaconf import OmegaConf

    from rlkit.generators.vllm_config import VLLMGeneratorConfig

    option = OmegaConf.to_container(compose(["algo=grpo", "generator=vllm"]).generator)
    assert option.pop("name") == "vllm"
    assert option == OmegaConf.to_container(OmegaConf.structured(VLLMGeneratorConfig))


def test_the_schema_is_checked_while_composing(compose):
    """generator=vllm's keys are typed and ranged without vLLM or torch being imported."""
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose(["algo=grpo", "reward=format", "generator=vllm", "generator.tensor_parallel_size=two"])
    with pytest.raises(ConfigCompositionException):
        compose(["algo=grpo", "reward=format", "generator=vllm", "generator.dtype=float64"])
