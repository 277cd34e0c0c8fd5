from rlkit.data.arithmetic import ArithmeticTask
from rlkit.types import SampleKind


def task(**overrides):
    return ArithmeticTask(ArithmeticTask.Config(train_size=500, eval_size=50, **overrides))


def test_deterministic_and_held_out():
    a, b = task(), task()
    assert a.load("train", SampleKind.SFT) == b.load("train", SampleKind.SFT)
    eval_prompts = {s.prompt for s in a.load("eval", SampleKind.PROMPT)}
    assert len(eval_prompts) == 50
    assert not eval_prompts & {s.prompt for s in a.load("train", SampleKind.PROMPT)}
    assert task(seed=7).load("train", SampleKind.SFT) != a.load("train", SampleKind.SFT)


def test_answers_are_correct_and_sizes_follow_config():
    samples = task(digits=3, operations=["-"]).load("train", SampleKind.SFT)
    assert len(samples) == 500
    for s in samples:
        a, _, b = s.prompt[0].content.removeprefix("What is ").removesuffix("?").split()
        assert int(s.completion) == int(a) - int(b) == int(s.answer)
        assert int(a) < 1000 and int(b) < 1000


def test_preference_pairs_differ():
    pairs = task().load("eval", SampleKind.PREFERENCE)
    assert all(p.chosen != p.rejected for p in pairs)
