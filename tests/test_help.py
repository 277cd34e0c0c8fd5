"""``python -m rlkit --help`` lists every config group's options with a description."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rlkit.help import describe
from rlkit.registry import Registry

REPO_CONF = Path(__file__).resolve().parent.parent / "conf"


def test_help_lists_each_group_and_option_with_its_description():
    out = subprocess.run([sys.executable, "-m", "rlkit", "--help"], capture_output=True, text=True, check=True).stdout
    assert "is powered by Hydra" not in out
    lines = out.splitlines()
    for group_dir in sorted(p for p in REPO_CONF.iterdir() if p.is_dir() and p.name != "hydra"):
        header = f"+{group_dir.name}=" if group_dir.name in ("sweep", "recipe") else f"{group_dir.name}="
        assert header in lines, f"{header} missing from --help"
        listed = options(lines, header)
        for preset in group_dir.glob("*.yaml"):
            assert preset.stem in listed, f"{group_dir.name}={preset.stem} missing from --help"
            expected = describe(preset.read_text())
            text = listed[preset.stem]  # the description, or its start cut at the line width
            if expected:  # else the schema's (below)
                assert text == expected or (text.endswith("...") and expected.startswith(text[:-3]))
    # Options that are components' schemas (no YAML) are described by their docstrings.
    for kind, group in (("algorithms", "algo"), ("loggers", "logger"), ("backends", "backend")):
        listed = options(lines, f"{group}=")
        for name in Registry(kind).names():
            assert listed.get(name), f"{group}={name} has no description in --help"
    assert options(lines, "logger=")["mlflow"].startswith("Logs to one MLflow run of experiment")
    assert options(lines, "algo=")["sft"] == "Supervised fine-tuning: negative log-likelihood of the completion tokens"
    assert "== Common keys (key=value) ==" in out and "trainer.max_steps" in out
    assert max(len(line) for line in lines) <= 100


def options(lines: list[str], header: str) -> dict[str, str]:
    """``option -> description`` listed under ``header`` in --help."""
    listed = {}
    for line in lines[lines.index(header) + 1:]:
        if not line.startswith("  "):
            break
        option, _, text = line.strip().partition(" ")
        listed[option] = text.strip()
    return listed


def test_description_is_the_first_sentence_of_the_leading_comment():
    assert describe("# @package logger.x\n# Does this. More here.\nkey: 1\n# not this\n") == "Does this"
    assert describe("# A (b. c) thing; more\n# continued\n") == "A (b. c) thing"
    assert describe("# Two lines\n# of one sentence.\n") == "Two lines of one sentence"
    assert describe("key: 1\n# late comment\n") == ""


def test_cfg_job_shows_only_what_the_run_uses():
    def job_config(*args: str) -> dict:
        import yaml

        out = subprocess.run([sys.executable, "-m", "rlkit", *args, "--cfg", "job"], capture_output=True, text=True,
                             check=True).stdout
        return yaml.safe_load(out)

    single = job_config("algo=dpo")
    assert single["algo"]["name"] == "dpo" and single["stages"] == []
    assert [s["name"] for s in job_config()["stages"]] == ["sft", "grpo", "eval"]  # the default pipeline
    assert job_config("algo=dpo", "pipeline=sft_grpo")["stages"]  # asked for explicitly


def test_single_run_adds_pipeline_none_next_to_the_algo():
    from rlkit.cli import single_run

    assert single_run(["-m", "algo=dpo", "trainer.lr=1,2", "--cfg", "job"]) == [
        "-m", "algo=dpo", "pipeline=none", "trainer.lr=1,2", "--cfg", "job"]
    assert single_run(["algo=dpo", "pipeline=sft_grpo"]) == ["algo=dpo", "pipeline=sft_grpo"]
    assert single_run(["algo.beta=0.1"]) == ["algo.beta=0.1"] and single_run([]) == []
