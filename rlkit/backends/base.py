"""The backend interface: how the policy and optimizer are placed on one or many processes.

A backend owns everything that differs between one process and many: device placement,
wrapping, backward, gradient clipping, the optimizer step, reductions across ranks and
full (gathered) and sharded state dicts. Algorithms and the loop never ask which backend
they run on. Built-ins: ``single``, ``ddp``, ``fsdp2`` (optionally with tensor
parallelism, ``tp_size``) and ``auto``.

What algorithm authors use
--------------------------

* ``backend.wrap(model, trainable=False)`` -- place a frozen model (a DPO/GRPO reference,
  a reward model) like the policy: sharded under ``fsdp2`` (and TP), a per-rank copy under
  ``ddp``. Wrap a second trainable model (PPO's value model) with ``trainable=True`` and
  return it from ``Algorithm.trainable_modules()`` (the trainer optimises it). Build
  the model to wrap from its checkpoint (``load_model(...)``); do not ``deepcopy`` an
  already wrapped policy (sharded modules cannot be copied) -- use
  ``backend.gathered_model`` for a plain copy.
* ``backend.all_reduce_sum(x)`` / ``backend.all_reduce(x, "max")`` -- global statistics
  over the data-parallel ranks (``x`` a float or a tensor), e.g. a batch standard deviation;
  loss denominators come from ``Algorithm.counts``, which the trainer reduces.
  ``backend.dp_rank`` / ``backend.dp_size`` say which share of the data this rank holds
  (ranks of one tensor-parallel group hold the same share).
* ``with backend.generation_model(policy) as model:`` -- sample with full weights. Inside
  the block ``model`` (the policy object itself) runs forward passes without
  communication between data-parallel ranks, so each rank can generate for its own
  prompts, any number of decode steps. Under ``fsdp2`` entering gathers the full weights
  (every rank must enter together) and leaving frees them again. Under tensor parallelism
  the ranks of a TP group still compute together: they hold the same prompts and RNG
  state, so they decode in lockstep. A generator built around the policy
  (``HFGenerator(cfg, policy, tokenizer)``) works unchanged inside the block.
* Collective calls: every rank must call ``wrap``, ``full_state_dict``,
  ``gathered_model``, ``generation_model``, ``save_sharded``/``load_sharded``, and run the
  same number of forward and backward passes of sharded models per step (pad the number of
  micro-batches with ``all_reduce(n, "max")`` if it can differ between ranks).

Losses are per-rank contributions to a global sum (see ``rlkit.algorithms.base``):
gradients are summed over data-parallel ranks, never averaged, so the update does not
depend on the world size.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, ContextManager, Iterator

import torch
from torch import Tensor, nn


class Backend(ABC):
    Config: type
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only rank that logs and writes files."""
        return self.rank == 0

    @property
    def dp_rank(self) -> int:
        """Index of this rank's share of each step's samples."""
        return self.rank

    @property
    def dp_size(self) -> int:
        """Number of data-parallel shares (world size / tensor-parallel size)."""
        return self.world_size

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @abstractmethod
    def wrap(self, model: nn.Module, trainable: bool = True) -> nn.Module:
        """Place ``model`` for training (``trainable``) or for frozen inference (reference).

        Returns the same module object (wrapping changes its class in place), so
        ``isinstance`` checks and Hugging Face attributes keep working.
        """

    def backward(self, loss: Tensor) -> None:
        loss.backward()

    def no_sync(self, model: nn.Module) -> ContextManager[None]:
        """Context for a micro-batch that is not the last of an update: gradients may stay
        local (DDP skips its all-reduce) until the last micro-batch's backward."""
        return nullcontext()

    @abstractmethod
    def clip_grad_norm(self, model: nn.Module, max_norm: float) -> float:
        """Clip gradients to ``max_norm`` (<= 0: no clipping); the global norm before clipping."""

    def all_reduce(self, value: Any, op: str = "sum") -> Any:
        """``value`` (float or tensor) reduced with ``op`` (sum, max, min) over data-parallel ranks."""
        return value

    def all_reduce_sum(self, value: Any) -> Any:
        """Sum of ``value`` over data-parallel ranks (denominators of global means)."""
        return value

    def all_gather_object(self, obj: Any) -> list[Any]:
        """``obj`` of every data-parallel rank, in rank order (picklable objects)."""
        return [obj]

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        return obj

    @abstractmethod
    def full_state_dict(self, model: nn.Module) -> dict[str, Tensor]:
        """Unsharded CPU tensors of ``model``, valid on the main rank (collective)."""

    def gathered_model(self, model: nn.Module) -> nn.Module | None:
        """On the main rank, a plain module with ``model``'s full weights (the module itself
        when it is not wrapped); None elsewhere. Collective. Used to export checkpoints."""
        return model

    @contextmanager
    def generation_model(self, model: nn.Module) -> Iterator[nn.Module]:
        """``model`` with full weights, for generation without communication (see above)."""
        was_training = model.training
        try:
            yield model
        finally:
            model.train(was_training)

    def save_sharded(self, directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Write ``model`` (and ``optimizer``) state with torch.distributed.checkpoint: each
        rank writes its own shards; loadable with any world size and backend. Collective."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.api import CheckpointException

        with warnings.catch_warnings():  # one process without a process group is intended
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            try:
                dcp.save(_dcp_state(model, optimizer), checkpoint_id=str(directory))
            except CheckpointException as exc:
                raise _rank_failure(exc, directory) from None

    def load_sharded(self, directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Read state written by :meth:`save_sharded` (any world size) into ``model`` and
        ``optimizer``, resharding as needed. Collective. Its pickles are read with
        restricted unpicklers (:mod:`rlkit.backends.safe_dcp`); a failure on any rank is
        raised as that rank's own exception, not DCP's ``BaseException`` wrapper."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.api import CheckpointException
        from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_state_dict

        from rlkit.backends.safe_dcp import SafeFileSystemReader, SafeLoadPlanner

        state = _dcp_state(model, optimizer)
        reader = SafeFileSystemReader(directory)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            try:
                dcp.load(state, storage_reader=reader, planner=SafeLoadPlanner(reader))
            except CheckpointException as exc:
                raise _rank_failure(exc, directory) from None
        if optimizer is None:
            set_model_state_dict(model, state["model"])
        else:
            set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])

    def barrier(self) -> None:
        """Wait for every rank."""

    def close(self) -> None:
        """Release process groups and devices."""


def _rank_failure(exc: BaseException, directory: Path) -> BaseException:
    """The first rank's own exception out of DCP's ``CheckpointException`` (a
    ``BaseException`` that ``except Exception`` handlers would miss); a signal or
    interrupt that arrived during the call stays what it was."""
    _, (cause, _) = next(iter(exc.failures.items()))
    return cause


def _dcp_state(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_state_dict

    if optimizer is None:
        return {"model": get_model_state_dict(model)}
    model_state, optim_state = get_state_dict(model, optimizer)
    return {"model": model_state, "optimizer": optim_state}
