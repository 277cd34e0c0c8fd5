"""manifest.json records what produced a run; --verify finds inputs that changed since."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlkit.manifest import recorded, verify
from rlkit.outputs import RunOutputs


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "1+1=", "completion": "2"}\n')
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    return data, model


def test_manifest_records_versions_inputs_and_sessions(tmp_path: Path, inputs) -> None:
    data, model = inputs
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = {"name": "files", "train": str(data), "eval": None, "columns": {"prompt": "question"}}
    with recorded(run_dir, config, str(model)):
        during = json.loads(RunOutputs(run_dir).manifest.read_text())
    assert during["sessions"][0]["status"] == "running" and during["sessions"][0]["end"] is None

    manifest = json.loads(RunOutputs(run_dir).manifest.read_text())
    import rlkit
    import torch

    assert manifest["rlkit"]["version"] == rlkit.__version__
    git = manifest["rlkit"]["git"]  # tests run from a checkout
    assert git is None or len(git["revision"]) == 40
    assert manifest["packages"]["torch"] == torch.__version__
    assert set(manifest["packages"]) >= {"torch", "transformers", "peft", "vllm", "ray"}
    assert manifest["inputs"]["data.train"] == {
        "path": str(data), "sha256": {"train.jsonl": hashlib.sha256(data.read_bytes()).hexdigest()}}
    assert set(manifest["inputs"]["model"]["sha256"]) == {"config.json", "model.safetensors"}
    assert set(manifest["inputs"]) == {"data.train", "model"}  # "question" and "files" are not paths
    [session] = manifest["sessions"]
    assert session["status"] == "completed" and session["end"] >= session["start"]
    assert session["command"] == sys.argv

    with pytest.raises(RuntimeError), recorded(run_dir, config, str(model)):  # a resumed run that fails
        raise RuntimeError("killed")
    sessions = json.loads(RunOutputs(run_dir).manifest.read_text())["sessions"]
    assert [s["status"] for s in sessions] == ["completed", "failed"]


def test_verify_reports_changed_missing_and_new_files(tmp_path: Path, inputs) -> None:
    data, model = inputs
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with recorded(run_dir, {"train": str(data)}, str(model)):
        pass
    command = [sys.executable, "-m", "rlkit.manifest", str(run_dir), "--verify"]
    same = subprocess.run(command, capture_output=True, text=True)
    assert same.returncode == 0 and same.stdout.strip() == "3 input file(s) checked: all unchanged"

    data.write_text('{"prompt": "1+1=", "completion": "3"}\n')
    (model / "config.json").unlink()
    (model / "extra.bin").write_bytes(b"x")
    assert verify(run_dir) == [
        f"changed: data.train {data}",
        f"missing: model {model / 'config.json'}",
        f"new: model {model / 'extra.bin'}",
    ]
    changed = subprocess.run(command, capture_output=True, text=True)
    assert changed.returncode == 1 and changed.stdout.splitlines()[-1] == "3 input file(s) checked: 3 difference(s)"

    missing = subprocess.run([sys.executable, "-m", "rlkit.manifest", str(tmp_path), "--verify"],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no manifest" in missing.stderr
