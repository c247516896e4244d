"""Data-parallel training inside one fold (PyTorch DDP): one process per device, started by torchrun.

When ``torch.distributed`` is initialised (flows/runtime/ddp_fold.py does it in each torchrun process),
the training loop asks :func:`current_rank` and then:

- wraps the network in ``DistributedDataParallel`` for the training forward pass (gradients are
  averaged over the processes in ``backward``; rank 0's buffers are broadcast at each forward);
- gives each process its share of every epoch: a ``DistributedSampler`` over the training items
  (shuffled from the fold's seed and the epoch; patch mode: disjoint patch indices, each patch
  still a function of (seed, epoch, index)), ``train.batch_size / nproc`` items per process, so
  one optimiser step still sees ``train.batch_size`` items;
- validates on rank 0 only and broadcasts the row, so every process takes the same best-epoch,
  early-stopping and scheduler decisions from the same numbers;
- writes checkpoints, history and the resumable state on rank 0 only; every rank resumes from it;
- stops only where every process agrees (:class:`AgreedStop`), so no process is left waiting in a
  collective for one that has gone.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler

from components.training.interrupt import StopRequest


@dataclass(frozen=True)
class Rank:
    """This process's place in the process group."""

    rank: int
    world: int
    local: int  # index on this host (its GPU)

    @property
    def main(self) -> bool:
        """Rank 0: the process that validates, writes files and logs."""
        return self.rank == 0


def current_rank() -> Rank | None:
    """This process's rank when a process group is initialised, else None (a plain run)."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    return Rank(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def is_main(rank: Rank | None) -> bool:
    """Whether this process writes the fold's files: a plain run, or rank 0."""
    return rank is None or rank.main


def backend_for(choice: str, cuda: bool) -> str:
    """``auto``: NCCL with CUDA, gloo on the CPU; otherwise the named backend."""
    if choice == "auto":
        return "nccl" if cuda else "gloo"
    return choice


def rank_device(device: torch.device, rank: Rank | None) -> torch.device:
    """With CUDA in a process group: this host's GPU of the rank (LOCAL_RANK), made current."""
    if rank is None or device.type != "cuda":
        return device
    torch.cuda.set_device(rank.local)
    return torch.device("cuda", rank.local)


def per_rank_batch(batch_size: int, rank: Rank | None) -> int:
    """Items per process and step (params guarantee that ``batch_size`` divides evenly)."""
    return batch_size if rank is None else batch_size // rank.world


def shard_sampler(ds: Dataset[Any], rank: Rank, seed: int, shuffle: bool) -> DistributedSampler[Any]:
    """This rank's disjoint share of ``ds`` (equal for every rank, so steps line up)."""
    return DistributedSampler(
        ds, num_replicas=rank.world, rank=rank.rank, shuffle=shuffle, seed=seed, drop_last=True
    )


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel (its own GPU on CUDA; the CPU with gloo)."""
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def broadcast_from_main(value: Mapping[str, float] | None, rank: Rank | None) -> dict[str, float]:
    """Rank 0's ``value`` on every rank (as is in a plain run)."""
    if rank is None:
        assert value is not None
        return dict(value)
    box: list[Any] = [dict(value) if value is not None else None]
    dist.broadcast_object_list(box, src=0)
    return dict(box[0])


def mean_over_ranks(values: list[float], device: torch.device, rank: Rank | None) -> list[float]:
    """Each value averaged over the ranks (one all-reduce); as is in a plain run."""
    if rank is None:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return [float(v) / rank.world for v in t.tolist()]


class AgreedStop(StopRequest):
    """A stop every rank takes at the same step: a local stop request, OR-ed over the processes.

    Each poll is a collective (all ranks poll at the same points: the same number of steps each);
    on CUDA only every ``every``-th poll reaches the devices, so a stop costs at most that many steps.
    """

    def __init__(self, local: StopRequest, device: torch.device, every: int = 1) -> None:
        super().__init__()
        self.local, self.device, self.every, self._polls = local, device, max(1, every), 0

    @property
    def requested(self) -> bool:
        """Whether any rank was asked to stop (agreed at this poll)."""
        if self.signum is None:
            self._polls += 1
            if self._polls % self.every == 0:
                flag = torch.tensor([1 if self.local.requested else 0], device=self.device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                if int(flag.item()):
                    self.signum = self.local.signum or int(signal.SIGTERM)
        return self.signum is not None

    def check(self, where: str = "") -> None:
        """Raise ``TrainingInterrupted`` once the ranks agreed to stop."""
        if self.requested:
            super().check(where)


def local_stop(stop: StopRequest | None) -> StopRequest | None:
    """The process's own stop request (what rank 0 polls alone, e.g. while it validates)."""
    return stop.local if isinstance(stop, AgreedStop) else stop
