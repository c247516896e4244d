"""A NaN loss stops the fold with a clear error before the weights are spoiled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from components.data.discovery import discover
from components.data.synthetic import generate_phantoms
from components.preprocessing.pipeline import spec_from_params
from components.preprocessing.prepare import prepare_dataset
from components.training.fold_setup import setup_fold
from components.training.loop import NonFiniteLossError, train_one_epoch
from components.validation import build_metadata
from tests.unit.training.test_loop import make_params

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_nan_input_raises_before_any_step(tmp_path: Path) -> None:
    params = make_params()
    data = generate_phantoms(tmp_path / "raw", n_cases=12, size=48)
    meta = build_metadata(discover(data), [0, 1, 2, 3], root=data)
    splits = prepare_dataset(meta, data, params, spec_from_params(params), tmp_path / "prepared")
    s = setup_fold(params, 0, splits, tmp_path / "prepared")
    s.train_loader.dataset._cache[0][0][:] = np.nan  # one poisoned case
    with pytest.raises(NonFiniteLossError, match=r"fold 0: training loss is nan"):
        for _ in range(3):  # the poisoned case is in some batch of every epoch
            train_one_epoch(s)
    assert all(torch.isfinite(t).all() for t in s.model.parameters())
