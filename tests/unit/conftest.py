"""Fixtures shared by unit tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models run faster on one thread than on two competing with other processes.
    (``SEGFLOW_THREADS=1`` too: the code under test applies the threads rule itself.)"""
    n, setting = torch.get_num_threads(), os.environ.get("SEGFLOW_THREADS")
    torch.set_num_threads(1)
    os.environ["SEGFLOW_THREADS"] = "1"
    yield
    torch.set_num_threads(n)
    if setting is None:
        os.environ.pop("SEGFLOW_THREADS", None)
    else:
        os.environ["SEGFLOW_THREADS"] = setting
