"""Damaged checkpoints: a resume falls back to the newest good one, warning once about each."""

from __future__ import annotations

import logging
import os
import pickle
import re
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlkit.backends.safe_dcp import UnsafePickleError
from rlkit.backends.single import SingleBackend
from rlkit.trainer.checkpoint import SHARDED_DIR, TRAINER_STATE, CheckpointError, CheckpointManager


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory, tiny_model_dir):
    """One complete checkpoint of the tiny model: HF files, trainer state, sharded state."""
    directory = tmp_path_factory.mktemp("good") / "step_00000001"
    shutil.copytree(tiny_model_dir, directory)
    model = AutoModelForCausalLM.from_pretrained(directory)
    optimizer = torch.optim.AdamW(model.parameters())
    SingleBackend(SingleBackend.Config()).save_sharded(directory / SHARDED_DIR, model, optimizer)
    torch.save({"step": 1}, directory / TRAINER_STATE)
    return directory


@pytest.fixture
def manager(tmp_path, good_checkpoint):
    """Checkpoints at steps 1, 2 and 3, all good."""
    for step in (1, 2, 3):
        shutil.copytree(good_checkpoint, tmp_path / f"step_{step:08d}")
    return CheckpointManager(tmp_path, keep=3)


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "truncated safetensors": (lambda d: truncate(d / "model.safetensors"), r"model.safetensors is truncated"),
    "truncated trainer state": (lambda d: truncate(d / TRAINER_STATE), r"trainer_state.pt is unreadable"),
    "truncated shard": (lambda d: truncate(d / SHARDED_DIR / "__0_0.distcp"), r"__0_0.distcp is truncated"),
    "missing metadata": (lambda d: (d / SHARDED_DIR / ".metadata").unlink(), r"dcp/.metadata is missing"),
    "missing config": (lambda d: (d / "config.json").unlink(), r"config.json is missing"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_newest_checkpoint_falls_back_with_one_warning(manager, damage, caplog):
    corrupt, problem = DAMAGE[damage]
    corrupt(manager.path(3))
    with caplog.at_level(logging.WARNING, logger="rlkit.trainer.checkpoint"):
        assert manager.latest_usable() == manager.path(2)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert warnings[0].startswith("checkpoint step_00000003 is unusable: ")
    assert warnings[0].endswith("resuming from step_00000002 instead")
    assert re.search(problem, warnings[0])


def test_intact_checkpoints_resume_from_the_newest_without_warnings(manager, caplog):
    with caplog.at_level(logging.WARNING):
        assert manager.latest_usable() == manager.path(3)
    assert not caplog.records


def test_no_usable_checkpoint_is_an_error_listing_each(manager):
    for step in (1, 2, 3):
        truncate(manager.path(step) / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"no usable checkpoint .*step_00000003: .*step_00000001: "):
        manager.latest_usable()


class Planted:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mknod, (self.path,))


@pytest.mark.parametrize("target", [TRAINER_STATE, f"{SHARDED_DIR}/.metadata"])
def test_planted_pickle_is_an_error_not_a_fallback(manager, tmp_path, target):
    """Tampering is not damage: the resume stops, naming the file, and nothing runs."""
    marker = tmp_path / "code-ran"
    (manager.path(3) / target).write_bytes(pickle.dumps({"step": Planted(marker)}))
    with pytest.raises(UnsafePickleError, match=str(manager.path(3) / target)):
        manager.latest_usable()
    assert not marker.exists()


def test_partial_staging_directories_are_removed(manager):
    (manager.directory / ".tmp-step_00000004-123").mkdir()
    (manager.directory / ".old-step_00000002-123").mkdir()
    manager.remove_partial()
    assert sorted(p.name for p in manager.directory.iterdir()) == [f"step_{s:08d}" for s in (1, 2, 3)]


def test_failed_save_removes_its_staging_directory(manager):
    def write_until_the_disk_is_full(directory):
        (directory / "model.safetensors").write_bytes(b"x" * 100)
        raise OSError(28, "No space left on device")

    with pytest.raises(CheckpointError, match="writing .*step_00000004 failed: OSError: .*No space left on device"):
        manager.save(4, write_until_the_disk_is_full, {"step": 4})
    assert sorted(p.name for p in manager.directory.iterdir()) == [f"step_{s:08d}" for s in (1, 2, 3)]
