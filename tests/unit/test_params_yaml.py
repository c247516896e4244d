"""The shipped params.yaml plans on a dataset it has never seen, and everything the plan names builds
and works together, wired exactly as the train stage wires them (``setup_fold``), for one epoch."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from components.core import layout
from components.data.synthetic import generate_phantoms
from components.params.edit import apply_overrides
from components.params.user import PLANNABLE, get_key
from components.planning.stage import plan_dataset, write_plan
from components.preprocessing.native import native_spec_from_params
from components.preprocessing.prepare import prepare_dataset
from components.preprocessing.specs import read_fingerprint
from components.training.fold_setup import setup_fold
from components.training.loop import train_one_epoch, validate
from components.validation.manifest import read_manifest
from components.validation.stage import validate_dataset

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_shipped_params_plan_and_train_one_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    generate_phantoms(tmp_path / "raw", n_cases=12, size=48, seed=0, n_patients=12)
    shutil.copy(REPO / "params.yaml", "params.yaml")
    overrides = {"data.dir": "raw", "plan.time_budget": "3m", "preprocess.splits.n_folds": 2}
    apply_overrides(Path("params.yaml"), overrides)
    validate_dataset(Path("raw"), "auto", "auto", None, None)

    fp, manifest = read_fingerprint(layout.FINGERPRINT), read_manifest(layout.MANIFEST)
    plan, p, texts = plan_dataset(Path("params.yaml"), fp, manifest, tmp_path / "cache", tmp_path)
    write_plan(plan, texts)
    assert plan.configuration == "2d" and p.preprocess.spatial_mode == "patch"
    assert p.train.model.name == "dynunet" and p.train.optimizer.name == "adamw"  # a 3-minute budget: short
    assert len(p.train.patch_size or []) == 2 and p.train.epochs >= 1
    resolved = yaml.safe_load(layout.RESOLVED_PARAMS.read_text())
    assert [k for k in PLANNABLE if get_key(resolved, k) == "auto"] == []  # every planned value resolved

    splits = prepare_dataset(manifest, Path("raw"), p, native_spec_from_params(p, fp), layout.PREPARED, fp)
    s = setup_fold(p, 0, splits, layout.PREPARED)
    x, y = next(iter(s.train_loader))
    assert x.shape[1:] == (p.data.channels, *p.train.patch_size) and y.shape[1:] == tuple(p.train.patch_size)
    before = [t.detach().clone() for t in s.model.parameters()]

    loss, seen, _ = train_one_epoch(s)
    scores = validate(s)
    s.scheduler.step_epoch(scores)

    assert np.isfinite(loss) and seen == p.train.batch_size * (p.train.iterations_per_epoch or 0)
    assert any(not torch.equal(a, b) for a, b in zip(before, s.model.parameters(), strict=True))
    assert np.isfinite(scores["val_loss"]) and 0.0 <= scores["val_dice"] <= 1.0
    assert set(scores) == {"val_loss", "val_dice", *(f"val_dice_{c}" for c in p.data.class_names[1:])}
