"""Row validation: every bad row names its file, its row and the problem."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlkit.data.base import DataError
from rlkit.data.files import FileDataset
from rlkit.types import Message, SampleKind, SFTSample


def write_jsonl(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def load(path, kind=SampleKind.SFT):
    return FileDataset(FileDataset.Config(train=str(path))).load("train", kind)


def test_prompt_completion_and_chat_rows(tmp_path):
    path = write_jsonl(tmp_path / "sft.jsonl", [
        json.dumps({"prompt": "2+2=", "completion": "4", "answer": 4}),
        "",
        json.dumps({"messages": [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "Hi"},
                                 {"role": "assistant", "content": "Hello"}]}),
    ])
    first, second = load(path)
    assert first == SFTSample((Message("user", "2+2="),), "4", "4")  # data.chat: the user's message
    assert FileDataset(FileDataset.Config(train=str(path), chat=False)).load("train", SampleKind.SFT)[0].prompt == "2+2="
    assert second.prompt == (Message("system", "Be brief."), Message("user", "Hi"))
    assert second.completion == "Hello"


@pytest.mark.parametrize(
    "row, problem",
    [
        ({"prompt": "x"}, "missing field(s) 'completion'"),
        ({"prompt": "x", "completion": ""}, "'completion' must be a non-empty string"),
        ({"messages": [{"role": "user", "content": "x"}]}, "must end with an assistant message"),
        ({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}, "unknown role 'robot'"),
        ({"prompt": 3, "completion": "y"}, "'prompt' must be a non-empty list of messages"),
    ],
)
def test_bad_sft_row_names_file_and_line(tmp_path, row, problem):
    good = json.dumps({"prompt": "a", "completion": "b"})
    path = write_jsonl(tmp_path / "data.jsonl", [good, good, "", json.dumps(row)])
    with pytest.raises(DataError) as err:
        load(path)
    assert err.value.row == 4  # line numbers as an editor shows them, blank lines counted
    assert str(err.value).startswith(f"{path}, row 4: ")
    assert problem in str(err.value)


def test_invalid_json_names_the_line(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", ['{"prompt": "a", "completion": "b"}', '{"prompt": '])
    with pytest.raises(DataError, match=r"data.jsonl, row 2: invalid JSON"):
        load(path)


def test_bad_preference_row(tmp_path):
    path = write_jsonl(tmp_path / "pref.jsonl", [
        json.dumps({"prompt": "q", "chosen": "a", "rejected": "b", "margin": 1.5}),
        json.dumps({"prompt": "q", "chosen": "a", "rejected": "b", "margin": "high"}),
    ])
    with pytest.raises(DataError, match=r"row 2: 'margin' must be a finite number"):
        load(path, SampleKind.PREFERENCE)


def test_parquet_rows_are_validated(tmp_path):
    path = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": "a", "completion": "b"}, {"prompt": "a", "completion": None}]), path)
    with pytest.raises(DataError, match=r"data.parquet, row 2: missing field"):
        load(path)


def test_unsupported_file_type(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("prompt,completion\n")
    with pytest.raises(ValueError, match="unsupported data file type '.csv'"):
        load(path)


def test_hf_dataset_from_disk(tmp_path):
    import datasets

    from rlkit.data.files import HubDataset

    datasets.DatasetDict({
        "train": datasets.Dataset.from_list([{"prompt": "a", "answer": "1"}]),
        "test": datasets.Dataset.from_list([{"prompt": "b", "answer": None}, {"prompt": ""}]),
    }).save_to_disk(tmp_path / "ds")
    source = HubDataset(HubDataset.Config(path=str(tmp_path / "ds"), eval_split="test"))
    assert source.load("train", SampleKind.PROMPT)[0].answer == "1"
    with pytest.raises(DataError, match=r"\[test\], row 2: 'prompt' is empty"):
        source.load("eval", SampleKind.PROMPT)
