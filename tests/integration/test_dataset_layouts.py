"""The same dataset in an MSD task folder (4D files, MSD's dataset.json), an nnU-Net v2 raw folder
(``_0000`` channel files) and segflow's plain layout gives the same fingerprint, the same plan and the
same prepared data: validate, plan and preprocess, as the stages run them, on each copy (with the
shipped params.yaml: every plannable key auto)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.core import layout
from components.params.edit import apply_overrides
from components.planning.stage import plan_dataset, write_plan
from components.preprocessing.native import native_spec_from_params
from components.preprocessing.prepare import prepare_dataset
from components.validation import read_manifest
from components.validation.stage import validate_dataset
from tests.data.raw_layouts import msd_from_plain, nnunet_from_plain, plain_volumes

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class _Run:
    """What validate and preprocess wrote for one copy of the dataset."""

    fingerprint: dict[str, Any]
    plan: str  # plans/plan.json
    arrays: dict[str, bytes]  # every file under data/prepared/ but prepared.json, by relative path
    info: dict[str, Any]  # prepared.json
    report: str  # reports/validation/dataset.md


def _validate_plan_and_prepare(data: Path, project: Path, cache: Path) -> _Run:
    """Run validate (classes and channels auto), plan (measurements shared through ``cache``, as on
    one machine) and preprocess in ``project``; what they wrote."""
    project.mkdir()
    cwd = Path.cwd()
    os.chdir(project)  # the layout's paths are relative to the project root
    try:
        shutil.copy(REPO / "params.yaml", "params.yaml")
        overrides = {"data.dir": str(data), "plan.time_budget": "10m", "preprocess.splits.n_folds": 2}
        apply_overrides(Path("params.yaml"), overrides)
        validate_dataset(data, "auto", "auto")
        fingerprint = json.loads(layout.FINGERPRINT.read_text())
        manifest = read_manifest(layout.MANIFEST)
        plan, params, text = plan_dataset(Path("params.yaml"), fingerprint, manifest, cache, Path())
        write_plan(plan, text)
        plan_json = layout.PLAN_JSON.read_text()
        spec = native_spec_from_params(params, fingerprint)
        prepare_dataset(manifest, data, params, spec, layout.PREPARED, fingerprint)
        arrays = {
            str(p.relative_to(layout.PREPARED)): p.read_bytes()
            for p in sorted(layout.PREPARED.rglob("*"))
            if p.is_file() and p.name != layout.PREPARED_INFO.name
        }
        info = json.loads(layout.PREPARED_INFO.read_text())
        report = layout.DATASET_REPORT.read_text()
    finally:
        os.chdir(cwd)
    return _Run(fingerprint, plan_json, arrays, info, report)


@pytest.mark.slow
def test_msd_nnunet_and_plain_copies_give_the_same_fingerprint_plan_and_prepared_data(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain_volumes(plain, n_cases=5)
    copies = {
        "plain": plain,
        "msd": msd_from_plain(plain, tmp_path / "Task09_Phantom"),
        "nnunet": nnunet_from_plain(plain, tmp_path / "Dataset009_Phantom"),
    }
    cache = tmp_path / "plan-cache"
    runs = {
        name: _validate_plan_and_prepare(data, tmp_path / f"project_{name}", cache)
        for name, data in copies.items()
    }

    fp = runs["plain"].fingerprint
    assert fp["classes"] == {"background": 0, "tube": 1, "blob": 2}
    assert fp["class_source"] == "dataset.json labels"
    assert fp["channel_names"] == ["MR_0", "MR_1"] and fp["channels"] == 2
    for name in ("msd", "nnunet"):
        assert runs[name].fingerprint == fp, name
        assert runs[name].plan == runs["plain"].plan, name  # byte for byte
        assert runs[name].info == runs["plain"].info, name  # spec, classes, splits, fingerprint
        assert runs[name].arrays == runs["plain"].arrays, name  # every array and splits.json, bytewise
    assert len(runs["plain"].arrays) > 5  # the cases' arrays, not only splits.json
    assert "MSD / nnU-Net layout: `imagesTr/` + `labelsTr/`" in runs["msd"].report
    assert "imagesTs: 1 image file(s) without labels are not cases of this run" in runs["msd"].report
    assert "plain layout: `images/` + `masks/`" in runs["plain"].report
