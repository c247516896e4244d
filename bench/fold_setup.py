"""A train-stage fold setup on generated data, for the training and loading benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.data.discovery import discover
from components.data.synthetic import generate_phantoms
from components.data.synthetic3d import CLASSES_3D, generate_volumes
from components.params.config import load_params
from components.params.edit import merged_params
from components.preprocessing.native import native_spec_from_params
from components.preprocessing.pipeline import spec_from_params
from components.preprocessing.prepare import prepare_dataset
from components.training.fold_setup import FoldSetup, setup_fold
from components.validation import build_metadata, compute_fingerprint

REPO = Path(__file__).resolve().parents[1]
HANDSET_PARAMS = REPO / "tests" / "data" / "handset_params.yaml"  # fixed settings (bench/project.py)

# 3D: the patch-mode setup of the project's 3D U-Net (DynUNet) on generated volumes
VOLUME_OVERRIDES: dict[str, Any] = {
    "data.classes": CLASSES_3D,
    "preprocess.spatial_mode": "patch",
    "preprocess.target_spacing": "median",
    "preprocess.intensity.method": "zscore",
    "preprocess.intensity.kwargs": {},
    "train.model.name": "dynunet",
    "train.model.kwargs": {"encoder_weights": None},
    "train.augment.transforms": [
        {"name": "RandFlip", "kwargs": {"prob": 0.5, "spatial_axis": [2]}},
        {"name": "RandGaussianNoise", "kwargs": {"prob": 0.3, "std": 0.05}},
    ],
}


def fold_setup(
    workdir: Path,
    *,
    volumes: bool,
    size: list[int],
    batch: int,
    model: str | None,
    device: str,
    overrides: dict[str, Any] | None = None,
    n_cases: int = 24,
) -> FoldSetup:
    """Fold 0 of the train stage (params.yaml + the benchmark's overrides) on generated data.

    Args:
        volumes: 3D volumes in patch mode (``size`` = the patch, [z, y, x]); else 2D phantoms
            resized to ``size`` = [h, w].
        model: Registered model name (None: the params default for 2D, DynUNet for 3D).
    """
    sets: dict[str, Any] = {
        "preprocess.splits.n_folds": 2,
        "preprocess.splits.test_fraction": 0.1,
        "train.batch_size": batch,
        "train.device": device,
    }
    if volumes:
        sets |= {**VOLUME_OVERRIDES, "train.patch_size": size, "data.dir": str(workdir / "raw")}
    else:
        sets |= {"preprocess.image_size": size}
    if model is not None:
        sets["train.model.name"] = model
    sets |= overrides or {}
    text, _ = merged_params(HANDSET_PARAMS, sets)
    workdir.mkdir(parents=True, exist_ok=True)
    params_path = workdir / "params.yaml"
    params_path.write_text(text)
    p = load_params(params_path)
    if volumes:
        shape = tuple(max(int(s * 1.5), s + 8) for s in size)
        generate_volumes(workdir / "raw", n_cases=n_cases, shape=shape, seed=0)  # type: ignore[arg-type]
        data = workdir / "raw"
    else:
        data = generate_phantoms(workdir / "raw", n_cases=n_cases, size=max(size), seed=0, n_patients=n_cases)
    meta = build_metadata(discover(data), sorted(p.data.classes.values()), root=data)
    if volumes:  # patch mode: the native spec from the dataset's fingerprint, as preprocess does
        fingerprint = compute_fingerprint(meta, data, list(p.data.classes))
        spec: Any = native_spec_from_params(p, fingerprint)
    else:
        fingerprint, spec = None, spec_from_params(p)
    splits = prepare_dataset(meta, data, p, spec, workdir / "prepared", fingerprint)
    return setup_fold(p, 0, splits, workdir / "prepared")
