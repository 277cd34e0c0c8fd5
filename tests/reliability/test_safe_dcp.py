"""Sharded (DCP) checkpoints are read without executing the pickles inside them."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch import nn

from rlkit.backends.base import _dcp_state
from rlkit.backends.safe_dcp import UnsafePickleError
from rlkit.backends.single import SingleBackend


class Planted:
    """Unpickling this creates ``path``: the proof that code from the file ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mknod, (self.path,))


def model_and_optimizer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    return model, optimizer


@pytest.fixture
def saved(tmp_path):
    backend = SingleBackend(SingleBackend.Config())
    model, optimizer = model_and_optimizer()
    backend.save_sharded(tmp_path / "dcp", model, optimizer)
    return backend, tmp_path / "dcp"


def test_round_trip_restores_model_and_optimizer(saved):
    backend, directory = saved
    model, optimizer = model_and_optimizer()
    expected = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    optimizer.param_groups[0]["lr"] = 1.0
    backend.load_sharded(directory, model, optimizer)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), expected))
    assert optimizer.param_groups[0]["lr"] == 0.01


def test_planted_metadata_pickle_is_refused_naming_the_file(saved, tmp_path):
    backend, directory = saved
    marker = tmp_path / "code-ran"
    (directory / ".metadata").write_bytes(pickle.dumps(Planted(marker)))
    with pytest.raises(UnsafePickleError, match=rf"{directory / '.metadata'}: refusing to unpickle posix.mknod"):
        backend.load_sharded(directory, *model_and_optimizer())
    assert not marker.exists()


def test_planted_value_in_a_shard_is_refused_naming_the_file(saved, tmp_path):
    backend, directory = saved
    marker = tmp_path / "code-ran"
    model, optimizer = model_and_optimizer()
    state = _dcp_state(model, optimizer)
    state["optimizer"]["param_groups"][0]["lr"] = Planted(marker)
    dcp.save(state, checkpoint_id=str(directory))  # a well-formed checkpoint with a planted value
    with pytest.raises(UnsafePickleError, match=rf"{directory / '__0_0.distcp'}: .*'optimizer.param_groups.0.lr'"):
        backend.load_sharded(directory, *model_and_optimizer())
    assert not marker.exists()


def test_truncated_or_missing_metadata_names_the_file(saved):
    backend, directory = saved
    data = (directory / ".metadata").read_bytes()
    (directory / ".metadata").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{directory / '.metadata'}: unreadable checkpoint metadata"):
        backend.load_sharded(directory, *model_and_optimizer())
    (directory / ".metadata").unlink()
    with pytest.raises(FileNotFoundError, match=r"\.metadata"):
        backend.load_sharded(directory, *model_and_optimizer())
