"""data=hf and its presets, on local copies of each hub dataset in its exact schema and layout,
read through load_dataset as the hub ids would be."""

from __future__ import annotations

import pytest

from rlkit.config import component_config
from rlkit.data.base import DataError
from rlkit.types import Message, PreferenceSample, PromptSample, SampleKind, SFTSample
from tests.data import hub_fixtures

pytestmark = pytest.mark.usefixtures("datasets_cache")


def dataset(compose, overrides):
    cls, config = component_config("data", compose(["algo=sft", *overrides]).data, "datasets")
    return cls(config)


def test_gsm8k_preset(compose, tmp_path):
    repo = hub_fixtures.gsm8k(tmp_path / "gsm8k")
    data = dataset(compose, ["data=gsm8k", f"data.path={repo}"])
    prompts = data.load("train", SampleKind.PROMPT)
    assert len(prompts) == 8 and len(data.load("eval", SampleKind.PROMPT)) == 2
    first = prompts[0]
    assert isinstance(first, PromptSample) and first.answer == "4"  # "#### 4" via answer_pattern
    system, user = first.prompt
    assert system.role == "system" and "####" in system.content
    assert user == Message("user", "Tom has 1 apples and buys 3 more. How many apples does he have?")
    sft = data.load("train", SampleKind.SFT)[0]
    assert isinstance(sft, SFTSample) and sft.completion.endswith("#### 4") and sft.answer == "4"


def test_math_presets_take_the_boxed_answer_and_math500_its_answer_column(compose, tmp_path):
    train = dataset(compose, ["data=math", f"data.path={hub_fixtures.math_lighteval(tmp_path / 'math')}"])
    assert [s.answer for s in train.load("train", SampleKind.PROMPT)] == [r"\frac{3}{4}", "3"]
    m500 = dataset(compose, ["data=math500", f"data.path={hub_fixtures.math500(tmp_path / 'm500')}"])
    samples = m500.load("eval", SampleKind.PROMPT)
    assert [s.answer for s in samples] == [r"\left( 3, \frac{\pi}{2} \right)", r"2\sqrt{2}"]
    assert r"\boxed{}" in samples[0].prompt[0].content


def test_openmathinstruct2_preset_holds_out_a_fraction(compose, tmp_path):
    repo = hub_fixtures.openmathinstruct2(tmp_path / "omi2")
    data = dataset(compose, ["data=openmathinstruct2", f"data.path={repo}", "data.eval_fraction=0.2"])
    train, held_out = data.load("train", SampleKind.SFT), data.load("eval", SampleKind.PROMPT)
    assert len(train) == 8 and [s.answer for s in held_out] == ["27", "30"]
    assert train[0].completion == r"1 times 3 is $\boxed{3}$."


def test_preference_presets_split_conversations_into_prompt_and_replies(compose, tmp_path):
    uf = dataset(compose, ["algo=dpo", "data=ultrafeedback", f"data.path={hub_fixtures.ultrafeedback(tmp_path / 'uf')}"])
    pairs = uf.load("train", SampleKind.PREFERENCE)
    assert pairs[0] == PreferenceSample((Message("user", "Name a colour number 0."),), "Blue, number 0.", "I cannot.")
    assert len(uf.load("eval", SampleKind.PREFERENCE)) == 2
    hh = dataset(compose, ["algo=dpo", "data=hh_rlhf", f"data.path={hub_fixtures.hh_rlhf(tmp_path / 'hh')}"])
    pair = hh.load("train", SampleKind.PREFERENCE)[2]
    assert [m.role for m in pair.prompt] == ["user", "assistant", "user"]
    assert (pair.chosen, pair.rejected) == ("It is 3.", "Go away.")


def test_plain_hf_with_mapping_max_rows_and_chat_off(compose, tmp_path):
    repo = hub_fixtures.gsm8k(tmp_path / "gsm8k")
    data = dataset(compose, ["data=hf", f"data.path={repo}", "data.subset=main", "data.columns.prompt=question",
                             "data.columns.answer=answer", "data.answer_pattern='#### (.*)'", "data.max_rows=3",
                             "data.chat=false"])
    samples = data.load("train", SampleKind.PROMPT)
    assert [s.answer for s in samples] == ["4", "6", "8"] and samples[0].prompt.startswith("Tom has 1")


def test_save_to_disk_directories_load_too(tmp_path):
    import datasets

    from rlkit.data.files import HubDataset

    rows = hub_fixtures.gsm8k_rows(3)
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(tmp_path / "ds")
    config = HubDataset.Config(path=str(tmp_path / "ds"), answer_pattern="#### (.*)")
    config.columns.prompt = "question"
    assert [s.answer for s in HubDataset(config).load("train", SampleKind.PROMPT)] == ["4", "6", "8"]


def test_missing_column_names_the_key_the_dataset_and_the_row(compose, tmp_path):
    repo = hub_fixtures.gsm8k(tmp_path / "gsm8k")
    data = dataset(compose, ["data=gsm8k", f"data.path={repo}", "data.columns.prompt=problem"])
    with pytest.raises(DataError) as err:
        data.load("train", SampleKind.PROMPT)
    message = str(err.value)
    assert message.startswith(f"{repo}:main[train], row 1: data.columns.prompt: column 'problem' not found")
    assert "answer, question" in message and "\n" not in message


def test_unmapped_field_says_which_key_to_set(compose, tmp_path):
    repo = hub_fixtures.gsm8k(tmp_path / "gsm8k")
    data = dataset(compose, ["data=hf", f"data.path={repo}", "data.subset=main"])
    with pytest.raises(DataError, match=r"\[train\], row 1: missing field\(s\) 'prompt'.*data.columns.prompt=<column>"):
        data.load("train", SampleKind.PROMPT)


def test_answer_pattern_that_does_not_match_names_the_key_and_row(compose, tmp_path):
    rows = hub_fixtures.gsm8k_rows(3)
    rows[1]["answer"] = "He has 6 apples. The answer is 6."
    repo = hub_fixtures.write_hub_repo(tmp_path / "gsm8k", {"main": {"train": rows, "test": rows}})
    data = dataset(compose, ["data=gsm8k", f"data.path={repo}"])
    with pytest.raises(DataError, match=r"gsm8k:main\[train\], row 2: data.answer_pattern '#### \(\.\*\)' does not match"):
        data.load("train", SampleKind.PROMPT)


def test_bad_pattern_and_unknown_split_fail_before_rows(compose, tmp_path):
    repo = hub_fixtures.gsm8k(tmp_path / "gsm8k")
    with pytest.raises(ValueError, match="data.answer_pattern 'answer' : needs a group|needs a group"):
        dataset(compose, ["data=gsm8k", f"data.path={repo}", "data.answer_pattern=answer"]).load("train", SampleKind.PROMPT)
    with pytest.raises(ValueError, match="data.split='validation'"):
        dataset(compose, ["data=gsm8k", f"data.path={repo}", "data.split=validation"]).load("train", SampleKind.PROMPT)
