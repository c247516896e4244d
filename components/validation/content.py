"""What near-duplicate search keeps of each case: thumbnails of its content, not of its frame.

The image thumbnail is the content box's (``content_box.find_content_box``: the frame a copy may
sit in cut off) channel mean, area-resized to a square/cube (:data:`THUMB_SIDE_2D`,
:data:`THUMB_SIDE_3D`), z-scored; a case with a frame keeps the thumbnail of its whole image too
(:attr:`ImageThumbnail.frame`), compared with cases that have none: noise over a padded copy hides
its frame, and that copy must still meet its original. The mask thumbnail is, per foreground label,
the share of each thumbnail cell the label covers (area-averaged over the same box), so thin
structures (vessels) survive the reduction and a cropped or rescaled copy's mask lands on the same
shares.

Limits: a copy resized below the thumbnail side (64 px, 16 voxels) has lost the detail the score
compares; a frame under added noise is not found, so a copy turned *inside* such a frame is missed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from components.validation.content_box import Box, cut, find_content_box, gray_of, resize

THUMB_SIDE_2D: int = 64
THUMB_SIDE_3D: int = 16
MASK_LEVELS: int = 255  # mask fractions are stored as uint8 steps of 1/255


@dataclass(frozen=True)
class MaskThumbnail:
    """Per foreground label, the share of each thumbnail cell that it covers.

    Attributes:
        labels: The foreground labels (non-zero mask values) present, ascending.
        fractions: uint8 shares in steps of 1/:data:`MASK_LEVELS`, one map per label.

    Shape:
        fractions: ``(len(labels), *S)`` with ``S`` the image thumbnail's shape.
    """

    labels: tuple[int, ...]
    fractions: np.ndarray

    def dense(self, labels: tuple[int, ...]) -> np.ndarray:
        """float32 maps for ``labels`` in that order (zeros for a label this mask lacks).

        Shape: ``(len(labels), *S)``.
        """
        out = np.zeros((len(labels), *self.fractions.shape[1:]), np.float32)
        for k, v in enumerate(labels):
            if v in self.labels:
                out[k] = self.fractions[self.labels.index(v)] / MASK_LEVELS
        return out


def _spatial_shape(ndim: int) -> tuple[int, ...]:
    return (THUMB_SIDE_2D,) * 2 if ndim == 2 else (THUMB_SIDE_3D,) * 3


@dataclass(frozen=True)
class ImageThumbnail:
    """What near-duplicate search keeps of one image.

    Attributes:
        content: z-scored thumbnail of the content box (float32; all zeros for a constant image).
        box: The content box; pass it to :func:`mask_thumbnail` for the case's mask.
        frame: z-scored thumbnail of the whole image when the box is smaller, else None: compared
            with images that have no frame (a noisy border that one copy's resampling made flat
            would otherwise cut one of two copies and not the other).

    Shape:
        content, frame: ``(THUMB_SIDE_2D,) * 2`` or ``(THUMB_SIDE_3D,) * 3``.
    """

    content: np.ndarray
    box: Box
    frame: np.ndarray | None

    @property
    def framed(self) -> bool:
        """Whether flat borders were cut off (the box is smaller than the image)."""
        return self.frame is not None


def _zscored(gray: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    x = resize(np.ascontiguousarray(gray), shape).astype(np.float64)
    sd = float(x.std())
    if not sd > 1e-6 * float(np.abs(x).max()):
        return np.zeros(x.shape, np.float32)
    return ((x - x.mean()) / sd).astype(np.float32)


def image_thumbnail(image: np.ndarray) -> ImageThumbnail:
    """The thumbnails of an image's content (and of its whole frame when it has one).

    Args:
        image: Channels-first image ``(C, H, W)`` or volume ``(C, Z, Y, X)``, any dtype.

    Shape:
        ``(C, H, W)`` -> ``(THUMB_SIDE_2D,) * 2``; ``(C, Z, Y, X)`` -> ``(THUMB_SIDE_3D,) * 3``.

    Raises:
        ValueError: Not 3 or 4 dimensions, or an empty axis.
    """
    arr = np.asarray(image)
    if arr.ndim not in (3, 4) or 0 in arr.shape:
        raise ValueError(f"expected a (C, H, W) image or (C, Z, Y, X) volume, got shape {arr.shape}")
    gray = gray_of(arr)
    box, shape = find_content_box(gray), _spatial_shape(gray.ndim)
    whole = all(b == (0.0, 1.0) for b in box)
    frame = None if whole else _zscored(gray, shape)
    return ImageThumbnail(_zscored(cut(gray, box), shape), box, frame)


def mask_thumbnail(mask: np.ndarray, box: Box | None = None) -> MaskThumbnail:
    """Per foreground label, the share of each thumbnail cell it covers, over the content box.

    Args:
        mask: ``(H, W)`` or ``(Z, Y, X)`` class indices; a leading channel axis of 1 is dropped (so a
            3-dimensional mask whose first axis is 1 is taken as ``(1, H, W)``). Non-finite values
            count as 0.
        box: The image's content box (:func:`image_thumbnail`); None = the whole mask.

    Shape:
        ``(H, W)`` -> fractions ``(L, THUMB_SIDE_2D, THUMB_SIDE_2D)``; ``(Z, Y, X)`` -> ``(L, 16, 16, 16)``.

    Raises:
        ValueError: Not 2 or 3 spatial dimensions, or an empty axis.
    """
    arr = np.asarray(mask)
    arr = arr[0] if arr.ndim in (3, 4) and arr.shape[0] == 1 else arr
    if arr.ndim not in (2, 3) or 0 in arr.shape:
        raise ValueError(f"expected a (H, W) or (Z, Y, X) mask, got shape {np.asarray(mask).shape}")
    if arr.dtype.kind == "f":
        arr = np.rint(np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0))
    arr = np.ascontiguousarray(cut(arr, box or ((0.0, 1.0),) * arr.ndim))
    arr = arr.view(np.uint8) if arr.dtype == np.bool_ else arr
    if arr.dtype == np.uint8:  # the usual label file: cv2's histogram and comparison are fast
        hist = cv2.calcHist([arr.reshape(arr.shape[0], -1)], [0], None, [256], [0, 256]).ravel()
        labels = tuple(int(v) for v in np.flatnonzero(hist[1:]) + 1)
    else:
        labels = tuple(int(v) for v in np.unique(arr) if v != 0)
    shape = _spatial_shape(arr.ndim)
    if not labels:
        return MaskThumbnail((), np.zeros((0, *shape), np.uint8))
    # 255 where the label is, 0 elsewhere: uint8 area averages are then shares in steps of 1/255
    planes = np.stack(
        [
            cv2.compare(arr.reshape(-1, arr.shape[-1]), v, cv2.CMP_EQ).reshape(arr.shape)  # type: ignore[call-overload]  # a scalar operand (the stubs know arrays only)
            if arr.dtype == np.uint8
            else (arr == v).view(np.uint8) * np.uint8(MASK_LEVELS)
            for v in labels
        ]
    )
    if arr.ndim == 2:
        return MaskThumbnail(labels, np.stack([resize(p, shape) for p in planes]))
    return MaskThumbnail(labels, resize(planes, shape))


def mask_thumbnails(
    mask: np.ndarray, image: ImageThumbnail | None
) -> tuple[MaskThumbnail, MaskThumbnail | None]:
    """A case's mask thumbnail on its image's content box, and on the whole frame when the image
    has one (:attr:`ImageThumbnail.frame`); the whole mask when the image is unknown.

    Shape: see :func:`mask_thumbnail`.
    """
    if image is None:
        return mask_thumbnail(mask), None
    return mask_thumbnail(mask, image.box), (mask_thumbnail(mask) if image.framed else None)
