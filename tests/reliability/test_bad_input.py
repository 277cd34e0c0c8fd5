"""Bad input from the issue's fault table: each gets one clear error naming what is wrong."""

from __future__ import annotations

import json

import pytest

from rlkit.config import ModelConfig
from rlkit.data.base import DataError
from rlkit.data.files import FileDataset, FileDatasetConfig
from rlkit.models.loading import load_tokenizer, resolve_path
from rlkit.types import SampleKind


@pytest.mark.parametrize("path", ["/no/such/model", "./missing-model", "outputs/run/final", "~/missing-model"])
def test_missing_model_directory_is_named(path):
    with pytest.raises(FileNotFoundError, match=f"model.name_or_path: directory not found: {path}"):
        resolve_path(ModelConfig(name_or_path=path))


def test_missing_tokenizer_directory_is_named(tiny_model_dir):
    config = ModelConfig(name_or_path=str(tiny_model_dir), tokenizer="/no/such/tokenizer")
    with pytest.raises(FileNotFoundError, match="model.tokenizer: directory not found: /no/such/tokenizer"):
        load_tokenizer(config)


def test_hub_ids_and_existing_directories_pass(tiny_model_dir):
    assert resolve_path(ModelConfig(name_or_path="Qwen/Qwen2.5-0.5B-Instruct")) == "Qwen/Qwen2.5-0.5B-Instruct"
    assert resolve_path(ModelConfig(name_or_path=str(tiny_model_dir))) == str(tiny_model_dir)


def test_non_utf8_bytes_name_file_and_row(tmp_path):
    path = tmp_path / "sft.jsonl"
    good = json.dumps({"prompt": "q", "completion": "a"}).encode()
    path.write_bytes(good + b"\n" + good + b"\n" + b'{"prompt": "caf\xe9", "completion": "a"}\n')
    with pytest.raises(DataError, match=r"sft.jsonl, row 3: not UTF-8: byte b'\\xe9' at column 16"):
        FileDataset(FileDatasetConfig(train=str(path))).load("train", SampleKind.SFT)


def test_preference_pair_with_identical_texts_names_file_and_row(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"prompt": "2+2=", "chosen": "4", "rejected": "5"}, {"prompt": "2+3=", "chosen": "5", "rejected": "5"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataError, match=r"pairs.jsonl, row 2: 'chosen' and 'rejected' are the same text"):
        FileDataset(FileDatasetConfig(train=str(path))).load("train", SampleKind.PREFERENCE)
