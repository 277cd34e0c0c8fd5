"""data=humaneval and data=mbpp on local copies in the hubs' exact schemas: prompts, SFT
completions, and the unit tests kept with each prompt sample (data.metadata)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rlkit.config import component_config
from rlkit.data.base import DataError
from rlkit.types import Message, PromptSample, SampleKind, SFTSample
from tests.data import hub_fixtures

pytestmark = pytest.mark.usefixtures("datasets_cache")


def dataset(compose, overrides):
    cls, config = component_config("data", compose(["algo=sft", *overrides]).data, "datasets")
    return cls(config)


def test_humaneval_preset_continues_the_code_and_keeps_the_tests(compose, tmp_path):
    data = dataset(compose, ["data=humaneval", f"data.path={hub_fixtures.humaneval(tmp_path / 'he')}"])
    rows = hub_fixtures.humaneval_rows()
    prompts = data.load("eval", SampleKind.PROMPT)
    assert [type(s) for s in prompts] == [PromptSample, PromptSample]
    assert prompts[0].prompt == rows[0]["prompt"]  # plain code to continue, no chat turn
    assert prompts[0].metadata == {"prompt": rows[0]["prompt"], "test": rows[0]["test"], "entry_point": "below_zero"}
    sft = data.load("train", SampleKind.SFT)[0]
    assert isinstance(sft, SFTSample) and sft.completion == rows[0]["canonical_solution"]


def test_mbpp_preset_states_the_task_with_its_asserts(compose, tmp_path):
    data = dataset(compose, ["data=mbpp", f"data.path={hub_fixtures.mbpp(tmp_path / 'mbpp')}"])
    train, held_out = data.load("train", SampleKind.PROMPT), data.load("eval", SampleKind.PROMPT)
    assert len(train) == 4 and len(held_out) == 1
    system, user = train[1].prompt
    assert system.role == "system" and "```python" in system.content
    row = hub_fixtures.mbpp_rows()[1]
    assert user == Message("user", row["text"] + "\nYour code should pass these tests:\n" + "\n".join(row["test_list"]))
    assert train[1].metadata == {"test_list": row["test_list"], "test_setup_code": "import math",
                                 "challenge_test_list": []}


def test_a_missing_metadata_or_template_column_names_the_key_and_the_row(compose, tmp_path):
    repo = hub_fixtures.mbpp(tmp_path / "mbpp")
    cls, config = component_config("data", compose(["algo=sft", "data=mbpp", f"data.path={repo}"]).data, "datasets")
    with pytest.raises(DataError, match=r"row 1.*data.metadata: column 'tests' not found; columns: .*test_list"):
        cls(replace(config, metadata=["tests"])).load("train", SampleKind.PROMPT)
    with pytest.raises(DataError, match=r"row 1.*data.prompt_template: column 'question' not found"):
        cls(replace(config, prompt_template="{question}")).load("train", SampleKind.PROMPT)
    with pytest.raises(ValueError, match=r"data.prompt_template 'no fields': needs \{column\} fields"):
        cls(replace(config, prompt_template="no fields")).load("train", SampleKind.PROMPT)
