"""benchmarks/compare_trl.py's rlkit side runs (TRL's is not installed in CI): a GRPO run with
the KL term counts its tokens and times its steps and kernels, the kernel clock times
matrix products and nothing else, and the rows TRL gets tokenize to exactly rlkit's tokens."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("compare_trl", REPO / "benchmarks" / "compare_trl.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_rlkit_side_times_steps_kernels_and_counts_tokens(bench, tmp_path):
    from transformers import LlamaModel

    forward = LlamaModel.forward
    work = bench.Workload("grpo04", "small", steps=2)
    with bench.KernelClock() as clock:
        result = bench.run_rlkit(work, tmp_path / "run", clock)
    assert LlamaModel.forward is forward  # the counting patch is undone
    assert len(result["ends"]) == 2 and result["ends"][0] < result["ends"][1]
    kernel_seconds = bench.step_times(result, 0, "kernels")[0]
    assert 0 < kernel_seconds < bench.step_times(result, 0)[0]
    completions = bench.PROMPTS * bench.GROUP
    # Each step trains on 32 prompt+completion rows and decodes up to 16 tokens for each.
    assert result["train_padded"] >= result["train_real"] > 2 * completions
    assert result["nograd_real"] > result["train_real"]  # decoding and the reference pass


def test_trl_rows_tokenize_to_rlkit_tokens(bench):
    from transformers import AutoTokenizer

    from rlkit.data.collate import tokenize
    from rlkit.types import Message

    tokenizer = AutoTokenizer.from_pretrained(bench.model_dir("small"))
    work = bench.Workload("sft", "small", steps=2)
    rows = bench.rows_in_rlkit_order(work, tokenizer)
    assert len(rows) == 2 * bench.BATCH
    for row in rows:
        # TRL renders nothing more (the prompt is already templated) and appends EOS to the completion.
        trl_ids = tokenizer(row["prompt"] + row["completion"] + tokenizer.eos_token, add_special_tokens=False).input_ids
        assert row["prompt"].startswith("<|user|>")
        assert len(trl_ids) == len(tokenize(tokenizer, row["prompt"], row["completion"], 512).input_ids)


def test_kernel_clock_times_matrix_products_only_while_installed(bench):
    import torch

    a = torch.randn(512, 512, requires_grad=True)
    with bench.KernelClock() as clock:
        torch.exp(a).sum().backward()  # no matrix product
        assert clock.seconds == 0
        (a @ a).sum().backward()  # one forward, two backward products
        assert clock.seconds > 0
        clock.active, before = False, clock.seconds
        (a @ a).sum().backward()
        assert clock.seconds == before
    clock.active = True
    (a @ a).sum()
    assert clock.seconds == before  # the dispatch mode is gone, not just paused
