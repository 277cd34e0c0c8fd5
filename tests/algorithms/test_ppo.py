"""PPO: rewards sit at the last completion token, updates are split-invariant, the value
model's state round-trips, and a short run learns a simple reward."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from rlkit.algorithms.base import TrainContext
from rlkit.algorithms.config import SamplingConfig
from rlkit.algorithms.losses import gae
from rlkit.algorithms.ppo import PPO, token_rewards
from rlkit.backends.single import SingleBackend
from rlkit.config import ModelConfig, TrainerConfig
from rlkit.data.arithmetic import ArithmeticTask
from rlkit.generators.hf import HFGenerator
from rlkit.rewards.math import MathVerifier
from rlkit.trainer.update import Updater, update_totals
from rlkit.types import SampleKind


@pytest.fixture
def prompts():
    task = ArithmeticTask(ArithmeticTask.Config(digits=1, train_size=64, eval_size=8))
    return task.load("train", SampleKind.PROMPT)[:4]


def make_ppo(model, tokenizer, model_dir, micro_batch_size=64, **options):
    ctx = TrainContext(
        policy=model, tokenizer=tokenizer, backend=SingleBackend(SingleBackend.Config(device="cpu")),
        trainer=TrainerConfig(micro_batch_size=micro_batch_size), model=ModelConfig(name_or_path=str(model_dir)),
        generator=HFGenerator(HFGenerator.Config(), model, tokenizer), reward=MathVerifier(MathVerifier.Config()),
    )
    options.setdefault("samples_per_prompt", 4)
    options.setdefault("epochs", 1)
    options.setdefault("minibatches", 1)
    return PPO(PPO.Config(sampling=SamplingConfig(max_new_tokens=6), **options), ctx)


def test_token_rewards_sit_at_the_last_valid_token():
    mask = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    scores = torch.tensor([2.0, -1.0, 5.0])
    kl = torch.full(mask.shape, 0.5)
    rewards = token_rewards(scores, mask, kl, kl_coef=0.1)
    expected = torch.tensor([[0, -0.05, -0.05, 1.95, 0], [0, 0, -1.05, 0, 0], [0, 0, 0, 0, 0]])
    torch.testing.assert_close(rewards, expected)
    # With zero values and gamma = lam = 1, every token's advantage is its row's return-to-go.
    advantages, returns = gae(rewards, torch.zeros(mask.shape), mask, gamma=1.0, lam=1.0)
    torch.testing.assert_close(advantages[0, 1:4], torch.tensor([1.85, 1.9, 1.95]))
    torch.testing.assert_close(returns, advantages)


def test_completion_tokens_end_where_the_reward_is(tiny, tiny_model_dir, prompts):
    algorithm = make_ppo(copy.deepcopy(tiny[0]), tiny[1], tiny_model_dir)
    torch.manual_seed(0)
    from rlkit.algorithms.rollout import sample_rollouts

    rollouts = sample_rollouts(algorithm.ctx, prompts, algorithm.config.sampling.params(4))
    mask = rollouts.batch.target_mask[:, 1:]
    rewards = token_rewards(rollouts.rewards + 1.0, mask)  # + 1: every row has a non-zero score
    for row, completion in enumerate(rollouts.completions):
        [position] = rewards[row].nonzero().flatten().tolist()
        # Target t scores input_ids[t + 1]: the reward sits on the completion's last token.
        assert rollouts.batch.input_ids[row, position + 1] == completion.token_ids[-1]
        assert mask[row].sum() == len(completion.token_ids)


def grads(algorithm, micro_batches):
    for model in (algorithm.ctx.policy, algorithm.value_model):
        model.zero_grad()
    totals = update_totals(algorithm, micro_batches, algorithm.ctx.backend)
    metrics = {}
    for micro in micro_batches:
        out = algorithm.loss(micro, totals)
        out.loss.backward()
        for k, v in {"loss": out.loss.item(), **out.metrics}.items():
            metrics[k] = metrics.get(k, 0.0) + v
    named = [*algorithm.ctx.policy.named_parameters(), *(("value." + n, p) for n, p in algorithm.value_model.named_parameters())]
    return metrics, {n: p.grad.clone() for n, p in named if p.grad is not None}


def test_update_does_not_depend_on_micro_batch_split(tiny, tiny_model_dir, prompts):
    model = copy.deepcopy(tiny[0]).double()
    whole = make_ppo(model, tiny[1], tiny_model_dir, micro_batch_size=16, kl_coef=0.1, epochs=2)
    split = make_ppo(model, tiny[1], tiny_model_dir, micro_batch_size=3, kl_coef=0.1, epochs=2)
    split.value_model = whole.value_model
    torch.manual_seed(0)
    data, _ = whole.rollout_data(prompts)
    # A non-trivial ratio and value change, so both clips are exercised.
    data.old_logps = data.old_logps + 0.3 * torch.randn_like(data.old_logps)
    data.old_values = data.old_values + 0.3 * torch.randn_like(data.old_values)
    rows = list(range(len(data)))
    m_whole, g_whole = grads(whole, whole.micro_batches(data, rows))
    resplit = split.micro_batches(data, rows)
    m_split, g_split = grads(split, resplit)
    assert len(resplit) == 6
    assert 0 < m_whole["clip_fraction"] < 1 and 0 < m_whole["value_clip_fraction"] < 1
    for key in ("loss", "policy_loss", "value_loss", "entropy"):
        assert m_whole[key] == pytest.approx(m_split[key], rel=1e-9), key
    for key in ("clip_fraction", "value_clip_fraction"):  # float32 fractions
        assert m_whole[key] == pytest.approx(m_split[key], rel=1e-6), key
    assert any(n.startswith("value.") for n in g_whole) and any(not n.startswith("value.") for n in g_whole)
    for name, g in g_whole.items():
        torch.testing.assert_close(g_split[name], g, rtol=1e-8, atol=1e-12, msg=name)


def test_the_trainer_updates_the_value_model_with_its_own_learning_rate(tiny, tiny_model_dir, prompts):
    algorithm = make_ppo(copy.deepcopy(tiny[0]), tiny[1], tiny_model_dir, epochs=2, minibatches=2, value_lr=1e-2)
    assert algorithm.reference is None
    torch.manual_seed(0)
    plan = algorithm.prepare(prompts)
    assert len(plan.updates) == 4 and len(plan.updates[0][0].data) == 8
    assert {"reward/mean", "returns/mean", "values/explained_variance"} <= set(plan.metrics)
    updater = Updater(algorithm, algorithm.ctx.backend, algorithm.ctx.trainer)
    assert [group["lr"] for group in updater.optimizer.param_groups] == [1e-3, 1e-2]
    before = {n: p.detach().clone() for n, p in algorithm.value_model.named_parameters()}
    metrics, _ = updater.run(plan.updates[:1])
    assert metrics["mismatch/logprob_abs_diff"] < 1e-4
    assert metrics["grad_norm"] > 0 and metrics["grad_norm/value"] > 0
    changed = [n for n, p in algorithm.value_model.named_parameters() if not torch.equal(p, before[n])]
    assert any("score" in n for n in changed)


def test_value_model_and_optimizer_resume_from_the_sharded_checkpoint(tiny, tiny_model_dir, prompts, tmp_path):
    trained = make_ppo(copy.deepcopy(tiny[0]), tiny[1], tiny_model_dir)
    updater = Updater(trained, trained.ctx.backend, trained.ctx.trainer)
    torch.manual_seed(0)
    updater.run(trained.prepare(prompts).updates)
    updater.save_sharded(tmp_path / "dcp")
    fresh = make_ppo(copy.deepcopy(tiny[0]), tiny[1], tiny_model_dir)
    resumed = Updater(fresh, fresh.ctx.backend, fresh.ctx.trainer)
    assert not torch.equal(fresh.value_model.score.weight, trained.value_model.score.weight)
    resumed.load_sharded(tmp_path / "dcp")
    for (name, p), q in zip(updater.checkpointed.named_parameters(), resumed.checkpointed.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=0, msg=name)
    a, b = updater.optimizer.state_dict(), resumed.optimizer.state_dict()
    assert len(a["state"]) == len(b["state"]) == len(list(updater.checkpointed.parameters()))
    for key, slot in a["state"].items():
        for name, value in slot.items():
            torch.testing.assert_close(b["state"][key][name], value, rtol=0, atol=0)
    # Both continue identically.
    for run in (updater, resumed):
        for p in run.checkpointed.parameters():
            p.grad = torch.ones_like(p)
        run.optimizer.step()
    torch.testing.assert_close(fresh.value_model.score.weight, trained.value_model.score.weight, rtol=0, atol=0)


#: A smaller built-in model than the default, so the run below takes ~40 s.
SMALL_MODEL = ("model.tiny.hidden_size=64", "model.tiny.intermediate_size=128", "model.tiny.num_layers=2")


@pytest.mark.slow
def test_ppo_learns_a_format_reward(compose, tmp_path):
    """From the random tiny model, reward completions that start with a space (~20% of its
    samples at first): the reward rises, and the value model's loss falls and its explained
    variance rises as it learns the returns."""
    from rlkit.launch import train

    steps = 30
    train(compose(["algo=ppo", "reward=format", "reward.pattern='^ '", "data.eval_size=40", *SMALL_MODEL,
                   f"trainer.max_steps={steps}", "trainer.batch_size=16", "trainer.micro_batch_size=64",
                   "trainer.lr=1e-3", "trainer.warmup_steps=0", "trainer.schedule=constant", "trainer.eval_every=0",
                   "trainer.save_every=0", "trainer.eval_samples=4", "trainer.eval_max_new_tokens=2",
                   "algo.sampling.max_new_tokens=2", "logger=[jsonl]"]), tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "reward/mean" in r]
    assert len(train_rows) == steps
    def mean(rs, key):  # explained variance is None (NaN) for a batch of equal returns
        values = [r[key] for r in rs if r[key] is not None]
        return sum(values) / len(values)

    first, last = train_rows[:5], train_rows[-5:]
    trend = {k: (mean(first, k), mean(last, k)) for k in ("reward/mean", "value_loss", "values/explained_variance")}
    print(trend)
    assert trend["reward/mean"][1] > trend["reward/mean"][0] + 0.25
    assert trend["value_loss"][1] < trend["value_loss"][0]
    assert trend["values/explained_variance"][1] > trend["values/explained_variance"][0]
