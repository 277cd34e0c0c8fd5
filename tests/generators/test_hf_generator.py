"""HFGenerator against transformers' own forward pass and generate(), on a tiny local Llama."""

from __future__ import annotations

import math

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from rlkit.data.templates import render_prompt
from rlkit.generators.hf import HFGenerator, _sample
from rlkit.types import Message, SamplingParams

CORPUS = [
    "the cat sat on the mat",
    "one plus two is three",
    "def add(a, b): return a + b",
    "hello world, how are you today?",
]
PROMPTS = ["the cat", "one plus two is", "h", "def add(a, b): return"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|pad|>", "<|end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<|pad|>", eos_token="<|end|>", chat_template=CHAT_TEMPLATE
    )


def make_model(tokenizer: PreTrainedTokenizerFast, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def model(tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    return make_model(tokenizer, seed=0)


def make_generator(model, tokenizer, batch_size: int = 64) -> HFGenerator:
    return HFGenerator(HFGenerator.Config(batch_size=batch_size), model, tokenizer)


def trainer_logprobs(model, prompt_ids: list[int], completion_ids: list[int], temperature: float):
    """What a trainer computes: one unpadded forward over prompt + completion."""
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
    logprobs = (logits / temperature).log_softmax(-1)
    return logprobs, logprobs.gather(-1, torch.tensor(completion_ids)[:, None]).squeeze(-1)


def hf_greedy(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[list[int]]:
    """transformers' greedy tokens per prompt, with trailing pads (after EOS) removed."""
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
    new = out[:, batch["input_ids"].shape[1] :].tolist()
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    result = []
    for row in new:
        end = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
        result.append(row[:end])
    return result


def test_logprobs_match_trainer_forward_across_padding(model, tokenizer):
    torch.manual_seed(1)
    params = SamplingParams(temperature=1.0, max_new_tokens=12, n=2)
    completions = make_generator(model, tokenizer, batch_size=3).generate(PROMPTS, params)
    for c in completions:
        assert len(c.logprobs) == len(c.token_ids) > 0
        prompt_ids = tokenizer(PROMPTS[c.prompt_index])["input_ids"]
        _, expected = trainer_logprobs(model, prompt_ids, c.token_ids, temperature=1.0)
        torch.testing.assert_close(torch.tensor(c.logprobs), expected, atol=1e-4, rtol=0)


def test_temperature_and_truncation_logprobs_are_pre_truncation(model, tokenizer):
    torch.manual_seed(2)
    params = SamplingParams(temperature=0.7, top_k=5, top_p=0.9, max_new_tokens=10, n=3)
    for c in make_generator(model, tokenizer).generate(PROMPTS, params):
        prompt_ids = tokenizer(PROMPTS[c.prompt_index])["input_ids"]
        full, expected = trainer_logprobs(model, prompt_ids, c.token_ids, temperature=0.7)
        torch.testing.assert_close(torch.tensor(c.logprobs), expected, atol=1e-4, rtol=0)
        # Sampled tokens lie in the top-k of the untruncated distribution.
        top5 = full.topk(5, dim=-1).indices
        assert all(t in top5[i].tolist() for i, t in enumerate(c.token_ids))


def test_greedy_matches_transformers_generate(model, tokenizer):
    params = SamplingParams(temperature=0.0, max_new_tokens=16)
    ours = make_generator(model, tokenizer, batch_size=2).generate(PROMPTS, params)
    assert [c.token_ids for c in ours] == hf_greedy(model, tokenizer, PROMPTS, 16)
    prompt_ids = tokenizer(PROMPTS[0])["input_ids"]
    _, expected = trainer_logprobs(model, prompt_ids, ours[0].token_ids, temperature=1.0)
    torch.testing.assert_close(torch.tensor(ours[0].logprobs), expected, atol=1e-4, rtol=0)


def test_eos_is_kept_in_tokens_but_not_in_text(model, tokenizer):
    params = SamplingParams(temperature=0.0, max_new_tokens=16)
    generator = make_generator(model, tokenizer)
    free = generator.generate(PROMPTS, params)
    # Declare a token greedy decoding emits mid-way an extra EOS, as instruct models do
    # with end-of-turn tokens; generation must stop right after it.
    stop_token = free[0].token_ids[5]
    eos_model = make_model(tokenizer, seed=0)
    eos_model.generation_config.eos_token_id = [tokenizer.eos_token_id, stop_token]
    ended = make_generator(eos_model, tokenizer).generate(PROMPTS, params)
    assert [c.token_ids for c in ended] == hf_greedy(eos_model, tokenizer, PROMPTS, 16)
    first = ended[0]
    cut = free[0].token_ids.index(stop_token) + 1
    assert first.token_ids == free[0].token_ids[:cut] and not first.truncated
    assert first.logprobs == pytest.approx(free[0].logprobs[:cut], abs=1e-5)

    # The tokenizer's own EOS is special: kept in token_ids, absent from the text.
    torch.manual_seed(3)
    eos = tokenizer.eos_token_id
    # A head that ignores the hidden state and favours EOS: p(EOS) = e^3 / (e^3 + 314) ~ 6%.
    head = torch.nn.Linear(64, len(tokenizer))
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[eos] = 3.0
    eos_model.lm_head = head
    sampled = make_generator(eos_model, tokenizer).generate(
        ["the"], SamplingParams(max_new_tokens=8, n=40)
    )
    ending = [c for c in sampled if c.token_ids[-1] == eos]
    assert ending
    for c in ending:
        assert not c.truncated and len(c.logprobs) == len(c.token_ids)
        assert c.logprobs[-1] == pytest.approx(3.0 - math.log(math.exp(3.0) + 314), abs=1e-5)
        assert c.text == tokenizer.decode(c.token_ids[:-1], skip_special_tokens=True)


def test_rows_dropped_once_finished_decode_as_in_a_batch_of_their_own(model, tokenizer):
    """Once half the decoded rows have ended they leave the batch (and the KV cache); the
    rows left go on exactly as they would alone."""
    params = SamplingParams(temperature=0.0, max_new_tokens=16)
    free = make_generator(model, tokenizer).generate(PROMPTS, params)
    # End rows early at different steps: declare tokens that greedy decoding emits as EOS.
    eos_model = make_model(tokenizer, seed=0)
    eos_model.generation_config.eos_token_id = [tokenizer.eos_token_id, free[0].token_ids[1], free[1].token_ids[3]]
    together = make_generator(eos_model, tokenizer).generate(PROMPTS, params)
    alone = [make_generator(eos_model, tokenizer).generate([p], params)[0] for p in PROMPTS]
    lengths = sorted(len(c.token_ids) for c in together)
    assert lengths[0] < lengths[-1] and 2 * sum(n < lengths[-1] for n in lengths) >= len(lengths)
    for a, b in zip(together, alone):
        assert a.token_ids == b.token_ids and a.truncated == b.truncated
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)
    # Sampled rows too: their log-probs are those of the trainer's forward pass.
    torch.manual_seed(6)
    for c in make_generator(eos_model, tokenizer).generate(PROMPTS, SamplingParams(max_new_tokens=12, n=4)):
        prompt_ids = tokenizer(PROMPTS[c.prompt_index])["input_ids"]
        _, expected = trainer_logprobs(eos_model, prompt_ids, c.token_ids, temperature=1.0)
        torch.testing.assert_close(torch.tensor(c.logprobs), expected, atol=1e-4, rtol=0)


def test_n_completions_per_prompt_in_order(model, tokenizer):
    torch.manual_seed(4)
    prompts = PROMPTS[:2] + [(Message("user", "hi"),)]
    completions = make_generator(model, tokenizer, batch_size=4).generate(
        prompts, SamplingParams(max_new_tokens=4, n=3)
    )
    assert [c.prompt_index for c in completions] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert render_prompt(tokenizer, prompts[2]) == "<|user|>hi<|end|><|assistant|>"


def test_sampling_is_reproducible_under_manual_seed(model, tokenizer):
    generator = make_generator(model, tokenizer)
    params = SamplingParams(max_new_tokens=8, n=2)
    torch.manual_seed(5)
    first = [c.token_ids for c in generator.generate(PROMPTS, params)]
    torch.manual_seed(5)
    assert [c.token_ids for c in generator.generate(PROMPTS, params)] == first


def test_max_new_tokens_sets_truncated(model, tokenizer):
    completions = make_generator(model, tokenizer).generate(
        PROMPTS, SamplingParams(temperature=0.0, max_new_tokens=5)
    )
    eos = tokenizer.eos_token_id
    assert all(len(c.token_ids) == 5 for c in completions)
    # With this model, "h" ends with EOS exactly at the last step: not a truncation.
    assert [c.truncated for c in completions] == [True, True, False, True]
    assert completions[2].token_ids[-1] == eos
    assert all(eos not in c.token_ids for i, c in enumerate(completions) if i != 2)
    assert [c.text for c in completions] == [
        tokenizer.decode(c.token_ids, skip_special_tokens=True) for c in completions
    ]


def test_stop_strings_cut_text_and_tokens(model, tokenizer):
    generator = make_generator(model, tokenizer)
    free = generator.generate(PROMPTS[:1], SamplingParams(temperature=0.0, max_new_tokens=20))[0]
    stop = free.text[7:9]  # spans two tokens
    assert free.text.find(stop) == 7
    stopped = generator.generate(
        PROMPTS[:1], SamplingParams(temperature=0.0, max_new_tokens=20, stop=("<never>", stop))
    )[0]
    assert stopped.text == free.text[:7] and not stopped.truncated
    # token_ids end with the token that completed the stop string.
    cut = next(j for j in range(1, 21) if stop in tokenizer.decode(free.token_ids[:j]))
    assert stopped.token_ids == free.token_ids[:cut]
    assert len(stopped.logprobs) == cut


def test_update_weights_loads_other_model_and_restores_mode(model, tokenizer):
    other = make_model(tokenizer, seed=1)
    policy = make_model(tokenizer, seed=0).train()
    generator = make_generator(policy, tokenizer)
    params = SamplingParams(temperature=0.0, max_new_tokens=10)
    before = [c.token_ids for c in generator.generate(PROMPTS, params)]
    assert policy.training
    generator.update_weights(policy.state_dict())  # its own tensors: nothing to copy
    generator.update_weights(other.state_dict())
    after = [c.token_ids for c in generator.generate(PROMPTS, params)]
    assert after != before
    assert after == hf_greedy(other, tokenizer, PROMPTS, 10)


@pytest.mark.parametrize(
    "params, expected",
    [
        (SamplingParams(temperature=0.5), [0.829, 0.112, 0.041, 0.015, 0.002]),
        (SamplingParams(top_k=2), [0.731, 0.269, 0.0, 0.0, 0.0]),
        # Nucleus: tokens whose predecessors already hold 0.8 of the mass are dropped.
        (SamplingParams(top_p=0.8), [0.628, 0.231, 0.141, 0.0, 0.0]),
    ],
)
def test_sampling_distribution(params, expected):
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]]).repeat(50_000, 1)
    tokens, _ = _sample(logits, params, torch.Generator().manual_seed(0))
    frequencies = torch.bincount(tokens, minlength=5) / len(tokens)
    torch.testing.assert_close(frequencies, torch.tensor(expected), atol=0.01, rtol=0)
