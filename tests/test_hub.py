"""final/README.md is a model card with the run's metadata; hub.push fails early and clearly
when it cannot upload (no network is available to tests, so the upload itself is not run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from rlkit.hub import HubConfig, PublishError, check_push, write_model_card

CONFIG = {
    "algo": {"name": "grpo", "group_size": 8, "kl_beta": 0.0, "sampling": {"temperature": 1.0}},
    "model": {"name_or_path": "Qwen/Qwen2.5-0.5B-Instruct"},
    "data": {"name": "hf", "path": "openai/gsm8k", "subset": "main"},
    "trainer": {"lr": 1e-6, "max_steps": 60, "batch_size": 64, "micro_batch_size": 8},
    "hub": {"push": True, "repo_id": "someone/qwen-gsm8k-grpo"},
}


def test_card_metadata_and_body(tmp_path: Path) -> None:
    final = tmp_path / "run" / "final"
    final.mkdir(parents=True)
    plot = tmp_path / "run" / "metrics.png"
    plot.write_bytes(b"\x89PNG\r\n\x1a\n")
    path = write_model_card(final, CONFIG, {"eval/accuracy": 0.5625, "eval/reward": 0.5, "time/eval": 2.0}, plot,
                            command="python -m rlkit algo=grpo data=gsm8k")
    assert path == final / "README.md" and (final / "metrics.png").read_bytes() == plot.read_bytes()

    card = ModelCard.load(path)
    assert card.data.base_model == "Qwen/Qwen2.5-0.5B-Instruct"
    assert card.data.datasets == ["openai/gsm8k"]
    assert card.data.library_name == "transformers" and {"rlkit", "grpo"} <= set(card.data.tags)
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results == {"accuracy": 0.5625, "reward": 0.5}  # eval/* only
    assert card.data.eval_results[0].dataset_type == "openai/gsm8k"
    body = card.text
    assert "post-trained with **GRPO**" in body and "| accuracy | 0.5625 |" in body
    assert "| `trainer.lr` | `1e-06` |" in body and "| `algo.group_size` | `8` |" in body
    assert "| `algo.sampling.temperature` | `1.0` |" in body and "micro_batch_size" not in body
    assert "![metrics](metrics.png)" in body and "python -m rlkit algo=grpo data=gsm8k" in body
    assert 'from_pretrained("someone/qwen-gsm8k-grpo")' in body


def test_local_base_model_is_not_claimed_as_a_hub_id(tmp_path: Path) -> None:
    final = tmp_path / "final"
    final.mkdir()
    config = {**CONFIG, "model": {"name_or_path": "builtin:tiny"}, "data": {"name": "arithmetic"}, "hub": {}}
    card = ModelCard.load(write_model_card(final, config, {"eval/accuracy": 0.25}))
    assert card.data.base_model is None and card.data.datasets is None
    assert "`builtin:tiny` post-trained" in card.text and "the built-in `arithmetic` task" in card.text
    assert f'from_pretrained("{final}")' in card.text and "![metrics]" not in card.text


def test_push_checks_before_training(monkeypatch, tmp_path: Path) -> None:
    check_push(HubConfig())  # push=false: nothing to check
    with pytest.raises(PublishError, match=r"hub.push=true needs hub.repo_id=<user or org>/<name>, got None"):
        check_push(HubConfig(push=True))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PublishError, match="HF_HUB_OFFLINE is set: the upload needs the network"):
        check_push(HubConfig(push=True, repo_id="someone/model"))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored token either
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    with pytest.raises(PublishError, match="needs a Hugging Face token: set HF_TOKEN or run `hf auth login`"):
        check_push(HubConfig(push=True, repo_id="someone/model"))
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    check_push(HubConfig(push=True, repo_id="someone/model"))  # the upload itself would need the network
