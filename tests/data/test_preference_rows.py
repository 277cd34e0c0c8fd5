"""Preference rows (prompt / chosen / rejected, optional margin) and the synthetic pairs."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlkit.data.arithmetic import ArithmeticTask
from rlkit.data.base import DataError
from rlkit.data.files import FileDataset
from rlkit.types import Message, PreferenceSample, SampleKind

GOOD = {"prompt": "q", "chosen": "a", "rejected": "b"}


def load(path):
    return FileDataset(FileDataset.Config(train=str(path))).load("train", SampleKind.PREFERENCE)


def write_jsonl(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def test_string_and_chat_rows_with_optional_margin(tmp_path):
    path = write_jsonl(tmp_path / "pref.jsonl", [
        {"prompt": "2+2=", "chosen": "4", "rejected": "5", "margin": 2},
        {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
         "chosen": [{"role": "assistant", "content": "Hello"}],
         "rejected": [{"role": "assistant", "content": "Go away"}]},
    ])
    assert load(path) == [
        PreferenceSample((Message("user", "2+2="),), "4", "5", 2.0),  # data.chat: the user's message
        PreferenceSample((Message("system", "Be brief."), Message("user", "Hi")), "Hello", "Go away", None),
    ]


@pytest.mark.parametrize(
    "row, problem",
    [
        ({"prompt": "q", "chosen": "a"}, "missing field(s) 'rejected'"),
        ({**GOOD, "chosen": ""}, "'chosen' must be a non-empty string"),
        ({**GOOD, "rejected": 3}, "'rejected' must be a non-empty string"),
        ({**GOOD, "chosen": [{"role": "user", "content": "a"}]}, "'chosen' as messages must be exactly one assistant message"),
        ({**GOOD, "rejected": [{"role": "assistant", "content": "a"}] * 2}, "exactly one assistant message"),
        ({**GOOD, "prompt": [{"role": "assistant", "content": "x"}]}, "'prompt' must not end with an assistant message"),
        ({**GOOD, "prompt": [{"role": "user"}]}, "'prompt[0]' must have 'role' and 'content'"),
        ({**GOOD, "margin": True}, "'margin' must be a finite number"),
        ({**GOOD, "margin": float("nan")}, "'margin' must be a finite number"),
        ('["q", "a", "b"]', "expected a JSON object, got list"),
        ('{"prompt": "q", ', "invalid JSON"),
    ],
)
def test_malformed_row_names_file_and_row(tmp_path, row, problem):
    path = write_jsonl(tmp_path / "pref.jsonl", [GOOD, GOOD, row])
    with pytest.raises(DataError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}, row 3: ")
    assert problem in str(err.value)


def test_parquet_preference_rows_are_validated(tmp_path):
    path = tmp_path / "pref.parquet"
    pq.write_table(pa.Table.from_pylist([{**GOOD, "margin": 0.5}, {**GOOD, "margin": float("inf")}]), path)
    with pytest.raises(DataError, match=r"pref.parquet, row 2: 'margin' must be a finite number"):
        load(path)


def test_synthetic_pairs_are_held_out_and_wrong_by_an_offset_in_range():
    task = ArithmeticTask(ArithmeticTask.Config(train_size=500, eval_size=50, min_wrong_offset=2, max_wrong_offset=3))
    train, held_out = task.load("train", SampleKind.PREFERENCE), task.load("eval", SampleKind.PREFERENCE)
    assert len(held_out) == 50 and not {p.prompt for p in held_out} & {p.prompt for p in train}
    for pair in train + held_out:
        assert 2 <= abs(int(pair.chosen) - int(pair.rejected)) <= 3
        assert pair.margin is None
    assert held_out == task.load("eval", SampleKind.PREFERENCE)


def test_wrong_offsets_must_be_an_increasing_positive_range():
    with pytest.raises(ValueError, match="1 <= min_wrong_offset <= max_wrong_offset, got 5 and 3"):
        ArithmeticTask(ArithmeticTask.Config(min_wrong_offset=5, max_wrong_offset=3))
