"""Image and mask readers/writers: 2D PNG/JPG/TIFF (gray/RGB, 8/16 bit) and 3D NIfTI."""

from components.io.images import (
    IMAGE_SUFFIXES,
    MASK_SUFFIXES,
    ImageReadError,
    file_stem,
    is_nifti,
    read_image,
    read_mask,
    read_with_spacing,
    write_mask,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "MASK_SUFFIXES",
    "ImageReadError",
    "file_stem",
    "is_nifti",
    "read_image",
    "read_mask",
    "read_with_spacing",
    "write_mask",
]
