"""Read one case for native-resolution work: channels-first image, labels and geometry.

2D files come back as ``(C, H, W)`` with unit spacing; volumes (one file per channel, or one
4D file) as ``(C, Z, Y, X)`` with their spacing, origin and direction.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from components.io import read_image
from components.io.volumes import Geometry, read_case_image, split_image_paths
from components.preprocessing.native import NativeSpec, channels_first


def image_files(data_dir: Path, image_field: str) -> list[Path]:
    """The file(s) a manifest ``image_path`` names (several for a multi-channel volume)."""
    return [Path(data_dir) / p for p in split_image_paths(image_field)]


def read_native_image(files: Sequence[Path], spec: NativeSpec) -> tuple[np.ndarray, Geometry]:
    """Raw image ``(C, *S)`` and its geometry (2D images: unit spacing at the origin)."""
    if spec.ndim == 3:
        image, geometry = read_case_image(list(files))
        return channels_first(image, 3, spec.channels), geometry
    image = read_image(files[0])
    return channels_first(image, 2, spec.channels), Geometry.identity(2)
