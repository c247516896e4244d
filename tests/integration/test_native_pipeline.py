"""Native resolution for real: tiny 3D phantoms (NIfTI) and a 2D set in patch mode, through the
Prefect pipeline, dvc repro and MLflow, then `segflow predict` on NIfTI keeps the input geometry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from components.params.reads import PARAMS_READS_ENV
from tests.integration.conftest import BIN, run
from tests.unit.architecture.test_dvc_contract import unlisted_reads

pytestmark = pytest.mark.slow

PATCH_COMMON: dict[str, Any] = {
    "preprocess.spatial_mode": "patch",
    "preprocess.splits.n_folds": 2,
    "preprocess.splits.test_fraction": 0.25,
    "train.epochs": 2,
    "train.batch_size": 2,
    "train.scheduler.kwargs.warmup_epochs": 0,
    "evaluate.worst_cases": 2,
}

VOLUMES: dict[str, Any] = {
    **PATCH_COMMON,
    "data.classes": {"background": 0, "tube": 1, "blob": 2},
    "data.synthetic.n_cases": 8,
    "data.synthetic.n_patients": 8,
    "preprocess.target_spacing": "median",
    "preprocess.crop_nonzero": True,
    "preprocess.intensity.method": "ct",
    "preprocess.intensity.kwargs": {},
    "train.model.name": "dynunet",
    "train.model.kwargs": {"encoder_weights": None, "base_filters": 4, "max_levels": 3},
    "train.patch_size": [8, 24, 24],
    "train.iterations_per_epoch": 3,
    "train.augment.transforms": [{"name": "RandFlip", "kwargs": {"prob": 0.5, "spatial_axis": [2]}}],
    "ensemble.tta_axes": [2],
    "ensemble.registered_model": "segflow-it3d",
    "tracking.experiment": "segflow-it3d",
}

IMAGES_2D: dict[str, Any] = {
    **PATCH_COMMON,
    "data.synthetic.n_cases": 12,
    "data.synthetic.n_patients": 12,
    "data.synthetic.image_size": 48,
    "train.model.name": "unet",
    "train.model.kwargs": {"encoder_weights": None, "base_channels": 8, "depth": 3},
    "train.patch_size": [32, 32],
    "train.iterations_per_epoch": 3,
    "ensemble.registered_model": "segflow-it2d",
    "tracking.experiment": "segflow-it2d",
}


def _prepare(root: Path, env: dict[str, str], overrides: dict[str, Any], generate: list[str]) -> None:
    from components.params.edit import apply_overrides

    apply_overrides(root / "params.yaml", overrides)
    run([str(BIN / "segflow"), "generate", "--out", "data/raw", *generate], root, env)
    run([str(BIN / "dvc"), "add", "-q", "data/raw"], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "tiny native project"], root, env)


def _run_pipeline(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The deployment's flow on the real Prefect engine; every params key read must be listed."""
    reads_log = tmp_path / "params_reads.jsonl"
    monkeypatch.setenv(PARAMS_READS_ENV, str(reads_log))
    from flows.pipeline import pipeline

    summary: dict[str, Any] = pipeline()
    monkeypatch.delenv(PARAMS_READS_ENV)
    reads = [json.loads(line) for line in reads_log.read_text().splitlines()]
    assert unlisted_reads(reads, yaml.safe_load((root / "dvc.yaml").read_text())) == []
    return summary


def test_3d_phantoms_end_to_end_and_predict_keeps_the_geometry(
    project: tuple[Path, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, env = project
    _prepare(root, env, VOLUMES, ["--dims", "3"])
    summary = _run_pipeline(root, tmp_path, monkeypatch)

    fingerprint = json.loads((root / "reports/validation/fingerprint.json").read_text())
    assert fingerprint["ndim"] == 3 and fingerprint["coarsest_axis"] == 0
    manifest = pd.read_parquet(root / "data/manifest.parquet")
    assert set(manifest["ndim"]) == {3} and manifest["spacing"].str.count(",").eq(2).all()
    info = json.loads((root / "data/prepared/prepared.json").read_text())
    assert info["preprocess"]["spatial_mode"] == "patch" and info["preprocess"]["intensity_stats"]
    # evaluated on each case's own grid (surface distances in mm: tests/unit/evaluation)
    per_case = pd.read_csv(root / "reports/cv/per_case.csv")
    assert set(per_case["class_name"]) == {"tube", "blob"} and per_case["hd95"].notna().any()
    assert (root / "reports/cv/plots/box_hd95.png").is_file()
    assert summary["registration"]["alias"] == "champion"

    out = tmp_path / "pred"
    predict = ["predict", "--model", "models/ensemble/model", "--input", "data/raw/images"]
    predict += ["--output", str(out)]
    run([str(BIN / "segflow"), *predict], root, env)
    inputs = sorted((root / "data/raw/images").glob("*.nii.gz"))
    assert len(list(out.glob("*.nii.gz"))) == len(inputs)
    for src in inputs[:3]:
        a, b = nib.load(src), nib.load(out / src.name)
        assert a.shape == b.shape
        np.testing.assert_allclose(a.affine, b.affine, atol=1e-5)
        assert set(np.unique(np.asarray(b.dataobj))) <= {0, 1, 2}


def test_2d_images_in_patch_mode_end_to_end(
    project: tuple[Path, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, env = project
    _prepare(root, env, IMAGES_2D, [])
    summary = _run_pipeline(root, tmp_path, monkeypatch)
    assert summary["registration"]["version"] == "1"
    info = json.loads((root / "data/prepared/prepared.json").read_text())
    assert info["preprocess"]["ndim"] == 2
    best = root / "models/folds/fold_0/best.pt"
    from components.training.checkpoint import load_checkpoint

    _, mspec, spec = load_checkpoint(best)
    assert getattr(spec, "patch_size", None) == (32, 32) and mspec.name == "unet"
    per_case = pd.read_csv(root / "reports/test/per_case.csv")
    assert per_case["dice"].notna().any()
