"""generator=vllm against generator=hf and the trainer's own forward pass, on a real vLLM engine.

One engine serves the whole module (starting one takes tens of seconds on 2 cores). These
tests run in .venv-vllm (scripts/setup_vllm.sh; scripts/test.sh runs them there) and are
skipped where vLLM is not installed.
"""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("vllm")

from rlkit.algorithms.base import TrainContext  # noqa: E402
from rlkit.algorithms.config import SamplingConfig  # noqa: E402
from rlkit.algorithms.grpo import GRPO  # noqa: E402
from rlkit.backends.single import SingleBackend  # noqa: E402
from rlkit.config import ModelConfig, TrainerConfig  # noqa: E402
from rlkit.data.arithmetic import ArithmeticTask  # noqa: E402
from rlkit.data.templates import encode_prompt  # noqa: E402
from rlkit.generators.hf import HFGenerator  # noqa: E402
from rlkit.generators.vllm import VLLMGenerator  # noqa: E402
from rlkit.rewards.format import FormatReward  # noqa: E402
from rlkit.types import SampleKind, SamplingParams  # noqa: E402
from rlkit.trainer.update import update_totals  # noqa: E402

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def samples():
    task = ArithmeticTask(ArithmeticTask.Config(digits=2, train_size=64, eval_size=8))
    return task.load("train", SampleKind.PROMPT)[:24]


@pytest.fixture(scope="module")
def policy(tiny):
    """The policy the engine starts from (a copy: the weight-sync test trains it)."""
    return copy.deepcopy(tiny[0]).eval()


@pytest.fixture(scope="module")
def engine(policy, tiny):
    generator = VLLMGenerator(VLLMGenerator.Config(cpu_kvcache_space_gib=0.25), policy, tiny[1])
    yield generator
    del generator.llm


def trainer_logprobs(model, tokenizer, prompt, completion, temperature: float) -> torch.Tensor:
    """log_softmax(logits / temperature) of ``completion``'s tokens from one full forward pass,
    as the trainer scores them."""
    prompt_ids = encode_prompt(tokenizer, prompt)
    ids = torch.tensor([prompt_ids + completion.token_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
    logprobs = (logits / temperature).log_softmax(-1)
    return logprobs.gather(-1, torch.tensor(completion.token_ids)[:, None]).squeeze(-1)


def test_greedy_decoding_equals_hf_token_for_token(engine, policy, tiny, samples):
    prompts = [s.prompt for s in samples]
    params = SamplingParams(temperature=0.0, max_new_tokens=16)
    ours = engine.generate(prompts, params)
    reference = HFGenerator(HFGenerator.Config(), policy, tiny[1]).generate(prompts, params)
    assert len(ours) == len(reference) == 24
    for a, b in zip(ours, reference):
        assert (a.prompt_index, a.token_ids, a.text, a.truncated) == (b.prompt_index, b.token_ids, b.text, b.truncated)
        torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4, rtol=0)


def test_sampled_logprobs_are_those_of_the_tempered_distribution(engine, policy, tiny, samples):
    """n completions per prompt, ordered prompt by prompt; each token's log-prob is
    log_softmax(logits / T) at that token, which is what the trainer recomputes."""
    prompts = [s.prompt for s in samples[:6]]
    torch.manual_seed(0)
    completions = engine.generate(prompts, SamplingParams(temperature=0.7, max_new_tokens=10, n=4))
    assert [c.prompt_index for c in completions] == [i for i in range(6) for _ in range(4)]
    for c in completions:
        assert len(c.token_ids) == len(c.logprobs) > 0
        expected = trainer_logprobs(policy, tiny[1], prompts[c.prompt_index], c, 0.7)
        torch.testing.assert_close(torch.tensor(c.logprobs), expected, atol=1e-4, rtol=0)
    # The 4 samples of a prompt are not copies of one another.
    assert len({tuple(c.token_ids) for c in completions[:4]}) > 1


def test_seeds_come_from_torchs_rng(engine, samples):
    prompts = [s.prompt for s in samples[:8]]
    params = SamplingParams(temperature=1.0, max_new_tokens=8, n=2)

    def sample(seed):
        torch.manual_seed(seed)
        return [c.token_ids for c in engine.generate(prompts, params)]

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_stop_strings_cut_the_text_and_truncation_is_flagged(engine, tiny, samples):
    tokenizer = tiny[1]
    prompts = [s.prompt for s in samples[:8]]
    torch.manual_seed(0)
    free = engine.generate(prompts, SamplingParams(temperature=1.0, max_new_tokens=12, n=2))
    # A stop string the unconstrained samples produce: the text of their commonest token.
    common = max(set(t for c in free for t in c.token_ids), key=lambda t: sum(c.token_ids.count(t) for c in free))
    stop = tokenizer.decode([common]).strip() or tokenizer.decode([common])
    torch.manual_seed(0)
    stopped = engine.generate(prompts, SamplingParams(temperature=1.0, max_new_tokens=12, n=2, stop=(stop,)))
    hits = 0
    for c in stopped:
        full = tokenizer.decode(c.token_ids, skip_special_tokens=True)
        if stop in full:  # stopped at the stop string: the text ends before it, nothing follows it
            hits += 1
            assert not c.truncated
            assert c.text == full[: full.find(stop)]
            assert stop not in tokenizer.decode(c.token_ids[:-1], skip_special_tokens=True)
        else:  # ran to max_new_tokens (or EOS)
            assert c.truncated == (len(c.token_ids) == 12 and c.token_ids[-1] != tokenizer.eos_token_id)
    assert hits > 0
    assert any(c.truncated for c in free) and all(len(c.token_ids) == 12 for c in free if c.truncated)


def test_after_three_grpo_updates_the_synced_engine_scores_like_the_trainer(engine, policy, tiny, samples):
    """Three GRPO steps, each followed by the trainer's weight sync (full state dict ->
    update_weights): the engine's log-probs of its samples then match the trainer's within
    1e-3 (fp32); without the last sync they do not."""
    original = {k: v.clone() for k, v in policy.state_dict().items()}
    backend = SingleBackend(SingleBackend.Config(device="cpu"))
    ctx = TrainContext(policy=policy, tokenizer=tiny[1], backend=backend, trainer=TrainerConfig(micro_batch_size=64),
                       model=ModelConfig(), generator=engine,
                       reward=FormatReward(FormatReward.Config(pattern="^ ")))
    grpo = GRPO(GRPO.Config(group_size=4, sampling=SamplingConfig(max_new_tokens=6)), ctx)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    prompts = samples[:8]

    def step(sync: bool) -> float:
        plan = grpo.prepare(prompts)
        policy.train()
        optimizer.zero_grad()
        mismatch = 0.0
        totals = update_totals(grpo, plan.updates[0], backend)
        for micro in plan.updates[0]:
            out = grpo.loss(micro, totals)
            out.loss.backward()
            mismatch += out.metrics["mismatch/logprob_abs_diff"]  # each micro-batch's share of the mean
        optimizer.step()
        policy.eval()
        if sync:
            engine.update_weights(backend.full_state_dict(policy))
        return mismatch

    try:
        torch.manual_seed(0)
        for _ in range(3):
            assert step(sync=True) < 1e-3
        assert step(sync=False) < 1e-3  # 3 updates synced: generator and trainer agree
        assert step(sync=True) > 1e-3  # sampled with the weights from before the 4th update
        assert step(sync=True) < 1e-3
    finally:
        policy.load_state_dict(original)
        engine.update_weights(original)
