"""Sliding-window prediction of whole 2D images or 3D volumes, with mirroring TTA and ensembling.

The windows are cut, weighted and stitched by MONAI's ``sliding_window_inference``: windows run
on ``device`` (e.g. the GPU), the stitched ``(K, *S)`` output and its weight map stay on the
CPU, so a large CT volume never has to fit on the accelerator. Windows are blended with a
Gaussian importance map (``mode="gaussian"``, ``sigma_scale`` of the patch size), so there are no
seams where windows meet; images smaller than a window are zero-padded by MONAI and the padding
is cropped off again.

Mirroring TTA is applied per window, as nnU-Net does: each batch of windows is predicted as is
and flipped along every non-empty subset of ``mirror_axes``, each prediction is flipped back, and
the softmax outputs are averaged. The result is the mean softmax over models and mirror variants.
Doing this per window (rather than flipping the whole volume) batches the variants and never
holds a flipped copy of the volume or of its output.

A 2D network can predict a volume slice by slice: wrap it in :class:`SliceWise` and use a patch
of depth 1, ``WindowSettings(patch_size=(1, ph, pw), mirror_axes=(1, 2))``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

BLEND_MODES: tuple[str, ...] = ("gaussian", "constant")


@dataclass(frozen=True)
class WindowSettings:
    """How to tile an image into windows.

    Attributes:
        patch_size: Window size per spatial axis (2 ints for 2D, 3 for 3D).
        overlap: Fraction of a window shared with its neighbour, in [0, 1).
        batch_size: Windows per forward pass.
        mirror_axes: Spatial axes (0-based in S) to mirror for TTA; () for none.
        mode: Window blending, ``"gaussian"`` or ``"constant"`` (plain average).
        sigma_scale: Gaussian sigma as a fraction of the patch size.
    """

    patch_size: tuple[int, ...]
    overlap: float = 0.5
    batch_size: int = 4
    mirror_axes: tuple[int, ...] = ()
    mode: str = "gaussian"
    sigma_scale: float = 0.125

    def __post_init__(self) -> None:
        if len(self.patch_size) not in (2, 3) or min(self.patch_size) < 1:
            raise ValueError(f"patch_size must be 2 or 3 positive ints, got {self.patch_size}")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        n = len(self.patch_size)
        if len(set(self.mirror_axes)) != len(self.mirror_axes) or any(
            not 0 <= a < n for a in self.mirror_axes
        ):
            raise ValueError(f"mirror_axes must be distinct spatial axes in [0, {n}), got {self.mirror_axes}")
        if self.mode not in BLEND_MODES:
            raise ValueError(f"mode must be one of {list(BLEND_MODES)}, got {self.mode!r}")
        if self.sigma_scale <= 0:
            raise ValueError(f"sigma_scale must be positive, got {self.sigma_scale}")


def mirror_variants(mirror_axes: Sequence[int]) -> list[tuple[int, ...]]:
    """The identity ``()`` followed by every non-empty subset of ``mirror_axes`` (2**n in all)."""
    axes = tuple(mirror_axes)
    return [c for r in range(len(axes) + 1) for c in itertools.combinations(axes, r)]


def count_windows(shape: Sequence[int], settings: WindowSettings) -> int:
    """Number of windows MONAI cuts from an image of spatial ``shape`` (per model and variant).

    Forward passes per image: ``count_windows * len(mirror_variants(mirror_axes)) * len(models)``.
    """
    if len(shape) != len(settings.patch_size):
        raise ValueError(f"shape {tuple(shape)} and patch_size {settings.patch_size} differ in length")
    from monai.data.utils import dense_patch_slices
    from monai.inferers.utils import _get_scan_interval  # the same window grid MONAI uses below

    size = tuple(max(int(s), p) for s, p in zip(shape, settings.patch_size, strict=True))
    n = len(size)
    interval = _get_scan_interval(size, settings.patch_size, n, (settings.overlap,) * n)
    return len(dense_patch_slices(size, settings.patch_size, interval))


class SliceWise(nn.Module):
    """Run a 2D network on every slice of 3D windows.

    The depth axis is folded into the batch, so windows of any depth work; with a patch of depth 1
    a volume is predicted slice by slice.

    Args:
        model: 2D network, ``(N, C, H, W) -> (N, K, H, W)``.

    Shape:
        ``(N, C, D, H, W) -> (N, K, D, H, W)``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict each of the D slices independently."""
        n, c, d, h, w = x.shape
        out = self.model(x.transpose(1, 2).reshape(n * d, c, h, w))
        return out.reshape(n, d, -1, *out.shape[-2:]).transpose(1, 2)


class _MirroredSoftmax:
    """Window predictor: mean softmax over the models and the mirror variants of each window.

    Every model sees each window batch in turn, so one stitched output serves the whole
    ensemble: memory holds one (K, *S) map (plus MONAI's count map), whatever the fold count.

    Shape:
        windows ``(N, C, *P)`` -> ``(N, K, *P)`` float32.
    """

    def __init__(self, models: Sequence[nn.Module], mirror_axes: Sequence[int], bf16: bool) -> None:
        self.models = list(models)
        self.flips = [[a + 2 for a in v] for v in mirror_variants(mirror_axes)]
        self.bf16 = bf16

    def _softmax(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16):
            logits = model(x)
        return logits.float().softmax(1)

    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        probs: torch.Tensor | None = None
        for model in self.models:
            for dims in self.flips:
                p = (
                    self._softmax(model, windows.flip(dims)).flip(dims)
                    if dims
                    else self._softmax(model, windows)
                )
                probs = p if probs is None else probs.add_(p)
        assert probs is not None  # at least one model and the identity variant
        n = len(self.models) * len(self.flips)
        return probs / n if n > 1 else probs


@torch.no_grad()
def sliding_window_probabilities(
    models: Sequence[nn.Module],
    image: np.ndarray | torch.Tensor,
    settings: WindowSettings,
    device: torch.device | str = "cpu",
    bf16: bool = False,
) -> torch.Tensor:
    """Mean softmax over ``models`` and mirror variants, predicted window by window.

    Args:
        models: One network or a fold ensemble; each is put in eval mode and moved to ``device``.
        image: Normalised channels-first image (stays where it is; windows are copied to ``device``).
        settings: Window size, overlap, batch, blending and mirror axes.
        device: Where the networks run.
        bf16: bfloat16 autocast for the forward passes; only on CUDA, ignored elsewhere.

    Shape:
        image ``(C, *S)`` with ``len(S) == len(settings.patch_size)`` -> ``(K, *S)`` float32 on CPU.

    Raises:
        ValueError: No models, or the image rank does not match the patch size.
    """
    if not models:
        raise ValueError("sliding_window_probabilities needs at least one model")
    x = torch.as_tensor(image, dtype=torch.float32)
    if x.ndim != len(settings.patch_size) + 1:
        raise ValueError(
            f"image must be (C, *S) with {len(settings.patch_size)} spatial axes to match patch_size "
            f"{settings.patch_size}, got shape {tuple(x.shape)}"
        )
    dev = torch.device(device)
    use_bf16 = bf16 and dev.type == "cuda"
    for model in models:
        model.to(dev).eval()
    from monai.inferers import sliding_window_inference  # imported on use: seconds at start-up

    out = sliding_window_inference(
        x[None],
        roi_size=settings.patch_size,
        sw_batch_size=settings.batch_size,
        predictor=_MirroredSoftmax(models, settings.mirror_axes, use_bf16),
        overlap=settings.overlap,
        mode=settings.mode,
        sigma_scale=settings.sigma_scale,
        sw_device=dev,
        device="cpu",
    )
    assert isinstance(out, torch.Tensor)  # a single-tensor predictor gives a single tensor
    total = out[0]
    if tuple(total.shape[1:]) != tuple(x.shape[1:]):
        raise RuntimeError(f"stitched output {tuple(total.shape)} does not match image {tuple(x.shape)}")
    return total
