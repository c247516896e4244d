"""Shared fixtures of this test folder."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread (see tests/unit/conftest.py)."""
