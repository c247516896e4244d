"""The same phantom volumes in the dataset layouts segflow reads: its plain folders, a Medical
Segmentation Decathlon task folder (4D image files, MSD's dataset.json) and an nnU-Net v2 raw folder
(``_0000`` channel files, nnU-Net's dataset.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from components.data.synthetic3d import CLASSES_3D, generate_volumes
from components.io import read_case_channels

CHANNELS = ("MR_0", "MR_1")


def plain_volumes(dest: Path, n_cases: int = 5, seed: int = 3) -> list[str]:
    """Two-channel 3D phantoms in segflow's layout (``images/<case>_000c``, ``masks/``, ``dataset.json``)."""
    return generate_volumes(dest, n_cases=n_cases, shape=(12, 16, 16), seed=seed, n_channels=len(CHANNELS))


def write_4d(
    path: Path,
    czyx: np.ndarray,
    spacing: tuple[float, ...],
    origin: tuple[float, ...],
    direction: tuple[float, ...],
) -> None:
    """A 4D NIfTI with the channels on its last NIfTI axis (MSD's multi-modal files).

    Shape: ``czyx`` ``(C, Z, Y, X)``; ``spacing`` in array order ``(Z, Y, X)``, origin and
    direction in ITK order (x, y, z).
    """
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(czyx, isVector=False)  # 4D scalar: ITK size (X, Y, Z, C)
    image.SetSpacing((*spacing[::-1], 1.0))
    image.SetOrigin((*origin, 0.0))
    d = np.eye(4)
    d[:3, :3] = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    image.SetDirection(tuple(float(v) for v in d.ravel()))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def msd_from_plain(plain: Path, dest: Path, test_cases: int = 1) -> Path:
    """``plain``'s cases as an MSD task folder: ``imagesTr/<case>.nii.gz`` (4D), ``labelsTr/``, an
    ``imagesTs/`` holding ``test_cases`` unlabelled copies, and MSD's ``dataset.json``."""
    from components.data.discovery import discover

    pairs = discover(plain).pairs
    training = []
    for pair in pairs:
        image, geometry = read_case_channels(list(pair.image_channels))
        write_4d(
            dest / "imagesTr" / f"{pair.case_id}.nii.gz",
            image,
            geometry.spacing,
            geometry.origin,
            geometry.direction,
        )
        (dest / "labelsTr").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pair.mask, dest / "labelsTr" / pair.mask.name)
        training.append(
            {"image": f"./imagesTr/{pair.case_id}.nii.gz", "label": f"./labelsTr/{pair.mask.name}"}
        )
    (dest / "imagesTs").mkdir(parents=True, exist_ok=True)
    for pair in pairs[:test_cases]:
        shutil.copyfile(
            dest / "imagesTr" / f"{pair.case_id}.nii.gz", dest / "imagesTs" / f"unseen_{pair.case_id}.nii.gz"
        )
    (dest / "imagesTr" / "._hidden.nii.gz").write_bytes(b"\x00")  # macOS metadata files in MSD archives
    doc = {
        "name": json.loads((plain / "dataset.json").read_text())["name"],  # the same dataset
        "tensorImageSize": "4D",
        "modality": {str(i): n for i, n in enumerate(CHANNELS)},
        "labels": {str(v): n for n, v in CLASSES_3D.items()},
        "numTraining": len(pairs),
        "numTest": test_cases,
        "training": training,
        "test": [f"./imagesTs/unseen_{p.case_id}.nii.gz" for p in pairs[:test_cases]],
    }
    (dest / "dataset.json").write_text(json.dumps(doc, indent=1))
    return dest


def nnunet_from_plain(plain: Path, dest: Path) -> Path:
    """``plain``'s cases as an nnU-Net v2 raw folder: ``imagesTr/<case>_000c.nii.gz``, ``labelsTr/``
    and the phantom's own (nnU-Net v2 form) ``dataset.json``."""
    from components.data.discovery import discover

    for pair in discover(plain).pairs:
        for c, path in enumerate(pair.image_channels):
            (dest / "imagesTr").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / "imagesTr" / f"{pair.case_id}_{c:04d}.nii.gz")
        (dest / "labelsTr").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pair.mask, dest / "labelsTr" / pair.mask.name)
    shutil.copyfile(plain / "dataset.json", dest / "dataset.json")
    return dest
