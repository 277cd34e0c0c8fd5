"""The generator group on real Ray actors: weights pushed through the object store give the
trainer's log-probabilities, and an actor killed mid-generation is restarted, given the
current weights and asked again."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from rlkit.algorithms.rollout import layout
from rlkit.cluster.config import ClusterConfig
from rlkit.cluster.driver import Actors
from rlkit.cluster.placement import reserve
from rlkit.cluster.ray_generator import RayGenerator
from rlkit.config import ModelConfig, TinyModelConfig
from rlkit.models.forward import target_logprobs
from rlkit.models.loading import load_model, load_tokenizer
from rlkit.types import PromptSample, SamplingParams

pytestmark = pytest.mark.ray

MODEL = ModelConfig(tiny=TinyModelConfig(hidden_size=64, intermediate_size=128, num_layers=2))


@pytest.fixture(scope="module")
def group(ray_cluster):
    """Two generator actors, started as a run starts them, and a trainer-side RayGenerator."""
    cluster = ClusterConfig(placement="split", generators=2, max_restarts=2, restart_timeout_s=120)
    placement = reserve(cluster, trainer_ranks=1)
    actors = Actors("test")
    try:
        actors.start_generators(cluster, placement, 1, MODEL, {"name": "hf"})
        ray_cluster.get([a.ready.remote() for a in actors.generators])
        generator = RayGenerator(RayGenerator.Config(actors=actors.generator_names, store=actors.store_name), None, None)
        yield actors, generator
    finally:
        actors.stop()
        placement.release()


def perturbed_policy(seed: int):
    """The tiny model with weights the actors have never seen."""
    policy = load_model(MODEL)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return policy.eval()


def max_logprob_gap(policy, tokenizer, prompts, completions) -> float:
    samples = [PromptSample(prompts[c.prompt_index]) for c in completions]
    batch, generator_logps = layout(tokenizer, samples, completions)
    with torch.no_grad():
        logps, mask, _ = target_logprobs(policy, batch)
    return float(((logps - generator_logps).abs() * mask).max())


PROMPTS = [f"{a}+{b}=" for a in range(4) for b in range(3)]


def test_pushed_weights_give_the_trainers_logprobs(group):
    _, generator = group
    tokenizer = load_tokenizer(MODEL)
    for seed in (1, 2):  # two pushes in a row: each replaces the previous weights
        policy = perturbed_policy(seed)
        generator.update_weights(policy.state_dict())
        completions = generator.generate(PROMPTS, SamplingParams(max_new_tokens=6, n=2))
        assert [c.prompt_index for c in completions] == [i for i in range(len(PROMPTS)) for _ in range(2)]
        assert max_logprob_gap(policy, tokenizer, PROMPTS, completions) < 1e-4
    # Non-main trainer ranks pass an empty state dict: the version advances, nothing is sent.
    version = generator.version
    generator.update_weights({})
    assert generator.version == version + 1


def test_actor_killed_mid_generation_is_restarted_with_current_weights(group, ray_cluster):
    actors, generator = group
    tokenizer = load_tokenizer(MODEL)
    policy = perturbed_policy(3)
    generator.update_weights(policy.state_dict())
    prompts = PROMPTS * 16  # each actor samples for seconds: the kill lands while actor 0 is busy
    params = SamplingParams(max_new_tokens=64, n=4)
    killer = threading.Timer(0.4, lambda: ray_cluster.kill(actors.generators[0], no_restart=False))
    restarts = generator.group.restarts
    killer.start()
    start = time.perf_counter()
    completions = generator.generate(prompts, params)
    killer.join()
    assert time.perf_counter() - start > 0.4, "generation ended before the kill; make it longer"
    assert generator.group.restarts == restarts + 1
    assert generator.metrics()["generator/restarts"] == restarts + 1
    assert len(completions) == len(prompts) * 4
    assert sorted({c.prompt_index for c in completions}) == list(range(len(prompts)))
    # The restarted actor samples with the pushed weights, not the model files' weights.
    assert ray_cluster.get(actors.generators[0].ready.remote()) == generator.version
    assert max_logprob_gap(policy, tokenizer, prompts, completions) < 1e-4
