"""Multi-turn episodes with the real hf generator and the built-in tiny model: the tokens
the policy saw and generated, which of them the loss scores, and the episode tallies."""

from __future__ import annotations

import string
from dataclasses import dataclass

import pytest
import torch

from rlkit.algorithms.rollout import layout
from rlkit.data.templates import render_prompt
from rlkit.environments.base import Environment, EnvironmentConfig, OnError, ToolError, Turn
from rlkit.environments.calculator import CalculatorConfig, CalculatorEnvironment
from rlkit.environments.rollout import EpisodeRunner, episode_metrics, episode_scores
from rlkit.generators.config import HFGeneratorConfig
from rlkit.generators.hf import HFGenerator
from rlkit.types import Message, PromptSample, SamplingParams

SAMPLES = [PromptSample((Message("user", f"What is {a} * {b}?"),), str(a * b)) for a, b in [(347, 28), (12, 9)]]


@dataclass
class ChattyConfig(EnvironmentConfig):
    fail_on_turn: int = 0


class Chatty(Environment):
    """Answers every turn with a numbered observation and never ends an episode; any
    character ends a turn, so the untrained model's turns are short. Fails on one turn."""

    Config = ChattyConfig

    def stop_strings(self):
        return tuple(string.ascii_letters + string.digits)

    def start(self, sample):
        return {"turn": 0}

    def step(self, state, assistant_text):
        state["turn"] += 1
        if state["turn"] == self.config.fail_on_turn:
            raise ToolError("bad call")
        return Turn(observation=f"obs {state['turn']}", reward=0.25, tool_calls=1)


@pytest.fixture(scope="module")
def runner_for(tiny):
    model, tokenizer = tiny
    generator = HFGenerator(HFGeneratorConfig(), model, tokenizer)
    return lambda env: EpisodeRunner(env, generator, tokenizer)


def test_episodes_hold_exactly_the_rendered_conversation(runner_for, tiny):
    _, tokenizer = tiny
    torch.manual_seed(0)
    episodes = runner_for(Chatty(ChattyConfig(max_turns=3, max_tokens=200))).run(SAMPLES, SamplingParams(max_new_tokens=8, n=2))
    assert [e.sample_index for e in episodes] == [0, 0, 1, 1]
    assert sum(e.turns == 3 for e in episodes) >= 2
    for episode in episodes:
        if episode.turns < 3:  # a turn cut at max_new_tokens ends the episode early
            assert episode.truncated
            continue
        assert episode.truncated and episode.tool_calls == 3 and episode.reward == 0.75
        # Observations after turns 1 and 2 (the third turn hits max_turns, nothing follows).
        assert [m.content for m in episode.messages if m.role == "tool"] == ["obs 1", "obs 2"]
        # The token ids are the chat template's rendering of the conversation: prompt,
        # assistant turns (as generated) and observations.
        conversation = tuple(episode.sample.prompt) + tuple(episode.messages)
        decoded = tokenizer.decode(episode.prompt_ids + episode.token_ids)
        assert decoded == render_prompt(tokenizer, conversation[:-1]) + episode.messages[-1].content
        # Only the assistant's tokens are scored; observation tokens carry log-prob 0.
        observed = tokenizer.decode([t for t, m in zip(episode.token_ids, episode.loss_mask) if not m])
        assert observed == "<|end|><|tool|>obs 1<|end|><|assistant|><|end|><|tool|>obs 2<|end|><|assistant|>"
        assert all(lp == 0.0 for lp, m in zip(episode.logprobs, episode.loss_mask) if not m)
        assert all(lp < 0.0 for lp, m in zip(episode.logprobs, episode.loss_mask) if m)


def test_observation_tokens_are_not_targets_and_keep_the_generator_logprobs_aligned(runner_for, tiny):
    model, tokenizer = tiny
    torch.manual_seed(1)
    episodes = runner_for(Chatty(ChattyConfig(max_turns=3, max_tokens=200))).run(SAMPLES, SamplingParams(max_new_tokens=8))
    completions = [e.completion() for e in episodes]
    batch, generator_logps = layout(tokenizer, [e.sample for e in episodes], completions)
    for row, episode in enumerate(episodes):
        start = len(episode.prompt_ids)
        targets = batch.target_mask[row, start : start + len(episode.token_ids)]
        assert targets.tolist() == episode.loss_mask and not batch.target_mask[row, :start].any()
    # The trainer's log-probs of the generated tokens equal the generator's (same ids, same context).
    from rlkit.models.forward import target_logprobs

    with torch.no_grad():
        logps, mask = target_logprobs(model, batch, 1.0)[:2]
    assert torch.equal(mask, batch.target_mask[:, 1:])
    torch.testing.assert_close(logps[mask], generator_logps[mask], atol=1e-4, rtol=0)


def test_on_error_observation_goes_on_and_zero_reward_ends_with_zero(runner_for):
    torch.manual_seed(2)
    goes_on = runner_for(Chatty(ChattyConfig(max_turns=3, max_tokens=200, fail_on_turn=1))).run(SAMPLES, SamplingParams(max_new_tokens=8))
    for episode in goes_on:
        assert episode.tool_errors == 1
        if episode.turns > 1:
            assert episode.messages[1] == Message("tool", "error: bad call")
    failed = runner_for(Chatty(ChattyConfig(max_turns=3, fail_on_turn=1, on_error=OnError.zero_reward))).run(
        SAMPLES, SamplingParams(max_new_tokens=8))
    finished = [e for e in failed if not e.truncated]
    assert finished and all(e.turns == 1 and e.failed and e.tool_errors == 1 for e in finished)
    assert episode_scores(finished)[0] == [0.0] * len(finished)
    assert episode_metrics(finished)["env/tool_errors"] == 1.0


def test_token_budget_ends_episodes(runner_for):
    torch.manual_seed(3)
    episodes = runner_for(Chatty(ChattyConfig(max_turns=50, max_tokens=30))).run(SAMPLES, SamplingParams(max_new_tokens=8))
    assert all(e.truncated and len(e.token_ids) <= 30 for e in episodes)
    assert episode_metrics(episodes)["env/truncated"] == 1.0


def test_calculator_episodes_from_the_untrained_model_end_after_one_answer(runner_for):
    torch.manual_seed(4)
    episodes = runner_for(CalculatorEnvironment(CalculatorConfig())).run(SAMPLES, SamplingParams(max_new_tokens=6, n=3))
    metrics = episode_metrics(episodes)
    assert metrics["env/turns"] == 1.0 and metrics["env/tool_call_share"] == 0.0


def test_a_generator_without_token_prompts_is_refused_before_any_episode(tiny):
    from rlkit.generators.base import Generator

    class TextOnly(Generator):
        def generate(self, prompts, params):
            return []

        def update_weights(self, state_dict):
            pass

    with pytest.raises(ValueError, match="TextOnly cannot continue token-id prompts .* use generator=hf"):
        EpisodeRunner(Chatty(ChattyConfig()), TextOnly(), tiny[1])


def test_asynchronous_rollouts_are_refused_with_an_environment_before_ray_starts(tmp_path):
    """An episode's next turn waits for the environment: nothing can be sampled ahead."""
    import rlkit

    with pytest.raises(ValueError, match="cluster.async_rollouts=true with env=: .* leave cluster.async_rollouts=false"):
        rlkit.train(["algo=grpo", "env=calculator", "reward=math", "cluster=split", "cluster.async_rollouts=true",
                     "algo.off_policy=tis"], run_dir=tmp_path)
