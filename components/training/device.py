"""Device selection and mixed precision."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch


def resolve_device(choice: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU. ``cuda`` without a GPU is an error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(choice)


@contextlib.contextmanager
def autocast(device: torch.device, bf16: bool) -> Iterator[None]:
    """bf16 autocast (convolutions and matrix products in bfloat16, weights and reductions in
    float32) on CUDA or the CPU when enabled; full precision otherwise. On a CPU with bf16 matrix
    units (AVX-512 BF16, AMX) it is several times faster; without them slower: the plan measures it
    (``train.bf16: auto``)."""
    if bf16 and device.type in ("cuda", "cpu"):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def memory_format(channels_last: bool, spatial_dims: int) -> torch.memory_format:
    """channels-last (2D) / channels-last-3d (volumes) when asked for, else the default layout."""
    if not channels_last:
        return torch.contiguous_format
    return torch.channels_last if spatial_dims == 2 else torch.channels_last_3d


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator for data loading."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g
