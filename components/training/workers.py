"""How many DataLoader worker processes a fold uses (``train.num_workers``, ``auto`` by default)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from components.core.threads import usable_cores  # affinity mask and CPU quota

if TYPE_CHECKING:
    import torch

MAX_AUTO_WORKERS = 8  # beyond this, loader processes mostly add memory (each holds the cached cases)


def resolve_num_workers(setting: int | str, device: torch.device, cores: int | None = None) -> int:
    """``train.num_workers`` as a count.

    ``auto``: on CUDA, one core stays with the training process and the others load (at most
    :data:`MAX_AUTO_WORKERS`), so augmentation overlaps the GPU's step; on the CPU, 0: the step
    itself uses every core (torch's intra-op threads), and a loader process would take cores from
    it and add inter-process copies (``bench/loader_throughput.py`` measures both). The count
    changes speed only: each item's augmentation is seeded from (seed, epoch, index), and the data
    order is drawn in the main process.
    """
    if setting != "auto":
        return int(setting)
    if device.type != "cuda":
        return 0
    n = usable_cores() if cores is None else cores
    return max(0, min(n - 1, MAX_AUTO_WORKERS))
