"""The shipped params.yaml is valid and every component it names builds and works together,
wired exactly as the train stage wires them (``setup_fold``), for one epoch on tiny phantoms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from components.data.discovery import discover
from components.data.synthetic import generate_phantoms
from components.params.config import load_params
from components.preprocessing.pipeline import spec_from_params
from components.preprocessing.prepare import prepare_dataset
from components.training.fold_setup import setup_fold
from components.training.loop import train_one_epoch, validate
from components.validation import build_metadata

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_component_named_in_params_yaml_builds_and_trains_one_epoch(tmp_path: Path) -> None:
    p = load_params(PARAMS)
    data = generate_phantoms(tmp_path / "raw", n_cases=12, size=48, seed=0, n_patients=12)
    meta = build_metadata(discover(data), sorted(p.data.classes.values()), root=data)
    splits = prepare_dataset(meta, data, p, spec_from_params(p), tmp_path / "prepared")

    s = setup_fold(p, 0, splits, tmp_path / "prepared")
    x, y = next(iter(s.train_loader))
    h, w = p.preprocess.image_size
    assert x.shape[1:] == (p.data.channels, h, w) and y.shape[1:] == (h, w)
    before = [t.detach().clone() for t in s.model.parameters()]

    loss, seen, _ = train_one_epoch(s)
    scores = validate(s)
    s.scheduler.step_epoch(scores)

    assert np.isfinite(loss) and 0 < seen <= len(splits.train_cases(0))
    assert any(not torch.equal(a, b) for a, b in zip(before, s.model.parameters(), strict=True))
    assert np.isfinite(scores["val_loss"]) and 0.0 <= scores["val_dice"] <= 1.0
    assert set(scores) == {"val_loss", "val_dice", *(f"val_dice_{c}" for c in p.data.class_names[1:])}
