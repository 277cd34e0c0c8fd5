"""Multi-turn episodes with generator=vllm (``Generator.generate_tokens``) in env=calculator,
against generator=hf and the trainer's forward pass, on a tiny model that calls the tool.

The model: the built-in tiny Llama after a short SFT on calculator demonstrations (each one a
``<calc>a * b</calc>`` call, then the answer after the tool's message), so that its episodes
take two turns with an observation between them. One SFT run and one engine serve the module.
Runs in .venv-vllm (scripts/setup_vllm.sh; scripts/test.sh runs it there).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("vllm")

from rlkit.algorithms.rollout import layout  # noqa: E402
from rlkit.data.arithmetic import ArithmeticTask  # noqa: E402
from rlkit.environments.calculator import CalculatorConfig, CalculatorEnvironment  # noqa: E402
from rlkit.environments.rollout import EpisodeRunner, episode_metrics  # noqa: E402
from rlkit.generators.hf import HFGenerator  # noqa: E402
from rlkit.generators.vllm import VLLMGenerator  # noqa: E402
from rlkit.loggers.jsonl import read_metrics  # noqa: E402
from rlkit.models.forward import target_logprobs  # noqa: E402
from rlkit.types import SampleKind, SamplingParams  # noqa: E402

pytestmark = pytest.mark.vllm

#: The task and model of the whole module: 3-digit multiplication (the tiny model calls the
#: tool for it) on a 2-layer built-in model with heads of 32 dimensions (vLLM's CPU kernels).
TASK = ("data.digits=3", "data.operations=[*]")
MODEL = ("model.tiny.hidden_size=64", "model.tiny.intermediate_size=128", "model.tiny.num_layers=2",
         "model.tiny.num_heads=2")
#: Sampled, the briefly trained model makes a valid call in about half of its episodes at this
#: temperature (at 1.0 almost never), so sampled episodes have observations too.
SAMPLING_TEMPERATURE = 0.5


@pytest.fixture(scope="module")
def tool_model_dir(compose, tmp_path_factory) -> Path:
    """The tiny model after 60 SFT steps on calculator demonstrations only: greedy, it calls
    the tool on every 3-digit product, reads the answer, and answers (not always right)."""
    from rlkit.launch import train

    run_dir = tmp_path_factory.mktemp("tool-sft")
    train(compose(["algo=sft", *TASK, *MODEL, "data.tool_fraction=1.0", "data.train_size=512", "trainer.max_steps=60",
                   "trainer.batch_size=32", "trainer.micro_batch_size=32", "trainer.lr=3e-3", "trainer.warmup_steps=0",
                   "trainer.eval_every=0", "trainer.save_every=0", "trainer.eval_samples=4",
                   "trainer.eval_max_new_tokens=4", "logger=[jsonl]"]), run_dir)
    return run_dir / "final"


@pytest.fixture(scope="module")
def tool_model(tool_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tool_model_dir).eval(), AutoTokenizer.from_pretrained(tool_model_dir)


@pytest.fixture(scope="module")
def engine(tool_model):
    generator = VLLMGenerator(VLLMGenerator.Config(cpu_kvcache_space_gib=0.25), *tool_model)
    yield generator
    del generator.llm


@pytest.fixture(scope="module")
def samples():
    task = ArithmeticTask(ArithmeticTask.Config(digits=3, operations=["*"], train_size=8, eval_size=16))
    return task.load("eval", SampleKind.PROMPT)


def episodes_of(generator, tokenizer, samples, params, **env):
    environment = CalculatorEnvironment(CalculatorConfig(**env))
    return EpisodeRunner(environment, generator, tokenizer).run(samples, params)


def assert_same_episodes(ours, reference, tokenizer):
    for a, b in zip(ours, reference, strict=True):
        assert a.prompt_ids == b.prompt_ids
        assert a.token_ids == b.token_ids
        assert a.loss_mask == b.loss_mask
        assert a.messages == b.messages
        assert (a.turns, a.tool_calls, a.tool_errors, a.reward, a.truncated) == \
            (b.turns, b.tool_calls, b.tool_errors, b.reward, b.truncated)
        torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4, rtol=0)


def test_greedy_calculator_episodes_equal_hf_token_for_token(engine, tool_model, samples):
    """The same conversations, token for token: the assistant turns each generator wrote, the
    observation tokens between them, which tokens the loss scores, and the tallies; also when
    the token budget cuts the second turn."""
    model, tokenizer = tool_model
    hf = HFGenerator(HFGenerator.Config(), model, tokenizer)
    params = SamplingParams(temperature=0.0, max_new_tokens=24)
    reference = episodes_of(hf, tokenizer, samples, params)
    # The model calls the tool and answers after its result: two turns, an observation between.
    assert episode_metrics(reference)["env/tool_call_share"] == 1.0
    assert all(e.turns == 2 and not e.truncated for e in reference)
    assert len({tuple(e.token_ids) for e in reference}) > 1  # the calls differ from prompt to prompt
    ours = episodes_of(engine, tokenizer, samples, params)
    assert_same_episodes(ours, reference, tokenizer)
    for episode in ours:
        observed = [t for t, scored in zip(episode.token_ids, episode.loss_mask) if not scored]
        assert tokenizer.decode(observed) == f"<|end|><|tool|>{episode.messages[1].content}<|end|><|assistant|>"

    # A token budget one token into the earliest second turn: every episode is truncated,
    # some after their call (no room for an answer), some one token into their answer.
    second_turn = [len(e.loss_mask) - e.loss_mask[::-1].index(False) for e in reference]
    budget = min(second_turn) + 1
    cut = episodes_of(hf, tokenizer, samples, params, max_tokens=budget)
    assert all(e.truncated and len(e.token_ids) <= budget for e in cut)
    assert any(e.turns == 2 and len(e.token_ids) == budget for e in cut)
    assert_same_episodes(episodes_of(engine, tokenizer, samples, params, max_tokens=budget), cut, tokenizer)


def test_sampled_episodes_carry_the_trainers_logprobs_of_every_assistant_token(engine, tool_model, samples):
    """What ``mismatch/logprob_abs_diff`` measures: the trainer's log-probs of the episode's
    assistant tokens, in the whole conversation (observations included), equal the engine's
    (log_softmax(logits / T)); observation tokens are not targets."""
    model, tokenizer = tool_model
    torch.manual_seed(0)
    params = SamplingParams(temperature=SAMPLING_TEMPERATURE, max_new_tokens=24, n=2)
    episodes = episodes_of(engine, tokenizer, samples[:8], params)
    assert [e.sample_index for e in episodes] == [i for i in range(8) for _ in range(2)]
    assert episode_metrics(episodes)["env/tool_call_share"] > 0
    batch, generator_logps = layout(tokenizer, [e.sample for e in episodes], [e.completion() for e in episodes])
    with torch.no_grad():
        logps, mask = target_logprobs(model, batch, SAMPLING_TEMPERATURE)[:2]
    assert int(mask.sum()) == sum(sum(e.loss_mask) for e in episodes)
    torch.testing.assert_close(logps[mask], generator_logps[mask], atol=1e-4, rtol=0)


def test_grpo_with_env_calculator_and_generator_vllm_logs_episode_metrics(compose, tool_model_dir, tmp_path):
    """A short GRPO run as a user configures it: episodes from the engine, weight syncs after
    each step, and the generator's log-probs still the trainer's at every step."""
    from rlkit.launch import train

    steps = 3
    train(compose(["algo=grpo", "env=calculator", "reward=math", "generator=vllm",
                   "generator.cpu_kvcache_space_gib=0.25", *TASK, f"model.name_or_path={tool_model_dir}",
                   f"trainer.max_steps={steps}", "trainer.batch_size=4", "algo.group_size=4",
                   "trainer.micro_batch_size=64", "algo.sampling.max_new_tokens=24",
                   f"algo.sampling.temperature={SAMPLING_TEMPERATURE}", "trainer.eval_every=0",
                   "trainer.save_every=0", "trainer.eval_samples=4", "trainer.eval_max_new_tokens=24",
                   "logger=[jsonl]"]), tmp_path)
    records = read_metrics(tmp_path / "metrics.jsonl")
    rows = [r for r in records if "reward/mean" in r]
    assert len(rows) == steps
    for row in rows:
        assert row["env/turns"] > 1 and row["env/tool_call_share"] > 0
        for key in ("env/tool_calls", "env/tool_errors", "env/episode_reward", "env/truncated"):
            assert key in row
        assert row["mismatch/logprob_abs_diff"] < 1e-3
        assert row["time/weight_sync"] > 0
    # Greedy episodes with the engine before and after training.
    evaluations = [r for r in records if "eval/env/tool_call_share" in r]
    assert len(evaluations) == 2 and evaluations[0]["eval/env/turns"] == 2.0
