"""Segment a folder of volumes (NIfTI, NRRD, MHA) with a packaged 3D model (``segflow predict``).

Each prediction is written in the input's format with the input's grid: same shape, spacing,
origin and direction (hence the same NIfTI affine); a NIfTI prediction keeps the input's header
(qform/sform codes, units), not only its affine. Multi-channel cases follow the nnU-Net naming
(``<case>_0000.nii.gz``, ``<case>_0001.nii.gz``, ...) and come out as ``<case>.nii.gz``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from components.data.discovery import CHANNEL_STEM
from components.ensembling.input_guard import image_warnings, training_data_of
from components.ensembling.rois import outside_cleared, roi_files, warn_without_rois
from components.inference.input_check import check_inputs
from components.io import file_stem
from components.io.volumes import is_volume, read_case_image, write_volume


def volume_cases(folder: Path) -> dict[str, list[Path]]:
    """Case id -> its channel files in order (a file without a ``_dddd`` suffix is a case alone)."""
    groups: dict[str, dict[int, Path]] = defaultdict(dict)
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith(".") or not is_volume(p):
            continue
        match = CHANNEL_STEM.match(file_stem(p))
        case, channel = (match["case"], int(match["channel"])) if match else (file_stem(p), 0)
        if channel in groups[case]:
            raise FileNotFoundError(f"--input {folder}: two files for case {case!r} channel {channel}")
        groups[case][channel] = p
    return {c: [by[k] for k in sorted(by)] for c, by in sorted(groups.items())}


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix


def predict_volumes(
    model_uri: str,
    input_dir: Path,
    output_dir: Path,
    rois_dir: Path | None = None,
    no_rois: bool = False,
    warn: Callable[[str], None] | None = None,
    strict: bool = False,
) -> int:
    """Write one label volume per case of ``input_dir`` into ``output_dir``; return the case count.
    With ``rois_dir`` (same case names), predictions outside each case's ROI are background; a
    model trained inside ROIs called without it (and without ``no_rois``) calls ``warn``.

    Raises:
        FileNotFoundError: No volumes in the folder.
        VolumeReadError: A volume cannot be read, or a case's channels are not on one grid.
    """
    import mlflow.pyfunc

    cases = volume_cases(input_dir)
    if not cases:
        raise FileNotFoundError(f"--input {input_dir}: no NIfTI/NRRD/MHA volumes found")
    rois = roi_files(rois_dir, list(cases))
    model = mlflow.pyfunc.load_model(model_uri)
    if warn is not None:
        warn_without_rois(model, rois_dir, no_rois, warn)
    ranges = training_data_of(model)
    if ranges:  # every case checked before anything is written (strict: refused at once)
        found = []
        for case, files in cases.items():
            image, geometry = read_case_image(files)
            found += image_warnings(case, ranges, image, geometry.spacing)
        if warn is not None:
            for w in found:
                warn(f"far outside the training data: {w}")
        check_inputs(found, strict)
    output_dir.mkdir(parents=True, exist_ok=True)
    for case, files in tqdm(cases.items(), desc="predict", unit="volume"):
        image, geometry = read_case_image(files)
        params = {"spacing": ",".join(str(s) for s in geometry.spacing), "input_dtype": str(image.dtype)}
        labels = outside_cleared(
            np.asarray(model.predict(image.astype(np.float32), params=params))[0], rois.get(case)
        )
        out = output_dir / f"{case}{_suffix(files[0])}"  # a NIfTI input's header is kept whole
        write_volume(out, labels.astype(np.uint8), geometry, reference=files[0])
    return len(cases)
