"""What is checked before training starts: the model's context length against the algorithm's
lengths, every prompt against the chat template, a real model on the tiny demo's settings,
and a model or data named without an algorithm."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rlkit.data.base import DataError
from tests.models.families import build_family


def train(cfg, run_dir):
    from rlkit.launch import train as launch_train

    return launch_train(cfg, run_dir)


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    path = tmp_path_factory.mktemp("preflight") / "rows.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"What is {a} + 1?", "completion": str(a + 1)}) + "\n" for a in range(8)))
    return path


def test_algo_max_length_beyond_the_models_positions_fails_first(compose, rows, tmp_path):
    model = build_family("qwen2", tmp_path / "qwen2", max_position_embeddings=64)
    cfg = compose(["algo=sft", "algo.max_length=256", f"model.name_or_path={model}", "data=files", f"data.train={rows}"])
    with pytest.raises(ValueError) as err:
        train(cfg, tmp_path / "run")
    assert str(err.value) == (f"algo.max_length=256 exceeds the 64 positions of model.name_or_path={model} "
                              "(its max_position_embeddings); set algo.max_length<=64")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_prompt_the_chat_template_cannot_render_names_the_file_and_row(compose, rows, tmp_path):
    model = build_family("mistral", tmp_path / "mistral")  # [INST] template: no system role
    cfg = compose(["algo=sft", f"model.name_or_path={model}", "data=files", f"data.train={rows}",
                   "data.system_prompt='Be brief.'"])
    with pytest.raises(DataError) as err:
        train(cfg, tmp_path / "run")
    message = str(err.value)
    assert message.startswith(f"{rows}, row 1: the chat template of model.name_or_path={model} cannot render this prompt "
                              "(roles: system, user): Conversation roles must alternate")
    assert "\n" not in message


def test_a_real_model_on_the_demo_settings_warns_in_one_line(compose, rows, tmp_path, capfd, caplog):
    model = build_family("qwen2", tmp_path / "qwen2")
    cfg = compose(["algo=sft", f"model.name_or_path={model}", "data=files", f"data.train={rows}", "trainer.max_steps=1",
                   "trainer.eval_every=0", "trainer.save_every=0", "trainer.batch_size=4", "logger=[jsonl]"])
    train(cfg, tmp_path / "run")
    out, err = capfd.readouterr()
    text = out + err + caplog.text
    assert f"model.name_or_path={model} trains with the tiny demo's settings: trainer.lr=0.003 (real models: 1e-6..2e-5)" in text
    assert "+recipe=sft_qwen" in text


def test_naming_a_model_or_data_without_an_algorithm_asks_for_one(tmp_path):
    command = [sys.executable, "-m", "rlkit", "model.name_or_path=Qwen/Qwen2.5-0.5B-Instruct", "data=files",
               "data.train=my.jsonl", f"hydra.run.dir={tmp_path / 'run'}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ})
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: model.name_or_path=Qwen/Qwen2.5-0.5B-Instruct data=files without an algorithm: the default pipeline is "
        "a demo of the built-in tiny model on the arithmetic task; add algo=sft|dpo|rm|grpo|ppo to train on them "
        "(or pipeline=<name> to run a pipeline)"], result.stderr[-2000:]
    assert not (tmp_path / "run" / "0-sft").exists()
