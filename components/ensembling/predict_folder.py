"""Segment a folder of new images with a packaged model (``segflow predict``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from components.ensembling.input_guard import image_warnings, training_data_of
from components.ensembling.predict_volumes import predict_volumes
from components.ensembling.rois import outside_cleared, roi_files, warn_without_rois
from components.inference.input_check import check_inputs
from components.io import IMAGE_SUFFIXES, file_stem, is_volume, read_image, write_mask
from components.viz.overlay import overlay_uint8


def _to_stderr(message: str) -> None:
    print(f"segflow predict: {message}", file=sys.stderr)


def list_images(folder: Path) -> list[Path]:
    """2D image files in ``folder`` (sorted; hidden files skipped)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"--input {folder}: not a folder")
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.name.lower().endswith(IMAGE_SUFFIXES)
        and not is_volume(p)
    )
    if not files:
        raise FileNotFoundError(f"--input {folder}: no PNG/JPG/TIFF images found")
    return files


def predict_folder(
    model_uri: str,
    input_dir: Path,
    output_dir: Path,
    overlays: bool = True,
    rois_dir: Path | None = None,
    no_rois: bool = False,
    warn: Callable[[str], None] = _to_stderr,
    strict: bool = False,
) -> int:
    """Write ``<stem>.png`` label masks (and ``overlays/<stem>.png``) for every image in ``input_dir``;
    a folder of volumes gets label volumes with the inputs' geometry instead (no overlays).

    Args:
        model_uri: ``models:/<name>@<alias>``, ``models:/<name>/<version>``, ``runs:/...`` or a
            local model folder.
        input_dir: Images of any size (gray or RGB).
        output_dir: Created if missing.
        overlays: Also write colour overlays of the prediction on the image.
        rois_dir: Regions of interest (same stems as the inputs): predictions outside are background.
        no_rois: Label every pixel on purpose: no warning when the model was trained inside ROIs.
        warn: Where that warning goes (standard error by default), and the inputs far outside the
            data the model was trained on (components/inference/input_check.py).
        strict: Refuse every input far outside the training data, before writing anything.

    Returns:
        Number of images (or volumes) segmented.

    Raises:
        InputOutsideTrainingError: ``strict`` and some input lies far outside the training data.
    """
    import mlflow.pyfunc

    if input_dir.is_dir() and any(is_volume(p) for p in input_dir.iterdir()):
        return predict_volumes(model_uri, input_dir, output_dir, rois_dir, no_rois, warn, strict)
    files = list_images(input_dir)
    rois = roi_files(rois_dir, [file_stem(p) for p in files])
    model = mlflow.pyfunc.load_model(model_uri)
    warn_without_rois(model, rois_dir, no_rois, warn)
    ranges = training_data_of(model)
    if ranges:  # every input checked before anything is written
        found = [w for p in files for w in image_warnings(p.name, ranges, read_image(p), None)]
        for w in found:
            warn(f"far outside the training data: {w}")
        check_inputs(found, strict)
    output_dir.mkdir(parents=True, exist_ok=True)
    for path in tqdm(files, desc="predict", unit="image"):
        image = read_image(path)
        x = (image[..., None] if image.ndim == 2 else image)[None].astype(np.float32)
        labels = np.asarray(model.predict(x, params={"input_dtype": str(image.dtype)}))[0].astype(np.uint8)
        labels = outside_cleared(labels, rois.get(file_stem(path)))
        write_mask(output_dir / f"{file_stem(path)}.png", labels)
        if overlays:
            (output_dir / "overlays").mkdir(exist_ok=True)
            Image.fromarray(overlay_uint8(image, labels)).save(
                output_dir / "overlays" / f"{file_stem(path)}.png"
            )
    return len(files)
