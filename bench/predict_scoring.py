"""``segflow predict`` against the pipeline's own scoring of the same model on the same images.

Part of ``bench/infer_throughput.py`` (``--only predict``). A 2D DynUNet fold ensemble in patch
mode (RGB, patch 128², ``--folds`` folds x mirroring over both axes = 4 variants, overlap 0.5, 4
windows per batch: the params.yaml defaults), random weights, packaged as the ensemble stage
packages it; ``--predict-images`` RGB 8-bit PNGs of ``--predict-size``² (default 600²).

- scoring: what the ensemble stage does per test case: ``predictor_from_checkpoints`` with the
  ensemble's inference options (the fold checkpoints loaded once per round), then per image
  ``read_image``, ``predict_proba``, the labels (metrics are not part of it);
- predict: ``predict_folder`` as ``segflow predict --model <folder> --input ... --output ...`` runs
  it (the packaged model loaded once per round through MLflow, per image the pyfunc ``predict``
  with the image's dtype, the mask and the overlay written).

``ratio`` = predict images/s ÷ scoring images/s (goal >= 0.9); the masks must agree.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.paired import agreement, alternate, package, summary

PATCH = (128, 128)
CLASSES = ["background", "organ_a", "organ_b", "lesion"]


def _images(folder: Path, n: int, size: int) -> list[Path]:
    """Smooth random RGB 8-bit images (structure at several scales, like a photo or a slide)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        coarse = rng.random((size // 32 + 1, size // 32 + 1, 3))
        img = np.kron(coarse, np.ones((32, 32, 1)))[:size, :size] * 200 + rng.random((size, size, 3)) * 55
        paths.append(folder / f"case_{i:03d}.png")
        Image.fromarray(img.astype(np.uint8)).save(paths[-1])
    return paths


def run_predict(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Time both sides in alternating rounds; their rates, ratio and settings."""
    from components.ensembling.predict_folder import predict_folder
    from components.inference.options import InferenceOptions
    from components.inference.predictor import predictor_from_checkpoints
    from components.io import read_image, read_mask
    from components.preprocessing.native import NativeSpec
    from components.training.checkpoint import ModelSpec

    pspec = NativeSpec(ndim=2, channels=3, intensity_method="minmax", patch_size=PATCH)
    mspec = ModelSpec("dynunet", 3, len(CLASSES), {"patch_size": list(PATCH), "spacing": [1.0, 1.0]})
    options = InferenceOptions(tta=True, overlap=0.5, window_batch=4)
    model_dir = package(root / "predict", [(mspec, pspec)] * args.folds, CLASSES, options)
    checkpoints = sorted((root / "predict").glob("fold_*.pt"))
    paths = _images(root / "images", args.predict_images, args.predict_size)

    def scoring() -> list[np.ndarray]:
        predictor = predictor_from_checkpoints(checkpoints, options=options)
        return [options.labels(predictor.predict_proba(read_image(p))) for p in paths]

    def predict() -> list[np.ndarray]:
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            predict_folder(str(model_dir), root / "images", Path(tmp), warn=print)
            return [read_mask(Path(tmp) / p.name) for p in paths]

    wall, cpu, outputs = alternate({"bare": scoring, "segflow": predict}, len(paths), args.rounds)
    s = summary(wall, cpu)
    renamed = {"bare": "scoring", "segflow": "predict"}
    return {
        "ratio": s["ratio"],
        "ratio_is": "segflow predict images/s / the ensemble stage's scoring images/s (same model, images)",
        "images_per_s": {renamed[k]: v for k, v in s["median"].items()},
        "rounds_images_per_s": {renamed[k]: v for k, v in s["rounds"].items()},
        "ratio_per_round_median": s["ratio_per_round_median"],
        "ratio_cpu_time": s["ratio_cpu_time"],
        "agreement": agreement(np.stack(outputs["segflow"]), np.stack(outputs["bare"]), "predict"),
        "settings": {
            "model": "dynunet (2D, 3 channels, 4 classes), random weights",
            "images": f"{len(paths)} RGB 8-bit PNGs of {args.predict_size}x{args.predict_size}",
            "patch_size": list(PATCH),
            "folds": args.folds,
            "tta": "mirroring over both axes (4 variants)",
            "inference": options.to_json(),
            "rounds": args.rounds,
            "scoring": "predictor_from_checkpoints + read_image + predict_proba + labels, per round",
            "predict": "predict_folder (model load, pyfunc predict per image, mask + overlay written)",
        },
    }
